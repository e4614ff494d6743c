"""Starting the development services (development IAM, configurable-http-proxy) from a checkout.

Used by the local demo and the integration tests; not needed by a deployed hub.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_IAM_SCRIPT = REPO_ROOT / "dev-iam" / "server.mjs"
DEV_IAM_USERS = REPO_ROOT / "dev-iam" / "users.json"
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    except ServiceError:
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
