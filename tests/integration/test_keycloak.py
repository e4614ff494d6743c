"""The whole sign-in path against a second, independent OpenID provider: a real Keycloak.

Keycloak (the server distribution, dev mode with its file database, the realm of
dev-keycloak/escape-realm.json) stands where INDIGO IAM stands in the other tests: sign-in with PKCE
and nonce, groups by full path, both token exchanges (RFC 8693, Keycloak's standard token exchange),
Keycloak's refusals reaching the scientist as a page, renewal, revocation and RP-initiated logout.
Needs Keycloak in .tools/ and Java 21 or later (./scripts/test installs the one, finds the other);
without them the module skips saying so, and fails in CI. ./scripts/test runs it on its JupyterHub 5.5
leg only (DLAAS_SKIP_KEYCLOAK on the other).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
import yaml

from dlaas_hub.dev import devservices, keycloakserver
from dlaas_hub.ops.cli import main
from dlaas_hub.tokens.renewal import due_at

from .conftest import start_hub
from .test_spawn import server_environ, start, stop

pytestmark = pytest.mark.integration
TOKEN_LIFE = 40  # seconds: the realm's access token lifespan here, so that a renewal comes within the test
TARGETS = {
    # Keycloak: `audience` names a client of the realm, and only narrows what the client's scopes bring
    # in; the target's own client scope (eos-eulake, rucio) is what adds the audience to the token.
    "eos": {"audience": "eos-eulake", "scope": "openid eos-eulake"},
    "rucio": {"audience": "rucio", "scope": "openid rucio"},
    # Two of Keycloak's refusals, on optional targets: an audience no client has, and one the scopes
    # do not bring in.
    "nosuch": {"audience": "no-such-storage", "scope": "openid", "required": False},
    "narrow": {"audience": "rucio", "scope": "openid", "required": False},
}


@pytest.fixture(scope="module")
def keycloak(ports, client_secret, tmp_path_factory):
    if os.environ.get("DLAAS_SKIP_KEYCLOAK"):
        pytest.skip(os.environ["DLAAS_SKIP_KEYCLOAK"])
    try:
        keycloakserver.keycloak_home()
        keycloakserver.java_home()
    except devservices.ServiceError as e:
        if os.environ.get("DLAAS_REQUIRE_KEYCLOAK"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    hubs = [f"http://127.0.0.1:{ports[name]}" for name in ("hub", "hub2")]
    server = keycloakserver.start_keycloak(
        tmp_path_factory.mktemp("keycloak"), devservices.free_port(), client_secret=client_secret,
        redirect_uris=[f"{url}/hub/oauth_callback" for url in hubs],
        post_logout_uris=[f"{url}/hub/login" for url in hubs], access_token_lifespan=TOKEN_LIFE)
    print(f"Keycloak {keycloakserver.VERSION} started in {server.started_in:.1f} s")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(keycloak, ports, client_secret, tmp_path_factory):
    hub = start_hub(tmp_path_factory.mktemp("hub"), hub_port=ports["hub"], iam_url=keycloak.issuer,
                    client_secret=client_secret, exchange_targets=TARGETS,
                    overrides={"DLaaSAuthenticator.client_id": keycloakserver.CLIENT_ID})
    yield hub
    devservices.stop(hub.proc)


def browser(hub) -> httpx.Client:
    client = httpx.Client(timeout=30)

    def loopback_is_a_secure_context(response):
        # Keycloak marks its cookies Secure even on http://127.0.0.1; browsers send them there (a
        # loopback origin is a secure context), http.cookiejar does not: do as browsers do.
        for cookie in client.cookies.jar:
            cookie.secure = False

    client.event_hooks["response"].append(loopback_is_a_secure_context)
    return client


def sign_in(hub, client: httpx.Client, username: str, password: str | None = None) -> tuple[httpx.Response, bool]:
    """Click "Sign in" and answer Keycloak's form if it asks; returns the hub's last answer and whether
    the password was asked."""
    response, asked = client.get(f"{hub.url}/hub/oauth_login"), False
    for _ in range(20):
        if response.status_code in (301, 302, 303, 307):
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(hub.url) and not target.startswith(f"{hub.url}/hub/oauth_callback"):
                return response, asked
            response = client.get(target)
        elif response.status_code == 200 and 'id="kc-form-login"' in response.text:
            asked = True
            action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1))
            response = client.post(action, data={"username": username,
                                                 "password": password or keycloakserver.PASSWORDS[username]})
        else:
            return response, asked
    raise AssertionError("too many redirects")


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture(scope="module")
def maria(hub):
    client = browser(hub)
    answer, asked = sign_in(hub, client, "mariaska")
    assert asked and answer.status_code == 302, answer.text[-2000:]
    yield client
    client.close()


def test_sign_in_binds_the_account_to_keycloaks_subject_and_reads_groups_by_path(hub, maria):
    user = hub.api("GET", "/users/mariaska").json()
    assert sorted(user["groups"]) == ["/escape", "/escape/ska"]
    state = user["auth_state"]
    id_token = claims(state["id_token"])
    assert re.fullmatch(r"[0-9a-f-]{36}", id_token["sub"])  # Keycloak's subjects are UUIDs
    assert id_token["preferred_username"] == "mariaska" and id_token["nonce"]
    assert id_token["iss"] == hub.iam_url  # the issuer, as --hostname pins it


def test_both_exchanges_give_tokens_for_their_audience_about_the_same_subject(hub, maria):
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    subject = claims(state["id_token"])["sub"]
    for target, audience in (("eos", "eos-eulake"), ("rucio", "rucio")):
        token = claims(state["exchanged"][target]["access_token"])
        audiences = token["aud"] if isinstance(token["aud"], list) else [token["aud"]]
        assert audiences == [audience], (target, token["aud"])  # narrowed to that storage alone
        assert token["sub"] == subject and token["azp"] == keycloakserver.CLIENT_ID
        assert "refresh_token" not in state["exchanged"][target]  # Keycloak issues none with an exchange


def test_keycloaks_refusals_reach_the_token_page_and_the_log_in_words(hub, maria):
    page = maria.get(f"{hub.url}/hub/dlaas/tokens")
    assert page.status_code == 200
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    errors = state["exchange_errors"]
    assert errors["nosuch"]["error"] == "invalid_client" and "Audience not found" in errors["nosuch"]["reason"]
    assert errors["narrow"]["error"] == "invalid_request" and "Requested audience not available" in \
        errors["narrow"]["reason"]
    for target in ("nosuch", "narrow"):
        assert f'data-target="{target}"' in page.text and errors[target]["error"] in page.text
    log = hub.log()
    for target in ("nosuch", "narrow"):
        assert log.count(f"Token exchange for target {target} failed for user mariaska") == 1


def test_profiles_follow_keycloaks_groups(hub, maria):
    page = maria.get(f"{hub.url}/hub/spawn").text
    assert 'value="ska-sdc1"' in page  # /escape/ska's profile, for a member of /escape/ska
    alice = browser(hub)
    answer, _ = sign_in(hub, alice, "alice")
    assert answer.status_code == 302
    page = alice.get(f"{hub.url}/hub/spawn").text
    assert 'value="minimal"' in page and 'value="ska-sdc1"' not in page


def test_keycloaks_admin_group_makes_hub_admins(hub, maria):
    client = browser(hub)
    answer, _ = sign_in(hub, client, "hubadmin")
    assert answer.status_code == 302
    assert hub.api("GET", "/users/hubadmin").json()["admin"] is True  # a member of /escape/admins
    assert hub.api("GET", "/users/mariaska").json()["admin"] is False


def test_a_required_storage_keycloak_refuses_stops_the_sign_in_with_a_page_in_words(keycloak, ports, client_secret,
                                                                                      tmp_path):
    # The same realm, a hub whose required EOS target names an audience Keycloak has no client for.
    targets = {"eos": {"audience": "no-such-storage", "scope": "openid eos-eulake"}}
    other = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=keycloak.issuer, client_secret=client_secret,
                      exchange_targets=targets, overrides={"DLaaSAuthenticator.client_id": keycloakserver.CLIENT_ID})
    try:
        answer, _ = sign_in(other, browser(other), "mariaska")
        assert answer.status_code in (400, 403, 502), answer.status_code
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())
        # For the scientist, which service and whom to ask; Keycloak's own words go to the operator's log.
        assert "the identity provider refused your 'eos' storage token (invalid_client)" in text, text
        assert "audience 'no-such-storage'" in text and "Traceback" not in answer.text
        lines = [line for line in other.log().splitlines() if "Token exchange for target eos failed" in line]
        assert len(lines) == 1 and "invalid_client: Audience not found" in lines[0]
    finally:
        devservices.stop(other.proc)


def create_account(keycloak, username: str) -> str:
    """A new member of /escape at Keycloak, with the realm's default roles; returns its id (its sub)."""
    made = keycloak.admin("POST", "/users", json={
        "username": username, "enabled": True, "email": f"{username}@escape.example", "emailVerified": True,
        "firstName": username.title(), "lastName": "Example", "groups": ["/escape"],
        "credentials": [{"type": "password", "value": f"{username}-demo", "temporary": False}]})
    assert made.status_code == 201, made.text
    return made.headers["location"].rsplit("/", 1)[-1]


