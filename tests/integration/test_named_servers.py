"""Two named servers of one user, side by side with the local spawner, a real hub and the dev IAM:
each its own profile, token files, token agent and renewal; stopping one leaves the other alone."""

import json
import os
import time

import httpx
import pytest

from .conftest import browser_login
from .eos import eos_file_owner
from .test_spawn import server_environ

pytestmark = pytest.mark.integration


def wait_ready(hub, user, server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.api("GET", f"/users/{user}").json()["servers"].get(server)
        if model and model["ready"]:
            return model
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server {server} did not become ready\n{hub.log()[-4000:]}")


def start(hub, user, server, profile):
    response = hub.api("POST", f"/users/{user}/servers/{server}", json={"profile": profile})
    assert response.status_code in (201, 202), response.text
    return wait_ready(hub, user, server)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def extension_mode(env) -> str:
    path = os.path.join(env["JUPYTER_CONFIG_PATH"], "jupyter_server_config.json")
    return json.load(open(path))["RucioConfig"]["instances"][0]["mode"]


def wait_fetched(hub, client, servers, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        token = hub.api("POST", "/users/mariaska/tokens", json={"scopes": ["read:users!user"]}).json()["token"]
        listed = httpx.get(f"{hub.url}/hub/api/dlaas/tokens", headers={"Authorization": f"token {token}"}).json()
        fetched = {s["name"]: s for s in listed["servers"]}
        if set(fetched) == set(servers) and all(s["credentials_fetched_at"] for s in fetched.values()):
            return fetched
        time.sleep(0.5)
    raise AssertionError(f"not every server's agent fetched its files: {listed}")


def test_two_named_servers_run_side_by_side(hub):
    client, callback = browser_login(hub, "MariaSKA")
    assert callback.status_code == 302
    root = start(hub, "mariaska", "root", "root")
    xcache = start(hub, "mariaska", "xcache", "root-xcache")
    env_root, env_xcache = server_environ(root), server_environ(xcache)

    # Each server its own directory, its own extension mode, the same current tokens.
    dir_root = os.path.dirname(env_root["RUCIO_CONFIG"])
    dir_xcache = os.path.dirname(env_xcache["RUCIO_CONFIG"])
    assert dir_root != dir_xcache
    assert dir_root.endswith("/mariaska/named-root") and dir_xcache.endswith("/mariaska/named-xcache")
    assert extension_mode(env_root) == "replica" and extension_mode(env_xcache) == "download"
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    for env in (env_root, env_xcache):
        assert open(env["OAUTH2_TOKEN"][5:]).read().split(":")[1] == state["exchanged"]["eos"]["access_token"]
        # What EOS does with the file: ask the resource in it about the token; it answers as her.
        assert eos_file_owner(env["OAUTH2_TOKEN"][5:])["preferred_username"] == "MariaSKA"

    # Each its own token agent, and each agent fetches its own server's files.
    assert root["state"]["token_agent_pid"] != xcache["state"]["token_agent_pid"]
    assert running(root["state"]["token_agent_pid"]) and running(xcache["state"]["token_agent_pid"])
    fetched = wait_fetched(hub, client, {"root", "xcache"})
    assert fetched["root"]["profile"] == "root" and fetched["xcache"]["profile"] == "root-xcache"

    # The credentials endpoint knows which server asks: a server's token gets only its own files.
    url = f"{hub.url}/hub/api/dlaas/users/mariaska/credentials"
    own = {"Authorization": f"token {env_root['JUPYTERHUB_API_TOKEN']}"}
    answer = httpx.get(url, params={"server": "root"}, headers=own)
    assert answer.status_code == 200
    files = {f["name"]: f["content"] for f in answer.json()["files"]}
    assert json.loads(files["jupyter_server_config.json"])["RucioConfig"]["instances"][0]["mode"] == "replica"
    assert httpx.get(url, params={"server": "xcache"}, headers=own).status_code == 403

    # The home page and the token page say which profile each server runs.
    home = client.get(f"{hub.url}/hub/home").text
    assert "Server <strong>root</strong>" in home and "<strong>ROOT environment</strong>" in home
    tokens_page = client.get(f"{hub.url}/hub/dlaas/tokens").text
    assert 'data-server="root"' in tokens_page and 'data-server="xcache"' in tokens_page

    # Stopping one leaves the other's files and agent alone.
    hub.api("DELETE", "/users/mariaska/servers/root")
    deadline = time.monotonic() + 30
    while "root" in hub.api("GET", "/users/mariaska").json()["servers"]:
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.3)
    assert not os.path.exists(dir_root)
    assert sorted(n for n in os.listdir(dir_xcache) if not n.startswith(".")) == [
        "datalake-state.json", "eos-bearer-token", "eos-token", "jupyter_server_config.json", "rucio-token",
        "rucio.cfg"]
    assert running(xcache["state"]["token_agent_pid"]) and not running(root["state"]["token_agent_pid"])

    hub.api("DELETE", "/users/mariaska/servers/xcache")
    deadline = time.monotonic() + 30
    while hub.api("GET", "/users/mariaska").json()["servers"]:
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.3)
    assert not os.path.exists(os.path.dirname(dir_xcache))  # no token file of hers is left on disk
