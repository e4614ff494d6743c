"""DLaaSAuthenticator as a whole: discovery, the auth model a login builds, groups, one client."""

import logging

import httpx
import pytest
from tornado import web

from dlaas_hub.auth.authenticator import AUTH_STATE_VERSION
from dlaas_hub.tokens.http import HttpxClient

from ..fakeiam import CLIENT_SECRET, FakeHandler, basic_auth_header
from .build import make

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")


async def test_endpoints_come_from_discovery(iam, auth):
    await auth.resolve_endpoints()
    assert auth.authorize_url == f"{iam.base}/authorize"
    assert auth.token_url == f"{iam.base}/token"
    assert auth.userdata_url == f"{iam.base}/userinfo"
    assert auth.userinfo_endpoint == f"{iam.base}/userinfo"


async def test_explicit_urls_override_discovery(iam):
    a = make(token_url="https://proxy.example/token", jwks_url=f"{iam.base}/jwks")
    await a.resolve_endpoints()
    assert a.token_url == "https://proxy.example/token"
    assert a.authorize_url == f"{iam.base}/authorize"


async def test_unreachable_iam_at_startup_only_warns(iam, caplog):
    iam.discovery.mock(side_effect=httpx.ConnectError("refused"))
    a = make(discovery_retries=0)
    a.check_allow_config()  # as JupyterHub calls it, inside the running loop: must not raise
    await a._prefetch_task
    assert "not reachable at start-up" in caplog.text
    # and the first login later succeeds once the IAM is back
    iam.discovery.mock(side_effect=lambda r: httpx.Response(200, json=iam.metadata()))
    await a.resolve_endpoints()
    assert a.token_url == f"{iam.base}/token"


async def test_prefetch_warms_discovery_and_jwks(iam, auth):
    auth.check_allow_config()
    await auth._prefetch_task
    assert iam.discovery.call_count == 1 and iam.jwks.call_count == 1


async def test_login_page_when_discovery_down(iam, auth):
    iam.discovery.mock(side_effect=httpx.ConnectTimeout("slow"))
    auth.discovery_retries = 0
    auth._metadata.retries = 0
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 503
    assert "cannot be reached right now" in info.value.jupyterhub_message


async def test_login_builds_the_auth_model(iam, auth):
    model = await auth.authenticate(FakeHandler())
    assert model["name"] == "mariaska"
    assert model["admin"] is False
    assert model["groups"] == ["/escape", "/escape/ska"]
    state = model["auth_state"]
    assert state["dlaas_version"] == AUTH_STATE_VERSION
    assert state["iam_username"] == "MariaSKA"
    assert state["access_token"] == iam.access_token
    assert state["refresh_token"] == iam.refresh_token
    assert state["id_token"]
    assert state["access_token_expires_at"] > 0
    assert set(state["exchanged"]) == {"eos", "rucio"}
    assert state["exchanged"]["eos"]["audience"] == "eos-eulake"
    assert state["exchange_errors"] == {}
    assert await auth.check_allowed(model["name"], model)


async def test_code_exchange_sends_pkce_verifier_with_basic_auth(iam, auth):
    await auth.authenticate(FakeHandler(code="c0de", verifier="v3rifier"))
    [sent] = iam.token_requests
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == "c0de" and sent["code_verifier"] == "v3rifier"
    assert sent["redirect_uri"] == "https://hub.example/hub/oauth_callback"
    assert sent["_authorization"] == basic_auth_header()
    assert "client_secret" not in sent and "data" not in sent


async def test_admin_group_gives_admin(iam, auth):
    iam.user["wlcg.groups"] = ["/escape", "/escape/admins"]
    model = await auth.authenticate(FakeHandler())
    assert model["admin"] is True


async def test_groups_claim_is_configurable(iam):
    a = make(groups_claim="groups", allowed_groups={"escape"})
    model = await a.authenticate(FakeHandler())
    assert model["groups"] == ["escape", "escape/ska"]
    assert await a.check_allowed(model["name"], model)


async def test_groups_claim_may_be_callable(iam):
    a = make(groups_claim=lambda claims: [g.upper() for g in claims["groups"]], allowed_groups={"ESCAPE"})
    model = await a.authenticate(FakeHandler())
    assert model["groups"] == ["ESCAPE", "ESCAPE/SKA"]


@pytest.mark.parametrize("value", [None, 42, {"a": 1}, [None, 3]])
async def test_malformed_groups_claim_gives_no_groups(iam, auth, value):
    iam.user["wlcg.groups"] = value
    model = await auth.authenticate(FakeHandler())
    assert model["groups"] == []
    assert not await auth.check_allowed(model["name"], model)


async def test_one_pooled_client_for_all_calls(iam, auth):
    await auth.authenticate(FakeHandler())
    await auth.authenticate(FakeHandler())
    assert iam.discovery.call_count == 1 and iam.jwks.call_count == 1
    assert isinstance(auth.iam_client, HttpxClient)  # tests/conftest.py: respx serves httpx
    assert auth.iam_client.limiter.limit == auth.iam_concurrency_limit == 10


async def test_no_token_in_logs_at_debug(iam, auth, caplog):
    caplog.set_level(logging.DEBUG)
    auth.log.setLevel(logging.DEBUG)
    await auth.authenticate(FakeHandler())
    iam.exchange_failures["eos-eulake"] = httpx.Response(400, json={"error": "invalid_scope"})
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    text = caplog.text + str(info.value) + info.value.jupyterhub_message
    assert iam.issued
    for token in iam.issued + [CLIENT_SECRET]:
        assert token not in text