def test_an_account_keycloak_re_creates_under_the_same_name_cannot_take_the_hub_account(hub, keycloak):
    # Keycloak's sub is the account's UUID: delete "carol" and create her again, and the same
    # preferred_username comes with another sub. The hub account stays with the first.
    create_account(keycloak, "carol")
    answer, _ = sign_in(hub, browser(hub), "carol", "carol-demo")
    assert answer.status_code == 302
    bound = hub.api("GET", "/users/carol").json()["auth_state"]["subject"]
    (first,) = keycloak.admin("GET", "/users?username=carol&exact=true").json()
    assert bound["sub"] == first["id"]
    keycloak.admin("DELETE", f"/users/{first['id']}")
    create_account(keycloak, "carol")
    answer, asked = sign_in(hub, browser(hub), "carol", "carol-demo")
    assert asked and answer.status_code == 403
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())
    assert "This hub account belongs to another identity at the identity provider" in text
    assert hub.api("GET", "/users/carol").json()["auth_state"]["subject"] == bound
    assert hub.log().count("Login refused: hub account 'carol' is not for IAM subject") == 1


def test_an_account_without_offline_access_gets_keycloaks_refusal_in_words(hub, keycloak):
    # The hub asks for offline_access; an account without the role (here: the realm's default roles
    # taken away) is refused by Keycloak at the code exchange, every time.
    dave = create_account(keycloak, "dave")
    (defaults,) = [r for r in keycloak.admin("GET", f"/users/{dave}/role-mappings/realm").json()
                   if r["name"] == "default-roles-escape"]
    keycloak.admin("DELETE", f"/users/{dave}/role-mappings/realm", json=[defaults])
    answer, asked = sign_in(hub, browser(hub), "dave", "dave-demo")
    assert asked and answer.status_code == 502
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())
    assert "The identity provider refused this sign-in (not_allowed: Offline tokens not allowed for the user " \
           "or client). Signing in again will not change that" in text, text
    assert "Traceback" not in answer.text and hub.api("GET", "/users/dave").status_code == 404
    assert hub.log().count("Offline tokens not allowed") == 1, hub.log()[-3000:]


