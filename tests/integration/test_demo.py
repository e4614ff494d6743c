"""`dlaas-hub demo` as the README runs it: the IAM, the Rucio server and the hub come up, the home page
says what is real, a server's terminal finds python, jupyter and rucio, and a second start reuses
what the first one made."""

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from dlaas_hub.dev import devservices

from .conftest import process_environments
from .rucio_fixtures import require_rucio, require_xrootd

pytestmark = pytest.mark.integration


def launch_demo(state, ports):
    """`dlaas-hub demo` as the README's script runs it, on free ports and its own state directory."""
    return subprocess.Popen(
        [sys.executable, "-m", "dlaas_hub.ops.cli", "demo", f"--hub-port={ports['hub']}",
         f"--iam-port={ports['iam']}", f"--rucio-port={ports['rucio']}", f"--xrootd-port={ports['xrootd']}",
         f"--state-dir={state}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def demo_ports() -> dict:
    """Free ports for the demo's services; XRootD serves https:// on the port after its root:// one."""
    ports = {name: devservices.free_port() for name in ("hub", "iam", "rucio")}
    while True:
        ports["xrootd"] = devservices.free_port()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", ports["xrootd"] + 1)) != 0:
                ports["xrootd-https"] = ports["xrootd"] + 1
                return ports


def start_demo(state, ports):
    proc = launch_demo(state, ports)
    started = time.monotonic()
    try:
        devservices.wait_for_http(f"http://127.0.0.1:{ports['hub']}/hub/health", timeout=120, proc=proc)
    except devservices.ServiceError:
        proc.kill()
        raise AssertionError(proc.stdout.read())
    return proc, time.monotonic() - started


def wait_for_server_environ(user, state, timeout=60):
    """The environment of ``user``'s single-user server process of the demo in ``state``, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, env in process_environments():
            if env.get("JUPYTERHUB_USER") == user and env.get("RUCIO_CONFIG", "").startswith(f"{state}/"):
                return env
        time.sleep(0.5)
    raise AssertionError(f"no server process for {user}")


def stop_demo(proc, ports):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    for name, port in ports.items():  # everything it started is gone: the ports are free again
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"the {name} port {port} still answers"
    return proc.stdout.read()


def rucio_token_path(env: dict) -> str:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(env["RUCIO_CONFIG"])
    return cfg["client"]["auth_token_file_path"]


def search_in_the_panel(client, server: str, did: str, timeout: float = 60) -> list:
    """The Rucio panel's search, as her browser sends it (through her server's sign-in)."""
    deadline = time.monotonic() + timeout
    while True:  # JupyterLab first: the server signs her in through the hub (once it has started)
        lab = client.get(f"{server}/lab", follow_redirects=True)
        if lab.url.path.endswith("/lab") or time.monotonic() > deadline:
            assert lab.status_code == 200 and lab.url.path.endswith("/lab"), f"{lab.url}: {lab.text[-2000:]}"
            break
        time.sleep(1)  # the hub's spawn-pending page
    # A cookie-authenticated API call carries the server's _xsrf, as JupyterLab sends it.
    path = urlsplit(server).path + "/"
    xsrf = next((c.value for c in client.cookies.jar if c.name == "_xsrf" and c.path == path), "")
    answer = client.get(f"{server}/rucio-jupyterlab/did-search", headers={"X-XSRFToken": xsrf},
                        params={"namespace": "demo", "did": did, "type": "all"})
    assert answer.status_code == 200, answer.text[-2000:]
    return answer.json()


def test_the_demo_brings_up_iam_rucio_and_hub_and_says_what_it_is(tmp_path):
    require_rucio()
    require_xrootd()
    ports = demo_ports()
    state = tmp_path / "demo"
    proc, first = start_demo(state, ports)
    try:
        assert httpx.get(f"http://127.0.0.1:{ports['rucio']}/ping").json()["version"]
        client, callback = devservices.browser_login(f"http://127.0.0.1:{ports['hub']}",
                                                     f"http://127.0.0.1:{ports['iam']}/", "MariaSKA", "maria-demo")
        home = client.get(f"http://127.0.0.1:{ports['hub']}/hub/home").text
        assert 'id="dlaas-demo-notice"' in home and "an XRootD server for EOS" in home
        assert "share one system account" in home
        # Her server, started from the Server Options page: its terminal's PATH finds the tools
        hub = f"http://127.0.0.1:{ports['hub']}"
        xsrf = client.cookies.get("_xsrf")
        client.post(f"{hub}/hub/spawn", data={"profile": "minimal", "_xsrf": xsrf}, follow_redirects=False)
        env = wait_for_server_environ("mariaska", state.resolve())
        for tool in ("python", "jupyter", "rucio", "datalake"):
            assert shutil.which(tool, path=env["PATH"]), f"{tool} is not on the server's PATH {env['PATH']}"
        assert env["RUCIO_CONFIG"] and f"127.0.0.1:{ports['rucio']}" in open(env["RUCIO_CONFIG"]).read()
        # The home page's line reads a demo file from the storage standing in for EOS, in her terminal.
        eos_dir = Path(json.loads((state / "settings.json").read_text())["xrootd"]["eos_dir"])
        local = next(eos_dir.rglob("sdc1.image.b1.fits"))
        deadline = time.monotonic() + 30
        while not os.path.exists(env["DLAAS_EOS_TOKEN_FILE"]):
            assert time.monotonic() < deadline, "her server's EOS token never arrived"
            time.sleep(0.3)
        url = f"{env['EOS_MGM_URL']}//eos/eulake_1/{local.relative_to(eos_dir)}"
        read = subprocess.run(["bash", "-c", 'BEARER_TOKEN_FILE=$DLAAS_EOS_TOKEN_FILE xrdcp -f "$1" -', "-", url],
                              env=env, capture_output=True, text=True, timeout=60)
        assert read.returncode == 0 and read.stdout == local.read_text(), read.stderr
        # Tokens live as the docs say: EOS 20 minutes, Rucio an hour.
        for path, lifetime in ((env["DLAAS_EOS_TOKEN_FILE"], 1200), (rucio_token_path(env), 3600)):
            claims = jwt.decode(open(path).read().strip(), options={"verify_signature": False})
            assert claims["exp"] - claims["iat"] == lifetime, (path, claims["exp"] - claims["iat"])
        # What the home page says to search for, the Rucio panel finds: the demo allows wildcards.
        assert "<code>ska_sdc1:*</code>" in home
        found = search_in_the_panel(client, f"{hub}/user/mariaska", "ska_sdc1:*")
        assert {"did": "ska_sdc1:sdc1.images", "size": None, "type": "dataset"} in found, found
    finally:
        output = stop_demo(proc, ports)
    assert "Rucio bootstrap" not in output or "error" not in output.lower()
    assert output.rstrip().splitlines()[-1].startswith("  dlaas-hub demo stopped: its hub, servers and services "
                                                       "are down"), output[-2000:]

    proc, second = start_demo(state, ports)  # the database, accounts and datasets are kept
    stop_demo(proc, ports)
    print(f"demo start: first {first:.1f} s, second {second:.1f} s")


def test_stopping_the_demo_while_it_starts_stops_what_had_started(tmp_path):
    require_rucio()
    ports = demo_ports()
    proc = launch_demo(tmp_path / "demo", ports)
    devservices.wait_for_http(f"http://127.0.0.1:{ports['iam']}/.well-known/openid-configuration", proc=proc)
    stop_demo(proc, ports)  # the IAM is up, Rucio and the hub are on their way
