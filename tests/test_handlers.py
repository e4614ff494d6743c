"""The login's callback handler: one account lookup per login, the exchanges finished before the save."""

import asyncio

from jupyterhub.handlers.base import BaseHandler

from dlaas_hub.handlers import DLaaSCallbackHandler, PendingExchanges


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
    assert h.find_user("bob") is None and h.find_user("bob") is None  # JupyterHub may create bob meanwhile
    assert looked_up == ["alice", "bob", "bob"]


async def test_the_exchanges_are_finished_before_jupyterhub_saves_the_login(monkeypatch):
    events = []

    class Authenticator:
        async def complete_login(self, auth_model, results):
            events.append(("tokens stored", results))
            auth_model["auth_state"]["exchanged"] = results

    async def auth_to_user(self, authenticated, user=None):
        events.append(("jupyterhub saves", dict(authenticated["auth_state"]), user))
        return user

    account = object()
    monkeypatch.setattr(BaseHandler, "auth_to_user", auth_to_user)
    monkeypatch.setattr(BaseHandler, "find_user", lambda self, name: account)
    task = asyncio.get_running_loop().create_future()
    h = handler()
    h.defer_exchanges(PendingExchanges(Authenticator(), task))
    task.set_result({"eos": "token"})
    assert await h.auth_to_user({"name": "alice", "auth_state": {"exchanged": {}}}) is account
    assert events == [("tokens stored", {"eos": "token"}),
                      ("jupyterhub saves", {"exchanged": {"eos": "token"}}, account)]
    assert h.pending_exchanges is None
