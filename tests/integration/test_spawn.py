"""Server Options, profiles and credential files with the local spawner, a real hub and the dev IAM."""

import configparser
import json
import os
import re
import stat
import time
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from .conftest import browser_login

pytestmark = pytest.mark.integration


def wait_ready(hub, name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = hub.api("GET", f"/users/{name}").json()["servers"].get("")
        if server and server["ready"]:
            return server
        time.sleep(0.3)
    raise AssertionError(f"{name}'s server did not become ready\n{hub.log()[-4000:]}")


def start(hub, name, profile):
    response = hub.api("POST", f"/users/{name}/server", json={"profile": profile})
    if response.status_code in (201, 202):
        return wait_ready(hub, name)
    return response


def stop(hub, name):
    hub.api("DELETE", f"/users/{name}/server")
    deadline = time.monotonic() + 30
    while hub.api("GET", f"/users/{name}").json()["servers"]:
        assert time.monotonic() < deadline, "server did not stop"
        time.sleep(0.3)


def server_environ(server) -> dict:
    pid = server["state"]["pid"]
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def verified(token, hub, audience):
    jwks = jwt.PyJWKClient(f"{hub.iam_url}jwks")
    return jwt.decode(token, key=jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"], audience=audience)


@pytest.fixture(scope="module")
def maria(hub):
    client, callback = browser_login(hub, "MariaSKA")
    assert callback.status_code == 302
    return client


def test_options_form_lists_only_allowed_profiles(hub, maria):
    form = maria.get(f"{hub.url}/hub/spawn").text
    assert 'value="ska-sdc1"' in form and 'value="minimal"' in form
    assert 'value="gcc-magic-cta"' not in form
    alice, _ = browser_login(hub, "alice")
    form = alice.get(f"{hub.url}/hub/spawn").text
    assert 'value="minimal"' in form and 'value="ska-sdc1"' not in form


def test_running_server_has_its_credentials(hub, maria):
    server = start(hub, "mariaska", "root-xcache")
    env = server_environ(server)
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]

    # EOS: OAUTH2_TOKEN names an owner-only file in eosxd's format
    assert env["OAUTH2_TOKEN"].startswith("FILE:")
    eos_path = env["OAUTH2_TOKEN"][len("FILE:"):]
    st = os.stat(eos_path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(os.path.dirname(eos_path)).st_mode) == 0o700
    content = open(eos_path).read()
    prefix, token, resource = content.split(":", 2)
    userinfo = httpx.get(f"{hub.iam_url}.well-known/openid-configuration").json()["userinfo_endpoint"]
    assert prefix == "oauth2" and resource == userinfo.split("://", 1)[1]
    assert not content.endswith("\n")
    assert verified(token, hub, "eos-eulake")["aud"] == "eos-eulake"
    assert token == state["exchanged"]["eos"]["access_token"]

    # Rucio: rucio.cfg parses and names the token file holding the Rucio-audience JWT
    cfg = configparser.ConfigParser()
    cfg.read(env["RUCIO_CONFIG"])
    client = cfg["client"]
    assert client["auth_type"] == "oidc" and client["account"] == "MariaSKA"
    rucio_token = open(client["auth_token_file_path"]).read()
    assert rucio_token == state["exchanged"]["rucio"]["access_token"]
    assert verified(rucio_token, hub, "rucio")["aud"] == "rucio"
    assert stat.S_IMODE(os.stat(client["auth_token_file_path"]).st_mode) == 0o600

    # The Rucio JupyterLab extension, in the profile's download mode, reading the token file
    config = json.load(open(os.path.join(env["JUPYTER_CONFIG_PATH"], "jupyter_server_config.json")))
    instance = config["RucioConfig"]["instances"][0]
    assert instance["mode"] == "download" and instance["oidc_auth"] == "file"
    assert instance["oidc_file_name"] == client["auth_token_file_path"]

    # The data lake, mapped to local directories
    assert env["SCRATCH"].endswith("/scratch/mariaska") and os.path.isdir(env["SCRATCH"])
    assert env["XCACHE_REDIRECTOR"] == "root://xcache-redirector.cern.ch"  # the profile's own env
    for name in ("refresh_token", "access_token", "id_token"):
        assert state[name] not in "\n".join(f"{k}={v}" for k, v in env.items())


def test_credentials_endpoint_serves_only_the_servers_own_token(hub, maria):
    server = wait_ready(hub, "mariaska")
    server_token = server_environ(server)["JUPYTERHUB_API_TOKEN"]
    url = f"{hub.url}/hub/api/dlaas/users/mariaska/credentials"
    response = httpx.get(url, headers={"Authorization": f"token {server_token}"})
    assert response.status_code == 200
    body = response.json()
    assert {f["name"] for f in body["files"]} == {"eos-token", "eos-bearer-token", "rucio-token", "rucio.cfg",
                                                  "jupyter_server_config.json"}
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    assert state["refresh_token"] not in response.text and state["access_token"] not in response.text
    assert response.headers["cache-control"] == "no-store"

    other = httpx.get(f"{hub.url}/hub/api/dlaas/users/alice/credentials",
                      headers={"Authorization": f"token {server_token}"})
    assert other.status_code in (403, 404)
    assert httpx.get(url).status_code in (401, 403)  # no credentials at all
    assert hub.api("GET", "/dlaas/users/mariaska/credentials").status_code == 403  # admin service, no scope
    xsrf = maria.cookies.get("_xsrf")
    browser = maria.get(url, headers={"X-XSRFToken": xsrf or "", "Referer": f"{hub.url}/hub/home"})
    assert browser.status_code == 403  # the user's own browser session never gets the tokens

    # and the metrics count both: served to the agent and this test, refused to the others
    metrics = hub.api("GET", "/../metrics").text
    served = re.search(r'^dlaas_credentials_served_total\{outcome="served"\} (\S+)', metrics, re.M)
    forbidden = re.search(r'^dlaas_credentials_served_total\{outcome="forbidden"\} (\S+)', metrics, re.M)
    assert served and float(served.group(1)) >= 2 and forbidden and float(forbidden.group(1)) >= 3


def test_restarted_server_gets_fresh_files(hub, maria):
    first = server_environ(wait_ready(hub, "mariaska"))
    old = open(first["OAUTH2_TOKEN"][5:]).read()
    stop(hub, "mariaska")
    client, callback = browser_login(hub, "MariaSKA")  # a new login: new exchanged tokens
    assert callback.status_code == 302
    server = start(hub, "mariaska", "minimal")
    env = server_environ(server)
    new = open(env["OAUTH2_TOKEN"][5:]).read()
    assert new != old
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    assert new.split(":")[1] == state["exchanged"]["eos"]["access_token"]
    config = json.load(open(os.path.join(env["JUPYTER_CONFIG_PATH"], "jupyter_server_config.json")))
    assert config["RucioConfig"]["instances"][0]["mode"] == "replica"
    stop(hub, "mariaska")


def test_forbidden_profile_is_refused_through_the_api(hub):
    browser_login(hub, "alice")
    response = hub.api("POST", "/users/alice/server", json={"profile": "ska-sdc1"})
    assert response.status_code == 403
    assert "ska-sdc1" in response.json()["message"]
    assert not hub.api("GET", "/users/alice").json()["servers"]


def test_unknown_profile_is_refused_naming_valid_ones(hub):
    browser_login(hub, "alice")
    response = hub.api("POST", "/users/alice/server", json={"profile": "nope"})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "minimal" in message and "ska-sdc1" not in message


def test_forbidden_profile_is_refused_through_the_form(hub):
    alice, _ = browser_login(hub, "alice")
    form = alice.get(f"{hub.url}/hub/spawn")
    xsrf = alice.cookies.get("_xsrf")
    response = alice.post(f"{hub.url}/hub/spawn", data={"profile": "ska-sdc1", "_xsrf": xsrf or ""},
                          headers={"Referer": str(form.url)})
    assert response.status_code == 403, response.status_code
    assert "Error: You may not use the profile &#39;ska-sdc1&#39;: it is reserved to other groups" in response.text
    assert "HTTP 403" not in response.text
    assert not hub.api("GET", "/users/alice").json()["servers"]
    assert urlsplit(str(response.url)).path.startswith("/hub/")


def test_a_refused_choice_is_one_warning_line_and_the_form_preselects_the_default(hub):
    alice, _ = browser_login(hub, "alice")
    xsrf = alice.cookies.get("_xsrf") or ""
    alice.post(f"{hub.url}/hub/spawn", data={"profile": "ska-sdc1", "_xsrf": xsrf},
               headers={"Referer": f"{hub.url}/hub/spawn"})
    log = hub.log()
    lines = [line for line in log.splitlines() if "You may not use the profile 'ska-sdc1'" in line]
    assert lines and all(line.startswith("[W ") for line in lines), lines
    assert "Failed to spawn single-user server with form" not in log and "Traceback" not in log
    form = alice.get(f"{hub.url}/hub/spawn").text
    assert re.findall(r'value="([^"]+)"\s+checked', form) == ["minimal"]
    assert "CPU: 0.5 cores guaranteed, up to 2 cores" in form


def test_start_with_nothing_chosen_runs_the_default_profile_and_records_it(hub):
    alice, _ = browser_login(hub, "alice")
    xsrf = alice.cookies.get("_xsrf") or ""
    response = alice.post(f"{hub.url}/hub/spawn", data={"_xsrf": xsrf}, headers={"Referer": f"{hub.url}/hub/spawn"})
    assert response.status_code in (200, 302), response.text
    server = wait_ready(hub, "alice")
    assert server["user_options"] == {"profile": "minimal"}
    home = alice.get(f"{hub.url}/hub/home").text
    assert "Your server" in home and "runs the profile <strong>Minimal environment</strong>" in home
    stop(hub, "alice")


def test_starts_with_a_profile_leave_no_unhandled_options_warning(hub):
    """Every start above chose a profile: JupyterHub must not call it unhandled (the spawners apply it)."""
    log = hub.log()
    assert "POST /hub/api/users/mariaska/server" in log  # starts with {"profile": ...} happened
    assert "Received unhandled user_options" not in log
