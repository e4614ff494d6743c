"""Stand-ins for what JupyterHub hands a spawner: its user, the hub and the authenticator."""

from __future__ import annotations

from types import SimpleNamespace

import jwt

from dlaas_hub.server.files import RUCIO_TOKEN_FILE  # noqa: F401  (re-exported for tests)

USERINFO = "https://iam-escape.cloud.cnaf.infn.it/userinfo"


def exchanged_token(aud: str, exp: int = 2_000_000_000) -> str:
    return jwt.encode({"aud": aud, "exp": exp, "sub": "3f9e", "scope": "openid"}, "k" * 32, algorithm="HS256")


def auth_state(**extra) -> dict:
    return {
        "access_token": "BROAD-ACCESS-TOKEN-VALUE",
        "refresh_token": "REFRESH-TOKEN-VALUE",
        "id_token": "ID-TOKEN-VALUE",
        "iam_username": "MariaSKA",
        "exchanged": {
            "eos": {"access_token": exchanged_token("eos-eulake"), "expires_at": 2_000_000_000,
                    "audience": "eos-eulake", "scope": "openid"},
            "rucio": {"access_token": exchanged_token("rucio"), "expires_at": 2_000_000_000,
                      "audience": "rucio", "scope": "openid"},
        },
        "exchange_errors": {},
        **extra,
    }


class FakeUser:
    def __init__(self, name="mariaska", groups=("/escape", "/escape/ska"), state=None):
        self.name = name
        self.escaped_name = name
        self.id = 7
        self.url = f"/user/{name}/"
        self.groups = [SimpleNamespace(name=g) for g in groups]
        self._state = auth_state() if state is None else state

    async def get_auth_state(self):
        return self._state

    async def save_auth_state(self, state):
        self._state = state


def fake_hub():
    return SimpleNamespace(public_host="hub.example", url="http://hub:8081/hub/", base_url="/hub/",
                           api_url="http://hub:8081/hub/api")


def fake_authenticator():
    return SimpleNamespace(
        oidc_issuer="https://iam-escape.cloud.cnaf.infn.it/",
        userinfo_endpoint=USERINFO,
        exchange_targets={"eos": {"audience": "eos-eulake", "scope": "openid"},
                          "rucio": {"audience": "rucio", "scope": "openid"}},
    )


RUCIO_CONFIG = {
    "rucio_host": "https://escape-rucio.cern.ch",
    "rucio_ca_cert": "/etc/ssl/certs/ca-certificates.crt",
    "rucio_auth_host": "https://escape-rucio-auth.cern.ch",
    "rucio_instance": {"name": "escape", "display_name": "ESCAPE", "destination_rse": "EULAKE-1",
                       "rse_mount_path": "/eos/eulake_1", "rucio_webui_url": "https://escape-rucio-webui.cern.ch"},
}
