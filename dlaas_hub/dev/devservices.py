"""Starting the development services (development IAM, configurable-http-proxy) from a checkout.

Used by the local demo and the integration tests; not needed by a deployed hub.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The JupyterHub configuration of the local demo, which the tests and benchmarks start too.
DEMO_CONFIG = Path(__file__).with_name("demo_config.py")
DEV_IAM_SCRIPT = REPO_ROOT / "dev-iam" / "server.mjs"
DEV_IAM_USERS = REPO_ROOT / "dev-iam" / "users.json"
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"


class ServiceError(RuntimeError):
    pass


#: Where the services' ports are drawn from: below the kernel's ephemeral range, which every outgoing
#: connection draws its local port from. A port the kernel handed out for ``bind(0)`` could be taken by a
#: connection (of this run, or of another run beside it) before the service got to listen on it.
PORT_RANGE_START = 15000
_handed_out: set[int] = set()


def ephemeral_ports_start(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    """The first port of the kernel's ephemeral range (Linux's default, 32768, where it cannot be read)."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now and that this process has not handed out before,
    drawn at random outside the ephemeral range, so that tests and demos running side by side rarely
    draw the same one and no client connection takes it before the service listens."""
    end = ephemeral_ports_start()
    if end - PORT_RANGE_START < 1000:  # an unusual ephemeral range: the kernel's choice then
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(200):
        port = random.randrange(PORT_RANGE_START, end)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise ServiceError(f"no free port on 127.0.0.1 between {PORT_RANGE_START} and {end}")


def node() -> str:
    path = shutil.which("node")
    if not path:
        raise ServiceError("node (Node.js 20 or newer) is not installed: the development IAM and "
                           "configurable-http-proxy need it")
    return path


def chp_command() -> list[str]:
    chp = NODE_BIN / "configurable-http-proxy"
    if not chp.exists():
        raise ServiceError(f"{chp} is missing: run `npm ci` in {REPO_ROOT}")
    return [str(chp)]


def wait_for_http(url: str, *, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process for {url} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServiceError(f"{url} did not answer within {timeout} s")


def start_dev_iam(port: int, *, redirect_uris: list[str], client_id: str, client_secret: str,
                  extra_args: list[str] | None = None, stdout=None, stderr=None) -> subprocess.Popen:
    """Start the development IAM on 127.0.0.1:``port`` and wait until it serves discovery."""
    if not (REPO_ROOT / "node_modules" / "oidc-provider").exists():
        raise ServiceError(f"node packages are missing: run `npm ci` in {REPO_ROOT}")
    cmd = [node(), str(DEV_IAM_SCRIPT), f"--port={port}", f"--client-id={client_id}"]
    cmd += [f"--redirect-uri={uri}" for uri in redirect_uris]
    cmd += extra_args or []
    env = {**os.environ, "NODE_ENV": "development", "DEV_IAM_CLIENT_SECRET": client_secret}
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration", proc=proc)
    except BaseException:  # it did not come up, or a stop was asked meanwhile
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python_bin(name: str) -> str:
    """A console script installed beside this Python (jupyterhub, jupyterhub-singleuser)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def hub_settings(workdir: Path, *, hub_port: int, iam_url: str, client_id: str, client_secret: str,
                 crypt_key: str, **extra) -> dict:
    """The settings the demo's configuration (demo_config.py) reads from ``settings.json``."""
    return {
        "state_dir": str(workdir),
        "hub_url": f"http://127.0.0.1:{hub_port}",
        "hub_internal_port": free_port(),
        "proxy_api_port": free_port(),
        "chp_command": chp_command(),
        "singleuser_command": [python_bin("jupyterhub-singleuser")],
        "issuer": iam_url,
        "client_id": client_id,
        "client_secret": client_secret,
        "crypt_key": crypt_key,
        **extra,
    }


def start_hub(workdir: Path, config: Path, settings: dict, *, env: dict | None = None, unset=(),
              timeout: float = 60.0) -> tuple[subprocess.Popen, Path]:
    """Start JupyterHub with ``config`` and ``settings`` (written to workdir, mode 0600); wait until healthy.

    Returns the process and its log file (hub and proxy output). Raises ServiceError with the log's
    end if the hub does not come up.
    """
    import json

    settings_path = workdir / "settings.json"
    fd = os.open(settings_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(settings, f)
    log_path = workdir / "hub.log"
    hub_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    hub_env["DLAAS_DEMO_STATE"] = str(workdir)
    with log_path.open("w") as log:
        proc = subprocess.Popen([python_bin("jupyterhub"), "-f", str(config)], cwd=workdir, stdout=log,
                                stderr=subprocess.STDOUT, env=hub_env)
    try:
        wait_for_http(f"{settings['hub_url']}/hub/health", timeout=timeout, proc=proc)
    except ServiceError as e:
        stop(proc)
        raise ServiceError(f"{e}\n--- hub log ---\n{log_path.read_text(errors='replace')}") from None
    return proc, log_path


def login_until_callback(hub_url: str, iam_url: str, username: str, password: str):
    """Walk a browser's sign-in up to the hub's OAuth callback, without following it.

    Returns the client (holding the cookies) and either the callback URL (a str) or, when the walk
    ended elsewhere (a refused password, a page of the IAM), the last response.
    """
    import re
    from urllib.parse import urljoin

    client = httpx.Client(timeout=30)
    response = client.get(f"{hub_url}/hub/oauth_login")
    for _ in range(20):
        if response.status_code in (301, 302, 303, 307):
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(f"{hub_url}/hub/oauth_callback"):
                return client, target
            response = client.get(target)
            continue
        if response.status_code == 200 and "<form" in response.text and str(response.url).startswith(iam_url):
            action = re.search(r'action="([^"]+)"', response.text).group(1)
            response = client.post(urljoin(str(response.url), action),
                                   data={"username": username, "password": password})
            continue
        return client, response
    raise ServiceError("too many redirects during login")


def browser_login(hub_url: str, iam_url: str, username: str, password: str):
    """A whole sign-in as a browser does it; returns the client and the hub's answer to the callback."""
    client, step = login_until_callback(hub_url, iam_url, username, password)
    if isinstance(step, str):
        return client, client.get(step)
    return client, step


def dev_iam_passwords(users_file: Path = DEV_IAM_USERS) -> dict[str, str]:
    """The seeded demo users' passwords, by user name."""
    import json

    return {u["username"]: u["password"] for u in json.loads(users_file.read_text())["users"]}
