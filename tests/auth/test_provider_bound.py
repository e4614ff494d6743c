"""DLaaSAuthenticator.iam_concurrency_limit: the bound on requests to the provider, sign-ins first."""

import asyncio
import copy
from urllib.parse import parse_qs

import pytest

from dlaas_hub.hubapi import metrics

from ..fakeiam import FakeHandler
from ..tokens.test_renewal import StoredUser, expire
from .build import make

pytestmark = pytest.mark.usefixtures("crypt_key")


class GatedIAM:
    """Holds every token request until released, recording grants in the order they arrive."""

    def __init__(self, iam):
        self.iam = iam
        self.open = asyncio.Event()
        self.grants: list[str] = []
        self.in_flight = 0
        self.peak = 0
        iam.token.mock(side_effect=self.answer)

    async def answer(self, request):
        grant = parse_qs(request.content.decode())["grant_type"][0].rsplit(":", 1)[-1]
        self.grants.append(grant)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.open.wait()
            return self.iam._token(request)
        finally:
            self.in_flight -= 1


async def users_due(auth, count):
    model = await auth.authenticate(FakeHandler())
    users = []
    for i in range(count):
        user = StoredUser(f"user{i}", copy.deepcopy(model["auth_state"]))
        expire(user, "eos", "rucio", access=True)
        users.append(user)
    return users


async def until(condition):
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


async def test_a_renewal_storm_never_has_more_than_the_bound_at_the_provider(iam):
    auth = make(iam_concurrency_limit=3)
    try:
        users = await users_due(auth, 12)
        gate = GatedIAM(iam)
        storm = asyncio.gather(*(auth.refresh_user(u) for u in users for _ in range(3)))
        await until(lambda: auth.iam_client.limiter.queued() == 12 - 3)
        assert gate.in_flight == 3 and metrics.IAM_QUEUE_LENGTH.labels("renewal")._value.get() == 9
        gate.open.set()
        assert all(await storm)
    finally:
        await auth.iam_client.aclose()
    assert gate.peak == 3
    assert gate.grants.count("refresh_token") == 12  # one per user, however many asked
    assert gate.grants.count("token-exchange") == 24
    assert all(u.state["exchanged"]["eos"]["expires_at"] > u.state["access_token_expires_at"] - 3600 for u in users)


async def test_a_sign_in_is_served_before_the_renewals_already_waiting(iam):
    auth = make(iam_concurrency_limit=1)
    # Every claim in the id_token: this fake IAM's refreshes would invalidate the sign-in's userinfo call.
    iam.id_token_claims = {k: v for k, v in iam.user.items() if k != "sub"}
    try:
        users = await users_due(auth, 4)
        gate = GatedIAM(iam)
        storm = asyncio.gather(*(auth.refresh_user(u) for u in users))
        await until(lambda: auth.iam_client.limiter.queued() == 3)
        login = asyncio.ensure_future(auth.authenticate(FakeHandler()))
        await until(lambda: auth.iam_client.limiter.queued("login") == 1)
        gate.open.set()
        model = await login
        assert all(await storm)
    finally:
        await auth.iam_client.aclose()
    assert model["auth_state"]["exchanged"]["eos"]
    # the renewal in flight first, then the sign-in's code exchange, ahead of three queued renewals
    assert gate.grants[:2] == ["refresh_token", "authorization_code"]
    assert gate.grants.count("refresh_token") == 4
