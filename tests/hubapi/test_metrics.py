"""dlaas-hub's Prometheus metrics move with logins, exchanges, refreshes and renewals; no names in labels."""

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from tornado import web

from ..auth.build import make
from ..fakeiam import FakeHandler
from ..spawner_fixtures import FakeUser

pytestmark = pytest.mark.usefixtures("crypt_key")


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_login_counts_once_with_its_two_exchanges(iam):
    before = (value("dlaas_logins_total", outcome="accepted"),
              value("dlaas_token_requests_total", kind="exchange", target="eos", outcome="ok"),
              value("dlaas_token_request_duration_seconds_count", kind="exchange", target="rucio"))
    await make().authenticate(FakeHandler())
    after = (value("dlaas_logins_total", outcome="accepted"),
             value("dlaas_token_requests_total", kind="exchange", target="eos", outcome="ok"),
             value("dlaas_token_request_duration_seconds_count", kind="exchange", target="rucio"))
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1]


async def test_refused_logins_count_by_outcome(iam):
    iam.user["wlcg.groups"] = ["/elsewhere"]
    before = value("dlaas_logins_total", outcome="not_in_group")
    await make().authenticate(FakeHandler())  # JupyterHub turns the refusal into its 403 page
    assert value("dlaas_logins_total", outcome="not_in_group") == before + 1

    iam.user["preferred_username"] = "a b"
    before = value("dlaas_logins_total", outcome="name_refused")
    with pytest.raises(web.HTTPError):
        await make().authenticate(FakeHandler())
    assert value("dlaas_logins_total", outcome="name_refused") == before + 1


async def test_a_refused_exchange_counts_its_error_code(iam):
    iam.user["wlcg.groups"] = ["/escape"]
    iam.exchange_failures["rucio"] = httpx.Response(400, json={"error": "invalid_scope"})
    before = value("dlaas_token_requests_total", kind="exchange", target="rucio", outcome="invalid_scope")
    with pytest.raises(web.HTTPError):
        await make().authenticate(FakeHandler())
    assert value("dlaas_token_requests_total", kind="exchange", target="rucio", outcome="invalid_scope") == before + 1


async def test_a_login_refused_for_its_exchange_counts_once(iam):
    iam.exchange_failures["eos-eulake"] = httpx.Response(503)
    before = value("dlaas_logins_total", outcome="provider_unavailable")
    with pytest.raises(web.HTTPError):
        await make().authenticate(FakeHandler())
    assert value("dlaas_logins_total", outcome="provider_unavailable") == before + 1


async def test_fresh_renewals_are_counted_as_skipped(iam):
    auth = make()
    model = await auth.authenticate(FakeHandler())
    user = FakeUser(name=model["name"], state=model["auth_state"])
    before = value("dlaas_renewals_skipped_fresh_total")
    for _ in range(3):
        assert await auth.refresh_credentials(user)
    assert value("dlaas_renewals_skipped_fresh_total") == before + 3
    assert not iam.refresh_requests


async def test_a_refresh_counts_with_its_latency(iam):
    auth = make()
    model = await auth.authenticate(FakeHandler())
    state = model["auth_state"]
    state["access_token_expires_at"] = state["exchanged"]["eos"]["expires_at"] = 1  # both due now
    before = value("dlaas_token_requests_total", kind="refresh", target="iam", outcome="ok")
    await auth.refresh_credentials(FakeUser(name=model["name"], state=state))
    assert value("dlaas_token_requests_total", kind="refresh", target="iam", outcome="ok") == before + 1
    assert value("dlaas_token_request_duration_seconds_count", kind="refresh", target="iam") >= 1


async def test_no_user_name_or_token_in_any_label(iam):
    model = await make().authenticate(FakeHandler())
    text = generate_latest(REGISTRY).decode()
    assert "dlaas_logins_total" in text
    for secret in (model["name"], model["auth_state"]["iam_username"], iam.access_token, iam.refresh_token):
        assert secret not in text