def test_an_outsider_gets_a_readable_refusal(hub):
    client = browser(hub)
    answer, asked = sign_in(hub, client, "outsider")
    assert asked and answer.status_code == 403
    assert "not in a group" in answer.text or "groups" in answer.text


def test_renewal_refreshes_the_sign_in_token_then_exchanges_again(hub, maria):
    before = hub.api("GET", "/users/mariaska").json()["auth_state"]
    first = claims(before["exchanged"]["eos"]["access_token"])
    scopes = ["custom:dlaas:tokens!user", "access:servers!user"]  # a server's token
    token = hub.api("POST", "/users/mariaska/tokens", json={"scopes": scopes, "note": "agent"}).json()["token"]
    deadline = time.monotonic() + 3 * TOKEN_LIFE
    while True:  # what a server's token agent does: ask, and get renewed files once they are due
        answer = httpx.get(f"{hub.url}/hub/api/dlaas/users/mariaska/credentials", params={"server": ""},
                           headers={"Authorization": f"token {token}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        after = hub.api("GET", "/users/mariaska").json()["auth_state"]
        renewed = claims(after["exchanged"]["eos"]["access_token"])
        if renewed["iat"] > first["iat"]:
            break
        assert time.monotonic() < deadline, "the exchanged tokens were never renewed"
        time.sleep(3)
    assert renewed["aud"] in ("eos-eulake", ["eos-eulake"]) and renewed["sub"] == first["sub"]
    assert after["access_token"] != before["access_token"]  # the sign-in token was refreshed first
    files = {f["name"]: f["content"] for f in answer.json()["files"]}
    assert after["exchanged"]["eos"]["access_token"] in files["eos-bearer-token"]


def test_a_workshop_asking_at_once_reaches_keycloak_with_one_refresh(hub, keycloak, maria):
    # Twenty requests for the same user's files once her tokens are due (a restarted agent, a token page,
    # the status bar): one refresh and one exchange per storage, as Keycloak itself counts them.
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    eos = state["exchanged"]["eos"]
    due = max(due_at(eos["expires_at"], margin=300, lifetime=eos["lifetime"]),  # the hub's default margin
              due_at(state["access_token_expires_at"], margin=300, lifetime=state["access_token_lifetime"]))
    scopes = ["custom:dlaas:tokens!user", "access:servers!user"]
    token = hub.api("POST", "/users/mariaska/tokens", json={"scopes": scopes, "note": "agent"}).json()["token"]
    time.sleep(max(0.0, due - time.time()) + 1)
    since = time.time()

    async def ask_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"token {token}"}) as client:
            url = f"{hub.url}/hub/api/dlaas/users/mariaska/credentials"
            return await asyncio.gather(*(client.get(url, params={"server": ""}) for _ in range(20)))

    answers = asyncio.run(ask_at_once())
    assert [a.status_code for a in answers] == [200] * 20
    assert len(keycloak.events_of("mariaska", "REFRESH_TOKEN", since)) == 1
    exchanged = keycloak.events_of("mariaska", "TOKEN_EXCHANGE", since)
    assert sorted(e["details"]["audience"] for e in exchanged) == ["eos-eulake", "rucio"], exchanged
    renewed = hub.api("GET", "/users/mariaska").json()["auth_state"]
    for answer in answers:  # each waited for the one renewal, and carries its token
        files = {f["name"]: f["content"] for f in answer.json()["files"]}
        assert renewed["exchanged"]["eos"]["access_token"] in files["eos-bearer-token"]


