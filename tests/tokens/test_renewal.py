"""Token renewal in the hub (DLaaSAuthenticator.refresh_user and refresh_credentials), against respx."""

import asyncio
import copy
import logging
import time

import httpx
import pytest

from dlaas_hub.tokens import renewal
from dlaas_hub.tokens.renewal import Backoff, is_due

from ..auth.build import make
from ..fakeiam import FakeHandler

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")


class StoredUser:
    """A hub user as the authenticator sees it: a name and an auth_state store."""

    def __init__(self, name, auth_state):
        self.name = name
        self.state = auth_state
        self.saves = 0
        self.loads = 0

    async def get_auth_state(self):
        self.loads += 1
        return copy.deepcopy(self.state)

    async def save_auth_state(self, state):
        self.saves += 1
        self.state = copy.deepcopy(state)


@pytest.fixture
async def auth(iam):
    a = make(refresh_margin=300, refresh_backoff=0.2)
    yield a
    await a.iam_client.aclose()


@pytest.fixture
async def user(iam, auth):
    model = await auth.authenticate(FakeHandler())
    return StoredUser(model["name"], model["auth_state"])


def calls(iam):
    return {"refresh": len(iam.refresh_requests), "exchange": len(iam.exchange_requests)}


def delta(iam, before):
    return {name: count - before[name] for name, count in calls(iam).items()}


def expire(user, *targets, access=False, in_seconds=10):
    for name in targets:
        user.state["exchanged"][name]["expires_at"] = int(time.time()) + in_seconds
    if access:
        user.state["access_token_expires_at"] = int(time.time()) + in_seconds


# -- deciding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expires_in,margin,lifetime,due", [
    (1000, 300, None, False),
    (200, 300, None, True),
    (200, 300, 3600, True),
    (15, 300, 20, False),   # short-lived: renewed in its second half only
    (9, 300, 20, True),
    (-5, 300, None, True),
])
def test_is_due(expires_in, margin, lifetime, due):
    now = 1_000_000
    assert is_due(now + expires_in, now=now, margin=margin, lifetime=lifetime) is due


def test_unknown_expiry_is_due():
    assert is_due(None, now=0, margin=1)


def test_backoff_grows_with_jitter_and_resets():
    backoff = Backoff(base=1, ceiling=8)
    delays = [backoff.failed(0) for _ in range(6)]
    assert all(1 <= d <= 8 for d in delays)
    assert backoff.not_before > 0
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.not_before == 0


def test_backoff_comes_back_before_the_tokens_in_place_run_out():
    backoff = Backoff(base=5, ceiling=300)
    backoff.failures = 8  # long into an outage: the next pause would be up to 300 s
    assert 5 <= backoff.failed(1000, deadline=1060) <= 30  # at most half of the 60 s the tokens have left
    assert backoff.failed(1000, deadline=1004) == 5  # never below the base
    delays = [backoff.failed(1000, deadline=990) for _ in range(20)]  # run out already: nothing to save
    assert max(delays) > 30


# -- renewing ---------------------------------------------------------------------------------

async def test_nothing_due_means_no_network_io(iam, auth, user):
    before = {route.name: route.call_count for route in iam.router.routes}
    total = sum(r.call_count for r in iam.router.routes)
    assert await auth.refresh_user(user) is True
    assert sum(r.call_count for r in iam.router.routes) == total, before
    assert user.saves == 0


async def test_nothing_due_is_decided_without_even_reading_auth_state(iam, auth, user):
    assert await auth.refresh_user(user) is True
    loads = user.loads
    for _ in range(100):
        assert await auth.refresh_user(user) is True
    assert user.loads == loads  # JupyterHub decrypts auth_state on every read: skip it until due


async def test_only_due_targets_are_re_exchanged_with_the_current_token(iam, auth, user):
    old_rucio = user.state["exchanged"]["rucio"]["access_token"]
    old_eos = user.state["exchanged"]["eos"]["access_token"]
    expire(user, "eos")
    start = calls(iam)
    assert await auth.refresh_user(user) is True
    assert calls(iam) == {"refresh": start["refresh"], "exchange": start["exchange"] + 1}
    assert iam.exchange_requests[-1]["audience"] == "eos-eulake"
    assert user.state["exchanged"]["eos"]["access_token"] != old_eos
    assert user.state["exchanged"]["eos"]["expires_at"] > time.time() + 1000
    assert user.state["exchanged"]["rucio"]["access_token"] == old_rucio
    assert user.saves == 1


