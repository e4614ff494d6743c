"""The development Rucio server: the real ``rucio`` server from PyPI, on sqlite, trusting the development IAM.

It runs from ``.venv-rucio`` (Rucio pins its own dependencies), under gunicorn with one worker and
one thread (sqlite does not take concurrent writers), on 127.0.0.1. Used by the local demo and the
integration tests; a deployed hub talks to the site's Rucio instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .devservices import DEV_IAM_USERS, REPO_ROOT, ServiceError, stop, wait_for_http

RUCIO_VENV = REPO_ROOT / ".venv-rucio"
BOOTSTRAP = REPO_ROOT / "dev-rucio" / "bootstrap.py"
#: The RSE over the notebooks' /scratch, where `datalake upload` registers files.
SCRATCH_RSE = "JUPYTER-SCRATCHDISK"
#: The development IAM's name among the server's identity providers (its idpsecrets' key): the
#: value of ``oidc_issuer`` in a client's rucio.cfg, never the issuer's URL.
IDP_NAME = "dlaas-dev"
#: The server's Flask application, as Rucio's own container images serve it.
WSGI_APP = "rucio.web.rest.flaskapi.v1.main:application"
#: Rucio's REST endpoints the demo serves. ``traces`` is left out: it needs a message broker.
ENDPOINTS = ("accounts, auth, config, credentials, dids, export, heartbeats, identities, import, "
             "lifetime_exceptions, locks, meta_conventions, ping, redirect, replicas, requests, rses, rules, "
             "scopes, subscriptions, vos")


def rucio_bin(name: str) -> str:
    path = RUCIO_VENV / "bin" / name
    if not path.exists():
        raise ServiceError(f"{path} is missing: ./scripts/test and ./scripts/demo install the development Rucio "
                           f"server there (requirements/rucio.txt)")
    return str(path)


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@dataclass
class RucioServer:
    url: str
    proc: subprocess.Popen
    workdir: Path
    root_password: str
    issuer: str

    @property
    def log_path(self) -> Path:
        return self.workdir / "rucio.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def environ(self) -> dict:
        return {**os.environ, "RUCIO_CONFIG": str(self.workdir / "rucio.cfg")}

    def bootstrap(self, spec: dict) -> str:
        """Accounts, scopes, RSEs, quotas and datasets (see dev-rucio/bootstrap.py); idempotent."""
        path = self.workdir / "bootstrap.json"
        _private(path, json.dumps({"issuer": self.issuer, **spec}))
        result = subprocess.run([rucio_bin("python"), str(BOOTSTRAP), str(path)], env=self.environ(),
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ServiceError(f"the Rucio bootstrap failed:\n{result.stdout}{result.stderr[-3000:]}")
        return result.stdout.strip()

    def stop(self) -> None:
        stop(self.proc)


def server_config(workdir: Path, *, url: str, issuer: str, root_password: str,
                  expected_scope: str = "openid profile", expected_audience: str = "rucio") -> Path:
    """The server's rucio.cfg and idpsecrets.json, both readable by their owner only."""
    idpsecrets = workdir / "idpsecrets.json"
    # Rucio drops every issuer unless each entry has a client and a SCIM block. The server validates
    # the hub's tokens; its own sign-in (what the client falls back to when a token is refused) only
    # needs to start here, so the IAM does not know this client and the secrets are placeholders.
    _private(idpsecrets, json.dumps({IDP_NAME: {
        "issuer": issuer, "client_id": "rucio-dev", "client_secret": secrets.token_urlsafe(16),
        "redirect_uris": [f"{url}/auth/oidc_code", f"{url}/auth/oidc_token"], "SCIM": {
            "client_id": "rucio-dev-admin", "client_secret": secrets.token_urlsafe(16)}}}))
    (workdir / "trace").mkdir(exist_ok=True)
    config = f"""[common]
logdir = {workdir}
loglevel = INFO
[database]
default = sqlite:///{workdir / 'rucio.db'}
[bootstrap]
userpass_identity = ddmlab
userpass_pwd = {root_password}
userpass_email = root@dlaas.example
[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
support = dlaas-hub development server
[api]
endpoints = {ENDPOINTS}
[trace]
tracedir = {workdir / 'trace'}
[nongrid-trace]
tracedir = {workdir / 'trace'}
[client]
# For the bootstrap, as root: users' servers get rucio.cfg files of their own from the hub.
rucio_host = {url}
auth_host = {url}
account = root
auth_type = userpass
username = ddmlab
password = {root_password}
auth_token_file_path = {workdir / 'root-token'}
request_retries = 3
[oidc]
idpsecrets = {idpsecrets}
admin_issuer = {IDP_NAME}
expected_audience = {expected_audience}
expected_scope = {expected_scope}
"""
    path = workdir / "rucio.cfg"
    _private(path, config)
    return path