def test_a_running_server_gets_keycloaks_tokens_and_their_renewals(hub, keycloak, maria):
    server = start(hub, "mariaska", "minimal")
    try:
        token_file = Path(server_environ(server)["DLAAS_EOS_TOKEN_FILE"])
        deadline = time.monotonic() + 30
        while not token_file.exists():
            assert time.monotonic() < deadline, "the server's token agent wrote no EOS token"
            time.sleep(0.3)
        first = token_file.read_text()
        signing_keys = jwt.PyJWKClient(f"{keycloak.issuer}/protocol/openid-connect/certs")
        key = signing_keys.get_signing_key_from_jwt(first).key
        claims_first = jwt.decode(first, key=key, algorithms=["RS256"], audience="eos-eulake", issuer=keycloak.issuer)
        deadline = time.monotonic() + 3 * TOKEN_LIFE
        while token_file.read_text() == first:  # the agent renews it before it expires
            assert time.monotonic() < deadline, "the server's EOS token was never renewed"
            time.sleep(2)
        renewed, renewed_at = token_file.read_text(), time.time()
        claims_renewed = jwt.decode(renewed, key=signing_keys.get_signing_key_from_jwt(renewed).key,
                                    algorithms=["RS256"], audience="eos-eulake", issuer=keycloak.issuer)
        assert claims_renewed["sub"] == claims_first["sub"] and claims_renewed["exp"] > claims_first["exp"]
        assert claims_first["exp"] >= renewed_at - 2.5  # replaced before the old one ran out (polled every 2 s)
    finally:
        stop(hub, "mariaska")