async def test_due_access_token_is_refreshed_once_then_used(iam, auth, user):
    expire(user, "eos", "rucio", access=True)
    assert await auth.refresh_user(user) is True
    assert len(iam.refresh_requests) == 1
    assert iam.refresh_requests[0]["_authorization"].startswith("Basic ")
    assert "client_secret" not in iam.refresh_requests[0]
    assert user.state["access_token"] == iam.access_token
    assert {r["subject_token"] for r in iam.exchange_requests[-2:]} == {iam.access_token}
    assert user.state["token_response"]["access_token"] == iam.access_token


async def test_fifty_concurrent_requests_cause_one_refresh_and_one_exchange_per_target(iam, auth, user):
    expire(user, "eos", "rucio", access=True)
    start = calls(iam)
    results = await asyncio.gather(*(auth.refresh_user(user) for _ in range(50)))
    assert all(r is True for r in results)
    assert calls(iam) == {"refresh": start["refresh"] + 1, "exchange": start["exchange"] + 2}


@pytest.mark.parametrize("rotate", [True, False])
async def test_refresh_token_rotation(iam, auth, user, rotate):
    iam.rotate_refresh_tokens = rotate
    first = user.state["refresh_token"]
    expire(user, "eos", access=True)
    assert await auth.refresh_user(user) is True
    assert (user.state["refresh_token"] != first) is rotate
    assert user.state["refresh_token"] == iam.refresh_token
    # the next refresh presents the token the provider expects now (a stale one would be refused)
    presented = user.state["refresh_token"]
    expire(user, "eos", access=True)
    auth.renewer._next_due.clear()  # the test ages the tokens behind the hub's back
    assert await auth.refresh_user(user) is True
    assert iam.refresh_requests[-1]["refresh_token"] == presented
    assert len(iam.refresh_requests) == 2 and user.state["access_token"] == iam.access_token


@pytest.mark.parametrize("failure", [httpx.Response(503), httpx.ConnectTimeout("slow"), httpx.ConnectError("down")])
async def test_transient_failure_keeps_tokens_and_login_and_backs_off(iam, auth, user, failure, caplog):
    expire(user, "eos", access=True, in_seconds=60)
    kept = copy.deepcopy(user.state)
    iam.token.mock(side_effect=failure)
    assert await auth.refresh_user(user) is True
    assert user.state["exchanged"] == kept["exchanged"] and user.state["access_token"] == kept["access_token"]
    assert "keeping the current ones" in caplog.text
    # The failed refresh is each due token's last error: the token page and the status bar say since when.
    error = user.state["exchange_errors"]["eos"]
    assert error["error"] and abs(error["at"] - time.time()) < 5 and "rucio" not in user.state["exchange_errors"]
    hits = iam.token.call_count
    for _ in range(20):  # during the backoff the IAM is left alone
        assert await auth.refresh_user(user) is True
    assert iam.token.call_count == hits
    # once the backoff is over and the IAM is back, renewal resumes
    iam.token.mock(side_effect=iam._token)
    await asyncio.sleep(0.45)
    assert await auth.refresh_user(user) is True
    assert user.state["exchanged"]["eos"]["expires_at"] > time.time() + 1000
    assert "eos" not in user.state.get("exchange_errors", {})  # renewed: the error is past


async def test_refused_refresh_token_logs_the_user_out_and_says_why(iam, auth, user, caplog):
    caplog.set_level(logging.DEBUG)
    expire(user, "eos", access=True)
    iam.refresh_token = "the-provider-revoked-the-old-one"
    assert await auth.refresh_user(user) is False
    assert "refused the refresh token" in caplog.text and "invalid_grant" in caplog.text
    for token in iam.issued + [user.state["refresh_token"]]:
        assert token not in caplog.text


async def test_other_definitive_errors_do_not_log_out(iam, auth, user):
    expire(user, "eos", access=True)
    iam.token.mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
    assert await auth.refresh_user(user) is True


async def test_revoked_access_token_is_refreshed_and_the_exchange_retried(iam, auth, user):
    iam.revoked.add(user.state["access_token"])
    expire(user, "eos", "rucio")  # the broad token looks valid by its expiry, but was revoked
    assert await auth.refresh_user(user) is True
    assert len(iam.refresh_requests) == 1
    assert user.state["exchanged"]["eos"]["expires_at"] > time.time() + 1000


