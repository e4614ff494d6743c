"""Only the user's own hand signs out or starts a server: the attacks of an attacker's trial, made as
real requests against a real hub and the development IAM.

Each test makes the request another site could make a signed-in browser send (cross-site fetch
headers, no ``_xsrf``, the hub's cookies), or a notebook could send with its server's token, and
checks that the hub refuses it and that nothing changed.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .conftest import CLIENT_ID, browser_login
from .test_signout import press_sign_out
from .test_spawn import server_environ, start, stop

pytestmark = pytest.mark.integration

# What a browser sends with a request another site's page started.
CROSS_SITE_NAVIGATION = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
                         "Referer": "https://attacker.example/page"}
CROSS_SITE_IMAGE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image",
                    "Referer": "https://attacker.example/page"}
CROSS_SITE_FORM = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Origin": "https://attacker.example",
                   "Referer": "https://attacker.example/page"}
# A renewal storm's worth of headroom above a normal agent, far below the flood of the trial (8,090 in 30 s).
HUB_OVERRIDES = {"DLaaSAuthenticator.credentials_burst": 10, "DLaaSAuthenticator.credentials_rate": 2.0}


def refresh_token_works(hub, client_secret, refresh_token) -> bool:
    answer = httpx.post(f"{hub.iam_url}token", auth=(CLIENT_ID, client_secret),
                        data={"grant_type": "refresh_token", "refresh_token": refresh_token})
    return answer.status_code == 200


def signed_in_as(client: httpx.Client, hub) -> str | None:
    answer = client.get(f"{hub.url}/hub/api/user")
    return answer.json()["name"] if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def alice(hub):
    client, callback = browser_login(hub, "alice")
    assert callback.status_code == 302
    return client, callback


def test_the_hubs_cookies_carry_samesite_lax(alice):
    _, callback = alice
    cookies = {c.split("=", 1)[0]: c for c in callback.headers.get_list("set-cookie")}
    assert {"jupyterhub-hub-login", "jupyterhub-session-id"} <= set(cookies), cookies.keys()
    for name in ("jupyterhub-hub-login", "jupyterhub-session-id"):
        assert re.search(r";\s*SameSite=Lax", cookies[name], re.I), cookies[name]


@pytest.mark.parametrize("headers", [CROSS_SITE_NAVIGATION, CROSS_SITE_IMAGE], ids=["link", "image"])
def test_a_forged_sign_out_revokes_nothing_and_signs_nobody_out(hub, client_secret, headers):
    client, _ = browser_login(hub, "MariaSKA")
    refresh_token = hub.api("GET", "/users/mariaska").json()["auth_state"]["refresh_token"]
    forged = client.get(f"{hub.url}/hub/logout", headers=headers)
    # The page asks for a confirmation another site cannot give: a form with the hub's _xsrf.
    assert forged.status_code == 200 and 'id="dlaas-sign-out"' in forged.text and 'name="_xsrf"' in forged.text
    assert "set-cookie" not in {k.lower() for k in forged.headers.keys()} or all(
        "jupyterhub-hub-login" not in c for c in forged.headers.get_list("set-cookie"))
    assert signed_in_as(client, hub) == "mariaska"
    assert refresh_token_works(hub, client_secret, refresh_token), "a forged GET revoked the refresh token"
    assert "refresh token revoked" not in hub.log()


def test_a_forged_sign_out_form_without_xsrf_is_refused(hub, client_secret):
    client, _ = browser_login(hub, "hubadmin")
    refresh_token = hub.api("GET", "/users/hubadmin").json()["auth_state"]["refresh_token"]
    forged = client.post(f"{hub.url}/hub/logout", headers=CROSS_SITE_FORM, data={})
    assert forged.status_code == 403
    assert signed_in_as(client, hub) == "hubadmin"
    assert refresh_token_works(hub, client_secret, refresh_token)
    # A guessed or another session's _xsrf is no better.
    forged = client.post(f"{hub.url}/hub/logout", headers=CROSS_SITE_FORM, data={"_xsrf": "2|00000000|guess|1"})
    assert forged.status_code == 403 and signed_in_as(client, hub) == "hubadmin"


@pytest.mark.parametrize("path", ["/hub/spawn/alice/forged?profile=minimal", "/hub/spawn/alice?profile=minimal",
                                  "/hub/spawn/alice/forged2?opt-profile=minimal"])
def test_a_link_never_starts_a_server(hub, alice, path):
    client, _ = alice
    page = client.get(f"{hub.url}{path}", headers=CROSS_SITE_NAVIGATION)
    assert page.status_code == 200
    assert "a server starts only from this page" in page.text and 'name="profile"' in page.text
    checked = [m for m in re.findall(r'<input[^>]*name="profile"[^>]*>', page.text) if "checked" in m]
    assert len(checked) == 1 and 'value="minimal"' in checked[0]  # the linked profile, for the user to confirm
    time.sleep(1)
    servers = hub.api("GET", "/users/alice").json()["servers"]
    assert not any(s.get("started") or s.get("pending") for s in servers.values()), servers
    assert not [d for d in (hub.workdir / "credentials").glob("alice/*")], "credential files written"


def test_options_of_the_wrong_type_are_a_400_and_the_servers_page_keeps_working(hub, alice):
    client, _ = alice
    refused = hub.api("POST", "/users/alice/servers/t1", json={"profile": ["minimal"]})
    assert refused.status_code == 400, refused.text
    assert "must be a string" in refused.json()["message"]
    for _ in range(2):  # every reload
        page = client.get(f"{hub.url}/hub/spawn/alice/t1")
        assert page.status_code == 200 and 'value="minimal"' in page.text
    assert "unhashable" not in hub.log() and "Traceback" not in hub.log()[-20000:]


def test_one_servers_flood_gets_429_and_the_hub_keeps_serving_others(hub, alice):
    server = start(hub, "alice", "minimal")
    try:
        token = server_environ(server)["JUPYTERHUB_API_TOKEN"]
        url = f"{hub.url}/hub/api/dlaas/users/alice/credentials"
        with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as notebook:
            answers = [notebook.get(url, params={"server": ""}) for _ in range(60)]
        codes = [a.status_code for a in answers]
        assert codes.count(200) <= 10 + 2 * 10, codes  # the burst, and what the rate refilled meanwhile
        refused = [a for a in answers if a.status_code == 429]
        assert len(refused) >= 30
        assert all(a.headers["Retry-After"].isdigit() and int(a.headers["Retry-After"]) >= 1 for a in refused)
        assert all(token not in a.text for a in refused)
        metrics = hub.api("GET", "/metrics").text
        counted = re.search(r'dlaas_credentials_served_total\{outcome="rate_limited"\} (\d+)', metrics)
        assert counted and int(float(counted.group(1))) >= len(refused)
        # Another user's API is not slowed or refused by it.
        assert hub.api("GET", "/users/mariaska").status_code == 200
        log = hub.log()
        assert "request(s) refused (429)" in log and log.count("429 GET /hub/api/dlaas") <= 1
        # The server's own agent still gets its files once the bucket has refilled.
        time.sleep(1.5)
        with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as agent:
            assert agent.get(url, params={"server": ""}).status_code == 200
    finally:
        stop(hub, "alice")


def test_the_sign_out_page_signs_out_on_its_own_form(hub, client_secret):
    client, _ = browser_login(hub, "MariaSKA")
    refresh_token = hub.api("GET", "/users/mariaska").json()["auth_state"]["refresh_token"]
    done = press_sign_out(client, hub)
    assert done.status_code == 302 and done.headers["location"].startswith(f"{hub.iam_url}session/end?")
    assert signed_in_as(client, hub) is None
    assert not refresh_token_works(hub, client_secret, refresh_token)
