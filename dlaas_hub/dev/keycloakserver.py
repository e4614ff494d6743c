"""Keycloak as a second OpenID provider for the tests: a real server, started like the development IAM.

The server distribution (Maven Central's ``org.keycloak:keycloak-quarkus-dist`` zip, which
``scripts/lib.sh`` installs into ``.tools/``) runs in dev mode with its file database, in a folder of
its own, on a free port of 127.0.0.1, with the realm of ``dev-keycloak/escape-realm.json`` imported at
start (the hub's client secret and redirect URIs filled in). It needs Java 21 or later: ``JAVA_HOME``,
else the newest JDK under /usr/lib/jvm that is recent enough.

The realm file holds what Keycloak needs that INDIGO IAM does not: one client per storage audience
(an exchange's ``audience`` names a client), a client scope per audience that adds it to the token,
the group-membership mapper with full paths in ``wlcg.groups`` (the dot escaped: Keycloak nests a
claim at each dot), the realm role ``offline_access`` for the users (the hub asks for offline
tokens), and ``basic`` declared (a realm file that declares client scopes gets none of the default
ones, and tokens without ``basic`` carry no ``sub``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .devservices import REPO_ROOT, ServiceError, stop, wait_for_http

VERSION = "26.7.3"
HOME = REPO_ROOT / ".tools" / f"keycloak-{VERSION}"
REALM_FILE = REPO_ROOT / "dev-keycloak" / "escape-realm.json"
REALM = "escape"
CLIENT_ID = "dlaas-hub"
PASSWORDS = {"mariaska": "maria-demo", "alice": "alice-demo", "hubadmin": "hubadmin-demo", "outsider": "outsider-demo"}
HOW_TO_INSTALL = f"./scripts/test installs Keycloak {VERSION} into .tools/ (Maven Central) and needs Java 21 or later"


def java_home(environ=os.environ) -> Path:
    """A JDK of version 21 or later: $JAVA_HOME if it is one, else the newest under /usr/lib/jvm."""
    candidates = [Path(environ["JAVA_HOME"])] if environ.get("JAVA_HOME") else []
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(jvm.iterdir(), key=lambda p: _major(p) or 0, reverse=True)
    for home in candidates:
        if (home / "bin" / "java").exists() and (_major(home) or 0) >= 21:
            return home
    raise ServiceError(f"no Java 21 or later (JAVA_HOME, /usr/lib/jvm): {HOW_TO_INSTALL}")


def _major(home: Path) -> int | None:
    release = home / "release"
    if release.is_file():
        found = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
        if found:
            return int(found.group(1))
    found = re.search(r"-(\d+)-", home.name + "-")
    return int(found.group(1)) if found else None


def keycloak_home() -> Path:
    if not (HOME / "bin" / "kc.sh").exists():
        raise ServiceError(f"Keycloak is not installed at {HOME}: {HOW_TO_INSTALL}")
    return HOME


def realm(client_secret: str, redirect_uris: list[str], post_logout_uris: list[str],
          access_token_lifespan: int | None = None) -> dict:
    document = json.loads(REALM_FILE.read_text())
    if access_token_lifespan:
        document["accessTokenLifespan"] = access_token_lifespan
    client = next(c for c in document["clients"] if c["clientId"] == CLIENT_ID)
    client["secret"] = client_secret
    client["redirectUris"] = redirect_uris
    client["attributes"]["post.logout.redirect.uris"] = "##".join(post_logout_uris)
    return document


@dataclass
class KeycloakServer:
    proc: subprocess.Popen
    port: int
    folder: Path
    started_in: float
    admin_password: str  # of the bootstrap administrator "admin", for the tests' look at sessions

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Keycloak's admin REST API for this realm, as its bootstrap administrator (``kwargs`` as httpx's)."""
        base = f"http://127.0.0.1:{self.port}"
        token = httpx.post(f"{base}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin",
            "password": self.admin_password}).json()["access_token"]
        return httpx.request(method, f"{base}/admin/realms/{REALM}{path}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)

    def sessions_of(self, username: str) -> list[dict]:
        """The user's online sessions at Keycloak (a browser's single sign-on)."""
        (user,) = self.admin("GET", f"/users?username={username}&exact=true").json()
        return self.admin("GET", f"/users/{user['id']}/sessions").json()

    def offline_sessions_of(self, username: str, client_id: str = CLIENT_ID) -> list[dict]:
        """The user's offline sessions with that client: what the hub's refresh token (offline_access) holds.

        Keycloak turns the browser's session into this one when the code is exchanged with
        ``offline_access`` in the scope: no single sign-on session is left in the browser."""
        (user,) = self.admin("GET", f"/users?username={username}&exact=true").json()
        (client,) = self.admin("GET", f"/clients?clientId={client_id}").json()
        return self.admin("GET", f"/users/{user['id']}/offline-sessions/{client['id']}").json()

    def events_of(self, username: str, event_type: str, since: float = 0.0) -> list[dict]:
        """Keycloak's own record of the user's ``event_type`` events (``REFRESH_TOKEN``, ``TOKEN_EXCHANGE``)
        since ``since`` (seconds since the epoch): what reached the provider, counted where it arrived."""
        (user,) = self.admin("GET", f"/users?username={username}&exact=true").json()
        events = self.admin("GET", "/events", params={"user": user["id"], "type": event_type, "max": 1000}).json()
        return [e for e in events if e["time"] >= since * 1000]

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/{REALM}"

    @property
    def log_path(self) -> Path:
        return self.folder / "keycloak.log"

    def stop(self) -> None:
        stop(self.proc, timeout=30)


def start_keycloak(folder: Path, port: int, *, client_secret: str, redirect_uris: list[str],
                   post_logout_uris: list[str] = (), access_token_lifespan: int | None = None,
                   timeout: float = 180.0) -> KeycloakServer:
    """Keycloak on 127.0.0.1:``port``, its own copy of the distribution's conf and data in ``folder``."""
    home = keycloak_home()
    java = java_home()
    server = folder / "keycloak"
    if not server.exists():
        # A copy of its own (kc.sh finds its home from its real path, and writes its build and data
        # there), but for the 168 MB of jars, which it only reads: linked.
        jars = home / "lib" / "lib"
        shutil.copytree(home, server, ignore=lambda folder, names: ["lib"] if Path(folder) == jars.parent else [])
        (server / "lib" / "lib").symlink_to(jars)
    imports = server / "data" / "import"
    imports.mkdir(parents=True, exist_ok=True)
    document = realm(client_secret, redirect_uris, list(post_logout_uris) or redirect_uris, access_token_lifespan)
    (imports / f"{REALM}-realm.json").write_text(json.dumps(document))
    admin_password = secrets.token_urlsafe(16)
    env = {**os.environ, "JAVA_HOME": str(java), "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
           "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password}
    # Dev mode's file database: its in-memory one loses its tables after about 15 minutes (keycloak#13252).
    command = [str(server / "bin" / "kc.sh"), "start-dev", f"--http-port={port}", "--http-host=127.0.0.1",
               f"--hostname=http://127.0.0.1:{port}", "--import-realm", "--db=dev-file",
               "--log-level=INFO,org.keycloak.events:DEBUG"]
    started = time.monotonic()
    with (folder / "keycloak.log").open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=server)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/realms/{REALM}/.well-known/openid-configuration", timeout=timeout,
                      proc=proc)
    except BaseException:
        stop(proc, timeout=30)
        raise
    return KeycloakServer(proc, port, folder, time.monotonic() - started, admin_password)