KEYCLOAK_FOREIGN_SUBJECT = httpx.Response(403, json={"error": "access_denied",
                                                     "error_description": "Client is not within the token audience"})


async def test_tokens_issued_to_another_client_end_in_a_new_sign_in(iam, auth, user, caplog):
    # The hub's client changed (Keycloak answers 403 to an exchange of the old client's token, and
    # refuses its refresh token): the user signs in again, rather than holding "access_denied" errors.
    iam.exchange_failures.update({"eos-eulake": KEYCLOAK_FOREIGN_SUBJECT, "rucio": KEYCLOAK_FOREIGN_SUBJECT})
    iam.refresh_token = "the-new-client-does-not-know-the-old-one"
    expire(user, "eos", "rucio")  # the broad token is not due
    before = calls(iam)
    assert await auth.refresh_user(user) is False
    assert delta(iam, before) == {"refresh": 1, "exchange": 2}
    assert "invalid_grant" in user.state["login_expired"]["reason"]
    assert caplog.text.count("Client is not within the token audience") == 1


async def test_an_exchange_still_refused_after_a_refresh_is_recorded_once(iam, auth, user):
    iam.exchange_failures.update({"eos-eulake": KEYCLOAK_FOREIGN_SUBJECT, "rucio": KEYCLOAK_FOREIGN_SUBJECT})
    expire(user, "eos", "rucio")
    before = calls(iam)
    assert await auth.refresh_user(user) is True
    assert delta(iam, before) == {"refresh": 1, "exchange": 4}  # one refresh, each target tried once more
    assert user.state["exchange_errors"]["eos"]["error"] == "access_denied"
    assert "Client is not within the token audience" in user.state["exchange_errors"]["rucio"]["reason"]


async def test_a_refusal_of_one_target_alone_asks_for_no_refresh(iam, auth, user):
    iam.exchange_failures["rucio"] = KEYCLOAK_FOREIGN_SUBJECT
    expire(user, "eos", "rucio")
    before = calls(iam)
    assert await auth.refresh_user(user) is True
    assert delta(iam, before) == {"refresh": 0, "exchange": 2}  # the sign-in token is fine: eos was exchanged
    assert user.state["exchange_errors"]["rucio"]["error"] == "access_denied"


def signs_in_during_the_refresh(iam, user) -> dict:
    """While the provider answers the renewal's refresh, the user signs in anew (another tab): their new
    sign-in's auth_state is stored. Returns it."""
    new_sign_in = copy.deepcopy(user.state)
    new_sign_in.update(login_id="the-new-sign-in", access_token="new-access", refresh_token="new-refresh")
    answer = iam.token.side_effect

    def refresh_meanwhile(request):
        if b"grant_type=refresh_token" in request.content:
            user.state = copy.deepcopy(new_sign_in)
        return answer(request)

    iam.token.side_effect = refresh_meanwhile
    return new_sign_in


async def test_a_renewal_never_overwrites_a_sign_in_made_while_it_ran(iam, auth, user, caplog):
    caplog.set_level(logging.INFO)
    expire(user, "eos", "rucio", access=True)
    new_sign_in = signs_in_during_the_refresh(iam, user)
    assert await auth.refresh_user(user) is True
    assert user.state == new_sign_in  # not the renewal's tokens of the sign-in before
    assert "A new sign-in of mariaska replaced the tokens being renewed" in caplog.text


async def test_a_refused_refresh_does_not_expire_a_sign_in_made_while_it_ran(iam, auth, user):
    expire(user, "eos", "rucio", access=True)
    iam.refresh_token = "the-provider-revoked-the-old-one"
    new_sign_in = signs_in_during_the_refresh(iam, user)
    assert await auth.refresh_user(user) is True  # the refusal was of the old sign-in's refresh token
    assert user.state == new_sign_in and "login_expired" not in user.state


async def test_each_sign_in_has_its_own_login_id(iam, auth):
    first = await auth.authenticate(FakeHandler())
    second = await auth.authenticate(FakeHandler())
    assert first["auth_state"]["login_id"] != second["auth_state"]["login_id"]


