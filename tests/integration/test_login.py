"""A full login over HTTP against the development IAM and a real JupyterHub."""

import re

import httpx
import jwt
import pytest

from .conftest import EXCHANGE_TARGETS, browser_login

pytestmark = pytest.mark.integration


def test_login_gives_user_groups_and_exchanged_tokens(hub):
    client, callback = browser_login(hub, "MariaSKA")
    assert callback.status_code == 302, callback.text
    assert callback.headers["location"].startswith("/hub/")

    user = hub.api("GET", "/users/mariaska").json()
    assert user["name"] == "mariaska"
    assert user["admin"] is False
    assert set(user["groups"]) == {"/escape", "/escape/ska"}

    state = user["auth_state"]
    assert state["iam_username"] == "MariaSKA"
    assert state["refresh_token"] and state["id_token"] and state["access_token"]
    assert set(state["exchanged"]) == {"eos", "rucio"}
    jwks = httpx.get(f"{hub.iam_url}jwks").json()
    for name, target in EXCHANGE_TARGETS.items():
        token = state["exchanged"][name]["access_token"]
        key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"]))
        claims = jwt.decode(token, key=key.key, algorithms=["RS256"], audience=target["audience"])
        assert claims["aud"] == target["audience"]
        assert claims["scope"] == target["scope"]
        assert claims["act"]["sub"] == "dlaas-hub-test"
        assert state["exchanged"][name]["expires_at"] == claims["exp"]

    # The browser is logged in: the hub knows who it is.
    assert client.get(f"{hub.url}/hub/api/user", headers={"Referer": f"{hub.url}/hub/"}).status_code in (200, 403)


def test_admin_group_makes_an_admin(hub):
    _, callback = browser_login(hub, "hubadmin")
    assert callback.status_code == 302
    user = hub.api("GET", "/users/hubadmin").json()
    assert user["admin"] is True
    assert "/escape/admins" in user["groups"]


def test_user_outside_allowed_groups_gets_403_page(hub):
    _, callback = browser_login(hub, "mallory")
    assert callback.status_code == 403
    # Headed by the status, the message said once (oauthenticator's own error would repeat it).
    assert re.search(r"<h1>\s*403 : Forbidden\s*</h1>", callback.text)
    assert callback.text.count("not in a group that may use this hub") == 1
    assert hub.api("GET", "/users/mallory").status_code == 404


def test_wrong_password_stays_at_the_iam(hub):
    _, response = browser_login(hub, "alice", password="wrong")
    assert response.status_code == 401
    assert "Invalid username or password" in response.text


def test_no_token_in_hub_debug_log(hub):
    browser_login(hub, "alice")
    state = hub.api("GET", "/users/alice").json()["auth_state"]
    secrets_seen = [state["access_token"], state["refresh_token"], state["id_token"]]
    secrets_seen += [t["access_token"] for t in state["exchanged"].values()]
    log = hub.log()
    # The hub logged at debug level, and so would its HTTP client (aiohttp's loggers are set to debug).
    assert "[D " in log
    for secret in secrets_seen:
        # any 16-character window of a token would be a leak
        for i in range(0, len(secret) - 16, 8):
            assert secret[i:i + 16] not in log, "a token fragment appears in the hub log"


def test_the_hub_log_names_the_profiles_it_loaded_at_start(hub):
    # The deployment guide tells operators to look for this line after an install.
    assert re.search(r"Loaded \d+ profiles from \S+/profiles", hub.log()), hub.log()[-3000:]


def test_the_hub_freezes_its_start_up_heap_once(hub):
    # Full garbage collections then skip the modules, configuration and mappings loaded at start.
    frozen = re.findall(r"Start-up heap frozen: full garbage collections skip its (\d+) objects", hub.log())
    assert len(frozen) == 1 and int(frozen[0]) > 100_000, hub.log()[-3000:]
