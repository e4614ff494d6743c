"""The login's exchanged tokens: targets, errors, the exchanges overlapping the checks (auth/tokenstore.py)."""

import asyncio

import httpx
import pytest
from tornado import web

from ..fakeiam import FakeHandler, on_the_wire
from .build import TARGETS, make

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")


async def test_exchanges_use_the_users_access_token(iam, auth):
    await auth.authenticate(FakeHandler())
    assert {r["audience"] for r in iam.exchange_requests} == {"eos-eulake", "rucio"}
    assert all(r["subject_token"] == iam.access_token for r in iam.exchange_requests)


async def test_userinfo_and_exchanges_run_concurrently(iam, auth):
    exchange_sent, userinfo_asked = asyncio.Event(), asyncio.Event()
    token_handler = iam.token.side_effect
    userinfo_handler = iam.userinfo.side_effect

    async def token(request):
        if b"token-exchange" in request.content:
            await on_the_wire(request)
            exchange_sent.set()
            # Answers only once userinfo is asked too: a login that waited for the exchanges
            # before asking userinfo would time out here.
            await asyncio.wait_for(userinfo_asked.wait(), timeout=5)
        return token_handler(request)

    async def userinfo(request):
        userinfo_asked.set()
        await asyncio.wait_for(exchange_sent.wait(), timeout=5)
        return userinfo_handler(request)

    iam.token.mock(side_effect=token)
    iam.userinfo.mock(side_effect=userinfo)
    model = await auth.authenticate(FakeHandler())
    assert set(model["auth_state"]["exchanged"]) == {"eos", "rucio"}


async def test_user_outside_allowed_groups_is_not_allowed_and_gets_no_tokens(iam, auth):
    iam.user["wlcg.groups"] = ["/elsewhere"]
    iam.exchange_failures["eos-eulake"] = httpx.Response(400, json={"error": "invalid_scope"})
    model = await auth.authenticate(FakeHandler())  # no exchange error page for a user who is refused anyway
    assert not await auth.check_allowed(model["name"], model)
    assert model["auth_state"]["exchanged"] == {}


async def test_required_target_denied_refuses_login_with_readable_page(iam, auth):
    iam.exchange_failures["eos-eulake"] = httpx.Response(
        400, json={"error": "invalid_scope", "error_description": "Scope storage.read:/eos not allowed"})
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403
    message = info.value.jupyterhub_message
    assert "'eos' storage token" in message and "invalid_scope" in message
    assert "administrator" in message and "eos-eulake" in message


async def test_required_target_unreachable_says_try_again(iam, auth):
    iam.exchange_failures["eos-eulake"] = httpx.Response(503)
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 503
    assert "try again" in info.value.jupyterhub_message


async def test_optional_target_denied_is_recorded_and_login_goes_on(iam, caplog):
    a = make(exchange_targets={**TARGETS, "rucio": {**TARGETS["rucio"], "required": False}})
    iam.exchange_failures["rucio"] = httpx.Response(400, json={"error": "invalid_target"})
    model = await a.authenticate(FakeHandler())
    state = model["auth_state"]
    assert set(state["exchanged"]) == {"eos"}
    assert state["exchange_errors"]["rucio"]["error"] == "invalid_target"
    assert "Token exchange for target rucio failed" in caplog.text


class DeferringHandler(FakeHandler):
    """Like DLaaSCallbackHandler: takes the exchanges still in flight when the user is allowed."""

    pending = None

    def defer_exchanges(self, pending):
        self.pending = pending


async def test_the_login_returns_while_its_exchanges_run_and_stores_them_when_they_end(iam, auth):
    from ..hubapi.test_metrics import value

    answer, original = asyncio.Event(), iam.token.side_effect

    async def token(request):
        if b"token-exchange" in request.content:
            await on_the_wire(request)
            await asyncio.wait_for(answer.wait(), timeout=5)
        return original(request)

    iam.token.mock(side_effect=token)
    handler = DeferringHandler()
    accepted = value("dlaas_logins_total", outcome="accepted")
    model = await auth.authenticate(handler)
    assert model["auth_state"]["exchanged"] == {} and handler.pending is not None
    assert value("dlaas_logins_total", outcome="accepted") == accepted  # not before its tokens are in
    answer.set()
    await handler.pending.finish(model)
    assert set(model["auth_state"]["exchanged"]) == {"eos", "rucio"}
    assert value("dlaas_logins_total", outcome="accepted") == accepted + 1


async def test_a_deferred_required_exchange_failure_refuses_the_login_when_it_ends(iam, auth):
    from ..hubapi.test_metrics import value

    iam.exchange_failures["eos-eulake"] = httpx.Response(503)
    handler = DeferringHandler()
    model = await auth.authenticate(handler)
    before = value("dlaas_logins_total", outcome="provider_unavailable")
    with pytest.raises(web.HTTPError) as info:
        await handler.pending.finish(model)
    assert info.value.status_code == 503 and "try again" in info.value.jupyterhub_message
    assert value("dlaas_logins_total", outcome="provider_unavailable") == before + 1


async def test_exchanges_of_a_login_refused_later_are_dropped(iam, auth):
    from ..hubapi.test_metrics import value

    never, original = asyncio.Event(), iam.token.side_effect

    async def token(request):
        if b"token-exchange" in request.content:
            await on_the_wire(request)
            await never.wait()
        return original(request)

    iam.token.mock(side_effect=token)
    handler = DeferringHandler()
    await auth.authenticate(handler)
    refused = value("dlaas_logins_total", outcome="refused")
    handler.pending.drop()  # as DLaaSCallbackHandler.on_finish does when JupyterHub refuses the login
    await asyncio.sleep(0.01)
    assert handler.pending.task.cancelled()
    assert value("dlaas_logins_total", outcome="refused") == refused + 1


async def test_exchanges_never_collected_leave_no_asyncio_error(auth, caplog):
    import gc

    from dlaas_hub.auth.handlers import PendingExchanges

    async def broken():
        raise RuntimeError("an exchange that failed unexpectedly")

    pending = PendingExchanges(auth, asyncio.ensure_future(broken()))
    await asyncio.sleep(0.01)
    del pending
    gc.collect()
    await asyncio.sleep(0.01)
    assert "never retrieved" not in caplog.text


async def test_the_checks_run_once_the_exchanges_are_sent(iam, auth):
    order = []
    original_verify, original_exchange = auth.verify_id_token, auth._exchange_some

    async def verify(token, **kw):
        order.append("id_token check")
        return await original_verify(token, **kw)

    async def exchange(subject_token, targets, *, sent=None):
        order.append("exchanges sent")
        sent.set()
        return await original_exchange(subject_token, targets)

    auth.verify_id_token, auth._exchange_some = verify, exchange
    await auth.authenticate(FakeHandler())
    assert order == ["exchanges sent", "id_token check"]
