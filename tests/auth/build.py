"""A DLaaSAuthenticator configured for the fake IAM (tests/fakeiam.py), as the auth tests make it."""

from traitlets.config import Config

from dlaas_hub.auth.authenticator import DLaaSAuthenticator

from ..fakeiam import CLIENT_ID, CLIENT_SECRET, ISSUER

TARGETS = {
    "eos": {"audience": "eos-eulake", "scope": "openid storage.read:/eos"},
    "rucio": {"audience": "rucio", "scope": "openid profile"},
}


def make(config: Config | None = None, **settings) -> DLaaSAuthenticator:
    config = config or Config()
    base = {"oidc_issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "oauth_callback_url": "https://hub.example/hub/oauth_callback",
            "allowed_groups": {"/escape"}, "admin_groups": {"/escape/admins"}, "exchange_targets": TARGETS}
    base.update(settings)
    for key, value in base.items():
        config.DLaaSAuthenticator[key] = value
    return DLaaSAuthenticator(config=config)
