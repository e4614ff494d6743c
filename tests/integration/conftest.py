"""Real processes on 127.0.0.1: the development IAM, configurable-http-proxy and JupyterHub."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dlaas_hub.dev import devservices

pytestmark = pytest.mark.integration

CLIENT_ID = "dlaas-hub-test"
EXCHANGE_TARGETS = {
    "eos": {"audience": "eos-eulake", "scope": "openid profile wlcg.groups storage.read:/eos"},
    "rucio": {"audience": "rucio", "scope": "openid profile"},
}
PASSWORDS = devservices.dev_iam_passwords()
# The servers' own environment, as a profile's image holds it (./scripts/test installs it).
SINGLEUSER_BIN = devservices.REPO_ROOT / ".venv-singleuser" / "bin"


def require_singleuser() -> None:
    """Skip without the servers' environment, saying how to get it; fail in CI, which installs it."""
    if not (SINGLEUSER_BIN / "jupyterhub-singleuser").exists():
        message = f"{SINGLEUSER_BIN} is missing: ./scripts/test installs it (requirements/singleuser.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def process_environments():
    """(pid, environment) of each process whose environment can be read here."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        yield int(pid), dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


@dataclass
class Hub:
    url: str
    proc: subprocess.Popen
    log_path: Path
    service_token: str
    iam_url: str
    workdir: Path | None = None

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"token {self.service_token}"}
        return httpx.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def ports():
    return {"iam": devservices.free_port(), "hub": devservices.free_port(), "hub2": devservices.free_port()}


@pytest.fixture(scope="module")
def client_secret():
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def dev_iam(ports, client_secret, tmp_path_factory, request):
    """The development IAM; a test module may set DEV_IAM_ARGS (token lifetimes...)."""
    log = (tmp_path_factory.mktemp("iam") / "iam.log").open("w")
    proc = devservices.start_dev_iam(
        ports["iam"], redirect_uris=[f"http://127.0.0.1:{ports[h]}/hub/oauth_callback" for h in ("hub", "hub2")],
        client_id=CLIENT_ID, client_secret=client_secret, stdout=log, stderr=subprocess.STDOUT,
        extra_args=getattr(request.module, "DEV_IAM_ARGS", []),
    )
    yield f"http://127.0.0.1:{ports['iam']}/"
    devservices.stop(proc)
    log.close()


def start_hub(workdir: Path, *, hub_port: int, iam_url: str, client_secret: str, exchange_targets=None,
              crypt_key: str | None = None, overrides: dict | None = None, **settings_extra) -> Hub:
    """Start JupyterHub with the demo's configuration and wait until it is healthy."""
    shutil.copy(Path(__file__).parent / "hub_config.py", workdir / "jupyterhub_config.py")
    service_token = secrets.token_hex(16)
    settings = devservices.hub_settings(
        workdir, hub_port=hub_port, iam_url=iam_url, client_id=CLIENT_ID, client_secret=client_secret,
        crypt_key=secrets.token_hex(32) if crypt_key is None else crypt_key,
        allowed_groups=["/escape"], admin_groups=["/escape/admins"],
        exchange_targets=exchange_targets or EXCHANGE_TARGETS, default_url="/tree", overrides=overrides or {},
        **settings_extra)
    try:
        # The crypt key comes from settings.json, or is missing on purpose.
        proc, log_path = devservices.start_hub(workdir, workdir / "jupyterhub_config.py", settings,
                                               env={"DLAAS_TEST_SERVICE_TOKEN": service_token},
                                               unset=("JUPYTERHUB_CRYPT_KEY",))
    except devservices.ServiceError as e:
        raise AssertionError(str(e)) from None
    return Hub(settings["hub_url"], proc, log_path, service_token, iam_url, workdir)


@pytest.fixture(scope="module")
def hub(dev_iam, ports, client_secret, tmp_path_factory, request):
    """A hub with the demo's configuration; a test module may set HUB_OVERRIDES {"Class.trait": value}."""
    hub = start_hub(tmp_path_factory.mktemp("hub"), hub_port=ports["hub"], iam_url=dev_iam,
                    client_secret=client_secret, overrides=getattr(request.module, "HUB_OVERRIDES", None))
    yield hub
    devservices.stop(hub.proc)


def browser_login(hub: Hub, username: str, password: str | None = None) -> tuple[httpx.Client, httpx.Response]:
    """Walk the sign-in as a browser does: hub, IAM login form, IAM redirects, hub callback.

    Returns the client (holding the cookies) and the hub's answer to the OAuth callback.
    """
    return devservices.browser_login(hub.url, hub.iam_url, username,
                                     password if password is not None else PASSWORDS[username])