def test_sign_out_revokes_the_refresh_token_and_keycloak_accepts_the_rp_logout(hub, keycloak, client_secret):
    client = browser(hub)
    answer, asked = sign_in(hub, client, "alice")
    assert asked and answer.status_code == 302
    # What the hub's refresh token holds at Keycloak: an offline session (offline_access, the hub's scope,
    # for renewals over days), into which Keycloak turned the browser's own session.
    state = hub.api("GET", "/users/alice").json()["auth_state"]
    held = claims(state["refresh_token"])["sid"]
    assert held in {s["id"] for s in keycloak.offline_sessions_of("alice")} and keycloak.sessions_of("alice") == []
    page = client.get(f"{hub.url}/hub/logout")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    logout = client.post(f"{hub.url}/hub/logout", data={"_xsrf": xsrf})
    assert logout.status_code == 302
    target = urlsplit(logout.headers["location"])
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{hub.iam_url}/protocol/openid-connect/logout"
    assert params["id_token_hint"] == state["id_token"]
    assert params["post_logout_redirect_uri"] == f"{hub.url}/hub/login"
    back = client.get(logout.headers["location"])  # with id_token_hint, Keycloak asks no confirmation
    assert back.status_code in (302, 303) and back.headers["location"] == f"{hub.url}/hub/login"
    refused = httpx.post(f"{hub.iam_url}/protocol/openid-connect/token",
                         auth=(keycloakserver.CLIENT_ID, client_secret),
                         data={"grant_type": "refresh_token", "refresh_token": state["refresh_token"]})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"  # revoked (RFC 7009)
    assert held not in {s["id"] for s in keycloak.offline_sessions_of("alice")}  # and with it, its session
    assert "Sign-out of alice: refresh token revoked at the provider" in hub.log()
    _, asked = sign_in(hub, client, "alice")
    assert asked  # as every sign-in with offline_access does; the next test shows the RP logout's part


def test_without_offline_access_the_rp_logout_ends_keycloaks_single_sign_on(keycloak, ports, client_secret,
                                                                             tmp_path):
    # Without offline_access the refresh token is bound to the browser's session at Keycloak, which
    # signs the browser in again without a password. Revoking that refresh token would end the
    # session too (measured); with revocation off, this shows the RP-initiated logout's own part.
    scope = ["openid", "profile", "email", "wlcg.groups"]
    other = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=keycloak.issuer, client_secret=client_secret,
                      exchange_targets={"eos": TARGETS["eos"]},
                      overrides={"DLaaSAuthenticator.client_id": keycloakserver.CLIENT_ID,
                                 "DLaaSAuthenticator.scope": scope, "DLaaSAuthenticator.revoke_on_logout": False,
                                 "DLaaSAuthenticator.groups_claim": "groups"})
    try:
        client = browser(other)
        answer, asked = sign_in(other, client, "alice")
        assert asked and answer.status_code == 302
        assert other.api("GET", "/users/alice").json()["groups"] == ["/escape"]  # read from `groups` this time
        refresh = claims(other.api("GET", "/users/alice").json()["auth_state"]["refresh_token"])
        assert refresh["typ"] == "Refresh" and refresh["sid"] in {s["id"] for s in keycloak.sessions_of("alice")}
        answer, asked = sign_in(other, client, "alice")
        assert answer.status_code == 302 and not asked  # Keycloak's single sign-on: no password
        state = other.api("GET", "/users/alice").json()["auth_state"]
        page = client.get(f"{other.url}/hub/logout")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        logout = client.post(f"{other.url}/hub/logout", data={"_xsrf": xsrf})
        assert logout.status_code == 302 and "id_token_hint=" in logout.headers["location"]
        assert refresh["sid"] in {s["id"] for s in keycloak.sessions_of("alice")}  # nothing revoked
        back = client.get(logout.headers["location"])
        assert back.status_code in (302, 303) and back.headers["location"] == f"{other.url}/hub/login"
        assert refresh["sid"] not in {s["id"] for s in keycloak.sessions_of("alice")}  # ended by the RP logout
        refused = httpx.post(f"{keycloak.issuer}/protocol/openid-connect/token",
                             auth=(keycloakserver.CLIENT_ID, client_secret),
                             data={"grant_type": "refresh_token", "refresh_token": state["refresh_token"]})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"  # and its tokens
        answer, asked = sign_in(other, client, "alice")
        assert asked and answer.status_code == 302  # the next sign-in asks for the password
    finally:
        devservices.stop(other.proc)


