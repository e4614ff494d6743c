import asyncio
import logging

import httpx
import pytest
from tornado import web
from traitlets import TraitError
from traitlets.config import Config

from dlaas_hub.auth import startup
from dlaas_hub.auth.authenticator import AUTH_STATE_VERSION, ConfigError, DLaaSAuthenticator
from dlaas_hub.tokens.http import HttpxClient
from dlaas_hub.tokens.hubclient import AiohttpClient

from ..fakeiam import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeHandler, basic_auth_header, on_the_wire

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")

TARGETS = {
    "eos": {"audience": "eos-eulake", "scope": "openid storage.read:/eos"},
    "rucio": {"audience": "rucio", "scope": "openid profile"},
}


def make(**settings) -> DLaaSAuthenticator:
    config = Config()
    base = {"oidc_issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "oauth_callback_url": "https://hub.example/hub/oauth_callback",
            "allowed_groups": {"/escape"}, "admin_groups": {"/escape/admins"}, "exchange_targets": TARGETS}
    base.update(settings)
    for key, value in base.items():
        config.DLaaSAuthenticator[key] = value
    return DLaaSAuthenticator(config=config)


@pytest.fixture
async def auth():
    authenticator = make()
    yield authenticator
    await authenticator.iam_client.aclose()


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("missing,key", [
    ("oidc_issuer", "DLaaSAuthenticator.oidc_issuer"),
    ("client_id", "DLaaSAuthenticator.client_id"),
    ("client_secret", "DLaaSAuthenticator.client_secret"),
])
def test_missing_settings_name_the_key(missing, key):
    with pytest.raises(ConfigError, match=key):
        make(**{missing: ""})


