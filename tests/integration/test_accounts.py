"""Hub accounts against a real hub and development IAM: names, subjects, and what the logs keep."""

import json
import re
import tempfile
from pathlib import Path

import pytest

from .conftest import browser_login

pytestmark = pytest.mark.integration

FORGED = "[I 2026-11-26 00:00:00.000 JupyterHub] forged line"
USERS = [
    {"username": "alice", "sub": "8a4c2f1e-alice", "groups": ["escape"]},
    {"username": "ALICE", "sub": "5e6f7a8b-not-alice", "groups": ["escape"]},  # another person at the IAM
    {"username": "\u212aate", "sub": "kelvin-sign-sub", "groups": ["escape"]},
    {"username": "eve\n" + FORGED, "sub": "eve-sub", "groups": ["escape"]},
    {"username": "mallory", "sub": "mallory-sub", "groups": ["elsewhere"]},
    {"username": "bob", "sub": "bob-sub", "groups": ["escape"]},  # in the group, but blocked by the hub
]
for _user in USERS:
    _user.update(password="pw-" + _user["sub"], name=_user["username"], email=f"{_user['sub']}@example.org")
_USERS_FILE = Path(tempfile.mkdtemp(prefix="dlaas-accounts-")) / "users.json"
_USERS_FILE.write_text(json.dumps({"users": USERS}))
DEV_IAM_ARGS = [f"--users={_USERS_FILE}"]
HUB_OVERRIDES = {"DLaaSAuthenticator.blocked_users": ["bob"]}
PASSWORD = {u["username"]: u["password"] for u in USERS}

SEEN = []  # (code, state) of every callback the tests made


def login(hub, username):
    _, callback = browser_login(hub, username, PASSWORD[username])
    params = callback.request.url.params
    if "/hub/oauth_callback" in str(callback.request.url):
        SEEN.append((params.get("code"), params.get("state")))
    return callback


def test_owner_signs_in_and_the_account_is_bound_to_her_subject(hub):
    assert login(hub, "alice").status_code == 302
    state = hub.api("GET", "/users/alice").json()["auth_state"]
    assert state["subject"] == {"sub": "8a4c2f1e-alice", "iss": hub.iam_url.rstrip("/")}


def test_a_name_that_folds_onto_hers_cannot_take_the_account(hub):
    response = login(hub, "ALICE")
    assert response.status_code == 403
    assert "belongs to another identity" in response.text
    assert hub.api("GET", "/users/alice").json()["auth_state"]["subject"]["sub"] == "8a4c2f1e-alice"
    assert re.search(r"Login refused: hub account 'alice' is not for IAM subject '5e6f7a8b-not-alice'", hub.log())
    # and she still signs in
    assert login(hub, "alice").status_code == 302


def test_a_kelvin_sign_name_is_refused_as_not_acceptable(hub):
    response = login(hub, "\u212aate")
    assert response.status_code == 403
    assert "not acceptable as a hub user name" in response.text
    assert hub.api("GET", "/users/kate").status_code == 404


def test_a_newline_in_a_name_forges_no_log_line(hub):
    response = login(hub, "eve\n" + FORGED)
    assert response.status_code == 403
    assert "not acceptable as a hub user name" in response.text
    assert not any(line.startswith("[I 2026-11-26 00:00:00.000") for line in hub.log().splitlines())


def test_outsider_still_gets_the_group_page(hub):
    response = login(hub, "mallory")
    assert response.status_code == 403
    assert "not in a group that may use this hub" in response.text


def test_a_user_jupyterhub_blocks_after_our_checks_gets_its_refusal_and_no_account(hub):
    # DLaaSAuthenticator allows bob and hands his exchanges to the callback; JupyterHub's own
    # blocked_users check then refuses him, and the exchanges are dropped.
    response = login(hub, "bob")
    assert response.status_code == 403
    assert hub.api("GET", "/users/bob").status_code == 404
    log = hub.log()
    assert "User 'bob' blocked" in log
    assert "Traceback" not in log and "never retrieved" not in log


def test_no_code_or_state_in_hub_or_proxy_log(hub):
    # runs last in this module: every callback above, refused or accepted, is in SEEN
    assert len(SEEN) >= 6
    log = hub.log()
    assert "oauth_callback?code=[secret]&state=[secret]" in log  # the refusals were logged, scrubbed
    for code, state in SEEN:
        assert code and code not in log, "an authorization code is in the hub or proxy log"
        assert state and state not in log, "an OAuth state is in the hub or proxy log"
    for value in re.findall(r"[?&]token=([^&\s]+)", log):
        assert value == "[secret]"