def start_rucio(workdir: Path, port: int, *, issuer: str, timeout: float = 60.0) -> RucioServer:
    """Create the database on first use, start the server and wait until it answers /ping."""
    workdir.mkdir(parents=True, exist_ok=True)
    password_file = workdir / "root-password"
    if not password_file.exists():
        _private(password_file, secrets.token_urlsafe(16))
    root_password = password_file.read_text()
    url = f"http://127.0.0.1:{port}"
    server_config(workdir, url=url, issuer=issuer, root_password=root_password)
    env = {**os.environ, "RUCIO_CONFIG": str(workdir / "rucio.cfg")}
    if not (workdir / "rucio.db").exists():
        # The schema straight from the models: alembic's stamp is for migrations, which sqlite lacks.
        create = ("from rucio.db.sqla import models\nfrom rucio.db.sqla.session import get_engine\n"
                  "from rucio.db.sqla.util import create_base_vo, create_root_account\n"
                  "models.register_models(get_engine())\ncreate_base_vo()\ncreate_root_account()\n")
        result = subprocess.run([rucio_bin("python"), "-c", create], env=env, capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            (workdir / "rucio.db").unlink(missing_ok=True)
            raise ServiceError(f"creating the Rucio database failed:\n{result.stderr[-3000:]}")
    with (workdir / "rucio.log").open("a") as log:
        proc = subprocess.Popen([rucio_bin("gunicorn"), "--workers", "1", "--threads", "1", "--bind",
                                 f"127.0.0.1:{port}", "--timeout", "120", WSGI_APP],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"{url}/ping", timeout=timeout, proc=proc)
    except ServiceError as e:
        stop(proc)
        raise ServiceError(f"{e}\n--- Rucio log ---\n{(workdir / 'rucio.log').read_text(errors='replace')[-3000:]}")
    except BaseException:  # interrupted while waiting: never leave the server behind
        stop(proc)
        raise
    return RucioServer(url, proc, workdir, root_password, issuer)


#: Rucio's default account rule (a policy package may relax it).
RUCIO_ACCOUNT = re.compile(r"^[a-z0-9_-]{1,25}$")


def demo_spec(*, eos_dir: Path, scratch_dir: Path, other_site_dir: Path, users_file: Path = DEV_IAM_USERS,
              eos_root_url: str | None = None) -> dict:
    """The demo's Rucio content: an account per development IAM user (their name, lower-cased), the
    data lake's RSEs over local directories, and a few small datasets.

    ``EULAKE-1`` stands for EOS (users read it; the generic permission policy lets them add
    replicas only on RSEs named ``...SCRATCHDISK``, ``...USERDISK``, ``...MOCK`` or
    ``...LOCALGROUPDISK``), ``JUPYTER-SCRATCHDISK`` for the notebooks' ``/scratch``, and
    ``DESY-DCACHE`` for a site the notebooks cannot see.
    """
    users = [{"account": u["username"].lower(), "sub": u["sub"], "email": u["email"]}
             for u in json.loads(users_file.read_text())["users"] if RUCIO_ACCOUNT.fullmatch(u["username"].lower())]
    rses = [
        {"name": "EULAKE-1", "prefix": "/eos/eulake_1", "local_dir": str(eos_dir), "root_url": eos_root_url},
        {"name": "JUPYTER-SCRATCHDISK", "prefix": "/scratch", "local_dir": str(scratch_dir), "scratch": True},
        {"name": "DESY-DCACHE", "prefix": "/pnfs/desy.de/escape", "local_dir": str(other_site_dir)},
    ]
    datasets = [
        {"scope": "ska_sdc1", "name": "sdc1.images", "rses": ["EULAKE-1"],
         "files": [{"name": f"sdc1.image.{band}.fits", "content": f"SIMPLE = T / SDC1 {band} band (demo)\n"}
                   for band in ("b1", "b2", "b5")]},
        {"scope": "escape_demo", "name": "gw.strain.2026", "rses": ["DESY-DCACHE"],
         "files": [{"name": f"H-H1_STRAIN-{n}.gwf", "content": f"strain segment {n} (demo)\n"} for n in (1, 2)]},
    ]
    return {"users": users, "rses": rses, "datasets": datasets}
