"""The login's callback handler: one account lookup per login, the exchanges finished before the save,
against JupyterHub's own auth_to_user."""

import asyncio
import copy
from types import SimpleNamespace

import pytest
from jupyterhub import roles
from jupyterhub.auth import Authenticator
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from dlaas_hub.auth.handlers import DLaaSCallbackHandler, PendingExchanges
from dlaas_hub.tokens.exchange import ExchangedToken, ExchangeError, ExchangeTarget
from dlaas_hub.tokens.http import IAMError


def handler():
    # The methods under test use no request state: skip tornado's constructor.
    return object.__new__(DLaaSCallbackHandler)


def test_a_found_account_is_loaded_once_per_login(monkeypatch):
    looked_up = []

    def find_user(self, name):
        looked_up.append(name)
        return {"alice": object()}.get(name)

    monkeypatch.setattr(BaseHandler, "find_user", find_user)
    h = handler()
    alice = h.find_user("alice")
    assert alice is not None and h.find_user("alice") is alice
    assert h.find_user("bob") is None and h.find_user("bob") is None
    assert looked_up == ["alice", "bob"]


class Account:
    """What JupyterHub's auth_to_user uses of its User, noting what it does with it."""

    admin = False

    def __init__(self, name, events, stored=None):
        self.name, self.events, self.stored = name, events, stored

    def sync_groups(self, names):
        self.events.append("groups synced")

    async def get_auth_state(self):
        return self.stored

    async def save_auth_state(self, auth_state):
        self.events.append(("saved", copy.deepcopy(auth_state)))


class Handler(DLaaSCallbackHandler):
    authenticator = db = None  # plain attributes in place of the application's


@pytest.fixture
def login(monkeypatch, crypt_key):
    """JupyterHub's own auth_to_user, with an account store that notes what happens, and in what order."""
    from .build import make

    events, accounts = [], {}
    auth = make()
    complete_login = auth.complete_login

    async def noting_complete_login(auth_model, results):
        events.append("tokens stored")
        await complete_login(auth_model, results)

    def user_from_username(self, name):
        events.append("account created")
        accounts[name] = Account(name, events)
        return accounts[name]

    monkeypatch.setattr(auth, "complete_login", noting_complete_login)
    monkeypatch.setattr(BaseHandler, "find_user", lambda self, name: accounts.get(name))
    monkeypatch.setattr(BaseHandler, "user_from_username", user_from_username)
    monkeypatch.setattr(roles, "assign_default_roles", lambda db, entity: events.append("roles assigned"))

    def start(results=None, *, answered=True):
        h = object.__new__(Handler)
        h.authenticator = auth
        task = asyncio.get_running_loop().create_future()
        if answered:
            task.set_result(results or {"eos": EOS_TOKEN})
        h.defer_exchanges(PendingExchanges(auth, task))
        return h

    return SimpleNamespace(auth=auth, events=events, accounts=accounts, start=start)


EOS_TOKEN = ExchangedToken(access_token="eos-token", expires_at=2_000_000_000, audience="eos", scope="openid")
RECONCILES = Authenticator.class_traits().get("reconcile_auth_state_hook") is not None  # JupyterHub 6.1+
needs_reconcile_hook = pytest.mark.skipif(
    not RECONCILES, reason="JupyterHub before 6.1 has no reconcile_auth_state_hook; runs on JupyterHub 6.1 and later")


SUBJECT = {"subject": {"sub": "sub-alice", "iss": "https://iam.test.example"}}


def model():
    return {"name": "alice", "groups": ["escape"], "auth_state": {"exchanged": {}, "exchange_errors": {}, **SUBJECT}}


async def test_an_accounts_roles_and_groups_are_assigned_while_its_exchanges_run_where_jupyterhub_allows(login):
    login.accounts["alice"] = Account("alice", login.events)
    account = await login.start().auth_to_user(model())
    assert account is login.accounts["alice"]
    saved = ("saved", {"exchanged": {"eos": EOS_TOKEN.to_state()}, "exchange_errors": {}, **SUBJECT})
    if RECONCILES:
        # JupyterHub 6.1 calls its reconcile hook after its bookkeeping, just before it saves.
        assert login.events == ["roles assigned", "groups synced", "tokens stored", saved]
    else:
        assert login.events == ["tokens stored", "roles assigned", "groups synced", saved]


async def test_a_new_account_is_made_only_once_its_tokens_are_in(login):
    await login.start().auth_to_user(model())
    assert login.events[:2] == ["tokens stored", "account created"]


async def test_a_first_login_looks_for_its_new_account_once_before_jupyterhub_makes_it(login, monkeypatch):
    looked_up = []

    def find_user(self, name):
        looked_up.append(name)
        return login.accounts.get(name)

    def user_from_username(self, name):  # JupyterHub's: look again, then create
        if self.find_user(name) is None:
            login.events.append("account created")
            login.accounts[name] = Account(name, login.events)
        return login.accounts[name]

    monkeypatch.setattr(BaseHandler, "find_user", find_user)
    monkeypatch.setattr(BaseHandler, "user_from_username", user_from_username)
    h = login.start()
    assert h.find_user("alice") is None  # the subject check: no such account yet
    account = await h.auth_to_user(model())
    # once for the subject check, once more just before creating it (the stock login looks twice too)
    assert looked_up == ["alice", "alice"] and login.events.count("account created") == 1
    assert h.find_user("alice") is account and looked_up == ["alice", "alice"]


async def test_a_first_login_refused_for_its_tokens_makes_no_account(login):
    refused = ExchangeError(ExchangeTarget("eos", "eos", "openid"), IAMError("exchange", "HTTP 403", status=403))
    with pytest.raises(web.HTTPError):
        await login.start({"eos": refused}).auth_to_user(model())
    assert login.events == ["tokens stored"] and not login.accounts


@needs_reconcile_hook
async def test_an_operators_reconcile_hook_runs_once_the_tokens_are_in(login):
    def keep_my_secret(authenticator, auth_model, existing):
        login.events.append(("operator's hook", sorted(auth_model["auth_state"]["exchanged"]), existing))
        return {**auth_model["auth_state"], "secret": existing["secret"]}

    login.auth.reconcile_auth_state_hook = keep_my_secret
    login.accounts["alice"] = Account("alice", login.events, stored={"secret": "kept"})
    await login.start().auth_to_user(model())
    assert login.events[-2:] == [
        ("operator's hook", ["eos"], {"secret": "kept"}),
        ("saved", {"exchanged": {"eos": EOS_TOKEN.to_state()}, "exchange_errors": {}, **SUBJECT, "secret": "kept"}),
    ]


async def test_a_refresh_saves_its_auth_state_unchanged(login):
    login.accounts["alice"] = Account("alice", login.events, stored={"old": True})
    h = object.__new__(Handler)
    h.authenticator = login.auth
    await h.auth_to_user(model(), login.accounts["alice"])
    assert login.events[-1] == ("saved", model()["auth_state"])


@needs_reconcile_hook
async def test_exchanges_of_a_login_jupyterhub_fails_before_its_save_are_dropped(login, monkeypatch):
    from ..hubapi.test_metrics import value

    login.accounts["alice"] = Account("alice", login.events)
    monkeypatch.setattr(Account, "sync_groups", lambda self, names: 1 / 0)
    h = login.start(answered=False)
    pending = h.pending_exchanges
    refused = value("dlaas_logins_total", outcome="refused")
    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(h.auth_to_user(model()), timeout=5)
    await asyncio.sleep(0)
    assert pending.task.cancelled() and "tokens stored" not in login.events
    assert value("dlaas_logins_total", outcome="refused") == refused + 1
