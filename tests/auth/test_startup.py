"""What DLaaSAuthenticator refuses at hub start, naming the setting (auth/startup.py and the traits)."""


import pytest
from traitlets import TraitError
from traitlets.config import Config

from dlaas_hub.auth import startup
from dlaas_hub.auth.authenticator import ConfigError, DLaaSAuthenticator
from dlaas_hub.tokens.hubclient import AiohttpClient

from ..fakeiam import CLIENT_ID, CLIENT_SECRET, ISSUER
from .build import make

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")


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


def test_an_eos_target_without_openid_is_named_at_start(caplog):
    make(exchange_targets={"eos": {"audience": "eos-eulake", "scope": "storage.read:/eos"},
                           "rucio": {"audience": "rucio", "scope": "openid"}})
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["DLaaSAuthenticator.exchange_targets['eos'].scope: scope 'storage.read:/eos' has no openid: "
                      "EOS checks its token at the provider's userinfo, which refuses a token without openid, "
                      "so EOS will refuse every token of this target"]


def test_the_eos_target_comes_from_the_spawners_config(caplog):
    config = Config()
    config.DLaaSLocalSpawner.eos_target = "store"
    make(config=config, exchange_targets={"eos": {"audience": "eos-eulake", "scope": "storage.read:/eos"},
                                          "store": {"audience": "eos-eulake", "scope": "openid"}})
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_defaults_fit_indigo_iam():
    a = make()
    assert a.enable_auth_state and a.manage_groups and a.enable_pkce and a.basic_auth
    assert a.username_claim == "preferred_username"
    assert "wlcg.groups" in a.scope and "offline_access" in a.scope


def test_construction_does_no_network_io(iam):
    make()
    assert iam.discovery.call_count == 0


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


class FakeGC:
    def __init__(self, frozen=0):
        self.calls, self.frozen = [], frozen

    def collect(self):
        self.calls.append("collect")

    def freeze(self):
        self.calls.append("freeze")
        self.frozen = 123456

    def get_freeze_count(self):
        return self.frozen


def test_the_start_up_heap_is_collected_then_frozen_once_per_process(monkeypatch, caplog):
    import logging

    fake = FakeGC()
    monkeypatch.setattr(startup, "gc", fake)
    log = logging.getLogger("test-freeze")
    with caplog.at_level(logging.INFO, logger="test-freeze"):
        startup.freeze_startup_heap(log)
        startup.freeze_startup_heap(log)
    assert fake.calls == ["collect", "freeze"]
    assert "skip its 123456 objects" in caplog.text


@pytest.mark.parametrize("in_hub,setting,frozen", [(True, True, True), (True, False, False), (False, True, False)])
def test_the_heap_is_frozen_only_in_a_hub_and_only_when_asked(monkeypatch, in_hub, setting, frozen):
    fake = FakeGC()
    monkeypatch.setattr(startup, "gc", fake)
    monkeypatch.setattr(startup, "runs_in_hub", lambda parent: in_hub)
    auth = make(freeze_startup_heap=setting)
    auth.check_allow_config()
    assert (fake.calls == ["collect", "freeze"]) is frozen


def test_only_a_jupyterhub_application_counts_as_the_hub():
    from jupyterhub.app import JupyterHub

    assert startup.runs_in_hub(JupyterHub()) and not startup.runs_in_hub(None)