def test_tokens_of_the_hubs_previous_client_send_the_scientist_to_sign_in_again(keycloak, ports, client_secret,
                                                                                  tmp_path):
    # The operator moves the hub to a new client of the realm and adds Rucio. The sign-in tokens stored
    # before name the old client in azp: Keycloak refuses to exchange them for the new one (403
    # access_denied "Client is not within the token audience") and to refresh them. The scientist is
    # sent to sign in again, and gets both storages' tokens from the new client.
    template = keycloak.admin("GET", f"/clients?clientId={keycloakserver.CLIENT_ID}").json()[0]
    successor = {k: v for k, v in template.items() if k not in ("id", "protocolMappers")}
    successor.update(clientId="dlaas-hub-next", secret=client_secret)
    created = keycloak.admin("POST", "/clients", json=successor)
    assert created.status_code == 201, created.text
    crypt_key = os.urandom(32).hex()
    before = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=keycloak.issuer, client_secret=client_secret,
                       exchange_targets={"eos": TARGETS["eos"]}, crypt_key=crypt_key,
                       overrides={"DLaaSAuthenticator.client_id": keycloakserver.CLIENT_ID})
    client = browser(before)
    try:
        answer, _ = sign_in(before, client, "mariaska")
        assert answer.status_code == 302
    finally:
        devservices.stop(before.proc)
    after = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=keycloak.issuer, client_secret=client_secret,
                      exchange_targets={"eos": TARGETS["eos"], "rucio": TARGETS["rucio"]}, crypt_key=crypt_key,
                      overrides={"DLaaSAuthenticator.client_id": "dlaas-hub-next"})
    try:
        page = client.get(f"{after.url}/hub/dlaas/tokens")
        assert page.status_code == 302 and urlsplit(page.headers["location"]).path == "/hub/login"
        log = after.log()
        refusals = [line for line in log.splitlines() if "Client is not within the token audience" in line]
        assert len(refusals) == 1 and "mariaska" in refusals[0], log[-3000:]
        assert "The provider refused the refresh token of mariaska" in log
        answer, _ = sign_in(after, client, "mariaska")
        assert answer.status_code == 302
        state = after.api("GET", "/users/mariaska").json()["auth_state"]
        assert claims(state["access_token"])["azp"] == "dlaas-hub-next"
        assert sorted(state["exchanged"]) == ["eos", "rucio"] and not state.get("exchange_errors")
        assert client.get(f"{after.url}/hub/dlaas/tokens").status_code == 200
    finally:
        devservices.stop(after.proc)
        (made,) = keycloak.admin("GET", "/clients?clientId=dlaas-hub-next").json()
        keycloak.admin("DELETE", f"/clients/{made['id']}")


def test_the_docs_give_the_settings_tested_here():
    # docs/operators/keycloak.md's hub settings are the ones this module signs in with.
    page = (devservices.REPO_ROOT / "docs" / "operators" / "keycloak.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "exchange_targets" in b]
    documented = yaml.safe_load(block)
    assert documented["client_id"] == keycloakserver.CLIENT_ID
    for name, target in documented["exchange_targets"].items():
        assert (target["audience"], target["scope"]) == (TARGETS[name]["audience"], TARGETS[name]["scope"])


def test_check_config_online_finds_keycloaks_token_exchange(keycloak, tmp_path, capsys):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"c.JupyterHub.authenticator_class = 'dlaas'\n"
                      f"c.DLaaSAuthenticator.oidc_issuer = {keycloak.issuer!r}\n"
                      f"c.DLaaSAuthenticator.client_id = 'dlaas-hub'\nc.DLaaSAuthenticator.client_secret = 's'\n"
                      f"c.DLaaSAuthenticator.exchange_targets = {TARGETS!r}\nc.CryptKeeper.keys = ['{'a' * 64}']\n")
    assert main(["check-config", str(config), "--online"]) == 0, capsys.readouterr().out
    assert "oidc_issuer" not in capsys.readouterr().out  # the provider offers every grant the hub uses