async def test_through_an_outage_the_hub_tries_again_before_the_tokens_in_place_run_out(iam, auth, user,
                                                                                          monkeypatch):
    monkeypatch.setattr(renewal.random, "uniform", lambda low, high: high)  # the jitter's longest pause
    auth.renewer.backoff_ceiling = 300
    auth.exchange_retries = 0  # each try one request: the pause between tries is what is tested
    expire(user, "eos", "rucio", in_seconds=40)
    iam.exchange_failures.update({"eos-eulake": httpx.Response(503), "rucio": httpx.Response(503)})
    for _ in range(8):  # eight failed tries: the plain backoff would reach minutes
        auth.renewer._backoff.get(user.name, Backoff()).not_before = 0
        assert await auth.refresh_user(user) is True
    backoff = auth.renewer._backoff[user.name]
    assert backoff.failures == 8 and backoff.not_before - time.time() <= 20.5


async def test_one_target_failing_does_not_block_the_other(iam, auth, user):
    expire(user, "eos", "rucio")
    old_rucio = user.state["exchanged"]["rucio"]
    iam.exchange_failures["rucio"] = httpx.Response(503)
    assert await auth.refresh_user(user) is True
    assert user.state["exchanged"]["eos"]["expires_at"] > time.time() + 1000
    assert user.state["exchanged"]["rucio"] == old_rucio
    assert user.state["exchange_errors"]["rucio"]["error"] == "temporarily_unavailable"


async def test_short_lived_tokens_are_renewed_in_their_second_half(iam, user):
    a = make(refresh_margin=300)
    iam.exchange_lifetime = 20
    expire(user, "eos", "rucio", in_seconds=1)
    await a.refresh_user(user)
    assert user.state["exchanged"]["eos"]["lifetime"] == 20
    before = len(iam.exchange_requests)
    await a.refresh_user(user)  # 20 s left of 20: not due despite the 300 s margin
    assert len(iam.exchange_requests) == before


async def test_a_new_login_resets_the_schedule(iam, auth, user):
    iam.exchange_failures["rucio"] = httpx.Response(503)
    expire(user, "eos", "rucio")
    await auth.refresh_user(user)  # rucio fails: backoff for this user
    assert auth.renewer._backoff[user.name].failures == 1
    iam.exchange_failures.clear()
    await auth.authenticate(FakeHandler())  # the user signs in again
    assert user.name not in auth.renewer._backoff and user.name not in auth.renewer._next_due


async def test_a_refused_refresh_is_recorded_and_the_provider_is_not_asked_again(iam, auth, user, caplog):
    # The hub was killed after the provider rotated the refresh token and before the answer was saved:
    # the stored one is refused. One refusal, recorded; then no request to the provider, no loop.
    expire(user, "eos", "rucio", access=True)
    iam.refresh_token = "rotated-while-the-hub-was-down"
    assert await auth.refresh_user(user) is False
    assert user.state["login_expired"]["at"] >= int(time.time()) - 5
    assert "invalid_grant" in user.state["login_expired"]["reason"]
    before = calls(iam)
    auth.renewer.forget(user.name)  # as after a restart: nothing in memory
    for _ in range(5):
        assert await auth.refresh_user(user) is False
    assert calls(iam) == before
    assert caplog.text.count("refused the refresh token") == 1


async def test_signing_in_again_clears_the_expired_state(iam, auth, user):
    expire(user, "eos", access=True)
    good = iam.refresh_token
    iam.refresh_token = "rotated"
    assert await auth.refresh_user(user) is False
    iam.refresh_token = good
    model = await auth.authenticate(FakeHandler())  # the user signs in again
    assert "login_expired" not in model["auth_state"]
    user.state = model["auth_state"]
    expire(user, "eos", access=True)
    assert await auth.refresh_user(user) is True


async def test_an_expired_login_keeps_api_requests_going_so_the_endpoint_can_say_why(iam, auth, user):
    class APIRequest:
        def get_auth_token(self):
            return "a-server-token"

    class BrowserRequest:
        def get_auth_token(self):
            return None

    expire(user, "eos", access=True)
    iam.refresh_token = "rotated"
    assert await auth.refresh_user(user, BrowserRequest()) is False  # JupyterHub sends the browser to sign in
    assert await auth.refresh_user(user, APIRequest()) is True  # the credentials endpoint answers 401
    assert await auth.refresh_credentials(user) is False


async def test_after_a_restart_a_saved_renewal_is_not_repeated(iam, auth, user):
    expire(user, "eos", "rucio", access=True)
    assert await auth.refresh_user(user) is True
    before = calls(iam)
    restarted = make(refresh_margin=300, refresh_backoff=0.2)  # a new hub process: nothing in memory
    try:
        results = await asyncio.gather(*(restarted.refresh_user(user) for _ in range(20)))
    finally:
        await restarted.iam_client.aclose()
    assert all(results) and calls(iam) == before