def test_no_crypt_key_refuses_to_start_and_says_how_to_make_one(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY")
    with pytest.raises(ConfigError, match=r"JUPYTERHUB_CRYPT_KEY is not set.*openssl rand -hex 32"):
        make()


def test_crypt_key_from_cryptkeeper_config_is_accepted(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY")
    config = Config()
    config.CryptKeeper.keys = ["b" * 64]
    for key, value in {"oidc_issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}.items():
        config.DLaaSAuthenticator[key] = value
    assert DLaaSAuthenticator(config=config).enable_auth_state


@pytest.mark.parametrize("issuer,why", [
    ("http://iam.example.org/", "uses http://"),
    ("iam.example.org", "is not an https URL"),
    ("ftp://iam.example.org/", "is not an https URL"),
])
def test_an_issuer_that_is_not_https_refuses_to_start(issuer, why):
    with pytest.raises(ConfigError, match=f"DLaaSAuthenticator.oidc_issuer {why}"):
        make(oidc_issuer=issuer)


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:8180/", "http://localhost:8180", "http://[::1]:8180/"])
def test_plain_http_is_accepted_for_a_development_provider_on_loopback(issuer):
    assert make(oidc_issuer=issuer).oidc_issuer == issuer


@pytest.mark.parametrize("key", ["short", "a" * 63, "g" * 64])
def test_a_crypt_key_jupyterhub_would_refuse_stops_the_start_without_showing_it(monkeypatch, key):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", key)
    with pytest.raises(ConfigError) as refused:
        make()
    assert str(refused.value).startswith(f"JUPYTERHUB_CRYPT_KEY: the key is {len(key)} characters, which "
                                         "JupyterHub refuses: a key is 32 bytes")
    assert key not in str(refused.value)


def test_a_bad_key_among_rotated_ones_is_numbered(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY")
    config = Config()
    config.CryptKeeper.keys = ["b" * 64, "c" * 10]
    for key, value in {"oidc_issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}.items():
        config.DLaaSAuthenticator[key] = value
    with pytest.raises(ConfigError, match="CryptKeeper.keys: key 2 of 2 is 10 characters"):
        DLaaSAuthenticator(config=config)


def test_auth_state_cannot_be_disabled():
    with pytest.raises(ConfigError, match="enable_auth_state"):
        make(enable_auth_state=False)


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_unsafe_algorithms_are_a_config_error(algs):
    with pytest.raises(ConfigError, match="DLaaSAuthenticator.id_token_algorithms"):
        make(id_token_algorithms=algs)


def test_bad_exchange_target_names_the_key():
    with pytest.raises(ConfigError, match=r"DLaaSAuthenticator.exchange_targets\['eos'\].scope"):
        make(exchange_targets={"eos": {"audience": "eos-eulake"}})


def test_defaults_fit_indigo_iam():
    a = make()
    assert a.enable_auth_state and a.manage_groups and a.enable_pkce and a.basic_auth
    assert a.username_claim == "preferred_username"
    assert "wlcg.groups" in a.scope and "offline_access" in a.scope


def test_construction_does_no_network_io(iam):
    make()
    assert iam.discovery.call_count == 0


# -- discovery --------------------------------------------------------------------------------

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


# -- login ------------------------------------------------------------------------------------

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


@pytest.mark.parametrize("failure,status", [
    (httpx.ConnectTimeout("slow"), 503),
    (httpx.ReadTimeout("slow"), 503),
    (httpx.ConnectError("refused"), 503),
    (httpx.Response(500), 503),
    (httpx.Response(400, json={"error": "invalid_grant"}), 403),
    (httpx.Response(401, json={"error": "invalid_client"}), 502),
    (httpx.Response(200, text="<html>proxy error</html>"), 502),
    (httpx.Response(200, json={"token_type": "Bearer"}), 502),
    (httpx.Response(200, content=b'{"access_token": "' + b"x" * 300_000 + b'"}'), 502),
])
async def test_code_exchange_failures_give_readable_pages(iam, auth, failure, status):
    iam.token.mock(side_effect=[failure])
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == status
    assert info.value.jupyterhub_message


@pytest.mark.parametrize("claims,reason", [
    ({"aud": "another-client"}, "another client"),
    ({"iss": "https://evil.example/"}, "another provider"),
    ({"exp": 1, "iat": 0}, "expired"),
])
async def test_bad_id_token_refuses_login(iam, auth, claims, reason):
    iam.id_token_claims = claims
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403
    assert reason in info.value.log_message


async def test_forged_id_token_refuses_login(iam, auth):
    from ..fakeiam import rsa_key
    iam.key = rsa_key()  # signs with a key the JWKS does not hold, under the published kid
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403


async def test_missing_id_token_refuses_login(iam, auth):
    iam.token.mock(return_value=httpx.Response(200, json={"access_token": "a", "token_type": "Bearer"}))
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403


async def test_userinfo_about_another_subject_refuses_login(iam, auth):
    iam.userinfo.mock(return_value=httpx.Response(200, json={**iam.user, "sub": "someone-else"}))
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 403


async def test_userinfo_down_gives_503(iam, auth):
    iam.userinfo.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(FakeHandler())
    assert info.value.status_code == 503


async def test_an_id_token_with_the_name_and_groups_makes_no_userinfo_request(iam, auth):
    iam.id_token_claims = {"wlcg.groups": ["/escape", "/escape/ska"], "email": "maria@id-token.example"}
    model = await auth.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 0
    assert model["name"] == "mariaska" and model["groups"] == ["/escape", "/escape/ska"]
    assert model["auth_state"]["oauth_user"]["email"] == "maria@id-token.example"
    assert set(model["auth_state"]["exchanged"]) == {"eos", "rucio"}


async def test_an_id_token_without_the_groups_claim_is_completed_by_userinfo(iam, auth):
    iam.id_token_claims = {"groups": ["escape"]}  # IAM's other groups claim: not the one configured
    model = await auth.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1
    assert model["groups"] == ["/escape", "/escape/ska"]


@pytest.mark.parametrize("settings", [
    {"fetch_userinfo": "always"},
    {"extra_claims": ["eduperson_assurance"]},
    {"groups_claim": lambda claims: claims.get("wlcg.groups", [])},
])
async def test_userinfo_is_asked_when_the_id_token_may_not_be_enough(iam, settings):
    iam.id_token_claims = {"wlcg.groups": ["/escape"]}
    a = make(**settings)
    model = await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1
    assert model["groups"] == ["/escape", "/escape/ska"]  # userinfo's answer completes the id_token


async def test_the_spawners_rucio_account_claim_is_a_claim_a_login_needs(iam):
    from traitlets.config import Configurable

    from dlaas_hub.spawners import DLaaSKubeSpawner

    from ..spawner_fixtures import RUCIO_CONFIG
    from ..spawners.test_local_spawner import PROFILES

    class Hub(Configurable):
        spawner_class = DLaaSKubeSpawner

    config = Config()
    for key, value in {"profiles_dir": str(PROFILES), **RUCIO_CONFIG, "rucio_account": "rucio_name",
                       "token_agent_image": "registry.example.org/dlaas/dlaas-hub:0.1.0"}.items():
        config.DLaaSKubeSpawner[key] = value
    a = make()
    a.parent = Hub(config=config)
    a.check_allow_config()
    a._prefetch_task.cancel()
    iam.id_token_claims = {"wlcg.groups": ["/escape"]}
    await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1
    iam.id_token_claims["rucio_name"] = "maria"
    await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 1


async def test_userdata_from_id_token_skips_userinfo(iam):
    iam.id_token_claims = {"wlcg.groups": ["/escape"]}
    a = make(userdata_from_id_token=True)
    model = await a.authenticate(FakeHandler())
    assert iam.userinfo.call_count == 0
    assert model["groups"] == ["/escape"]
    assert "exp" not in model["auth_state"]["oauth_user"]


async def test_unsafe_username_is_refused_by_pattern(iam, auth):
    iam.user["preferred_username"] = "../../etc"
    assert not auth.validate_username(auth.normalize_username("../../etc"))
    assert auth.validate_username("mariaska")


async def test_provider_keeps_its_spelling_while_hub_lowercases(iam, auth):
    model = await auth.authenticate(FakeHandler())
    assert (model["name"], model["auth_state"]["iam_username"]) == ("mariaska", "MariaSKA")


async def test_one_pooled_client_for_all_calls(iam, auth):
    await auth.authenticate(FakeHandler())
    await auth.authenticate(FakeHandler())
    assert iam.discovery.call_count == 1 and iam.jwks.call_count == 1
    assert isinstance(auth.iam_client, HttpxClient)  # tests/conftest.py: respx serves httpx
    assert auth.iam_client.limiter.limit == auth.iam_concurrency_limit == 10


def test_the_hubs_client_is_aiohttp_with_its_pool_as_large_as_the_bound(monkeypatch, crypt_key):
    monkeypatch.setattr("dlaas_hub.tokens.hubclient.DEFAULT_BACKEND", "aiohttp")  # what the hub runs
    auth = DLaaSAuthenticator(oidc_issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                              iam_concurrency_limit=4)
    assert isinstance(auth.iam_client, AiohttpClient)
    assert auth.iam_client.max_connections == auth.iam_client.limiter.limit == 4


@pytest.mark.parametrize("value", [0, -1, 5000])
def test_a_concurrency_limit_out_of_range_names_the_setting(value, crypt_key):
    with pytest.raises(TraitError, match="'iam_concurrency_limit' trait of a DLaaSAuthenticator"):
        DLaaSAuthenticator(oidc_issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                           iam_concurrency_limit=value)


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


# -- the token agents' scope ------------------------------------------------------------------

def _app_with_user_role(scopes):
    from types import SimpleNamespace

    from jupyterhub import orm

    from dlaas_hub.spawners import DLaaSLocalSpawner

    db = orm.new_session_factory("sqlite://")()
    db.add(orm.Role(name="user", scopes=scopes))
    db.commit()
    return SimpleNamespace(db=db, spawner_class=DLaaSLocalSpawner)


def test_user_role_without_tokens_scope_is_a_config_error(auth):
    with pytest.raises(ConfigError, match=r"JupyterHub.load_roles.*custom:dlaas:tokens!user"):
        startup.check_tokens_role(_app_with_user_role(["self"]))


def test_user_role_with_tokens_scope_passes(auth):
    startup.check_tokens_role(_app_with_user_role(["self", "custom:dlaas:tokens!user"]))


def test_tokens_scope_is_defined_for_the_hubs_roles(auth):
    from jupyterhub import scopes

    assert "custom:dlaas:tokens" in scopes.scope_definitions
