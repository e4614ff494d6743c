"""The login's request handlers: discovery before the redirect, and a callback that lets JupyterHub
do its account bookkeeping while the login's token exchanges are still in flight."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import maybe_future
from oauthenticator.oauth2 import (
    OAuthCallbackHandler,
    OAuthLoginHandler,
    OAuthLogoutHandler,
    _deserialize_state,
    _serialize_state,
)
from tornado import web
from tornado.httputil import url_concat

from ..errors import as_user_error, login_error, user_error
from ..tokens.http import IAMError
from .idtoken import new_nonce_seed, nonce_for

#: The key of the login's nonce seed in oauthenticator's state cookie.
NONCE_SEED_KEY = "dlaas_nonce_seed"


def login_nonce(handler) -> str | None:
    """The nonce the login that ``handler``'s request completes was sent with, if any.

    The seed lives in oauthenticator's state cookie, which JupyterHub signs and which only this
    browser holds: an id_token obtained in any other login carries another nonce.
    """
    get_cookie = getattr(handler, "get_state_cookie", None)
    cookie = get_cookie() if callable(get_cookie) else None
    if not cookie:
        return None
    try:
        seed = _deserialize_state(cookie).get(NONCE_SEED_KEY)
    except (AttributeError, ValueError):
        return None
    return nonce_for(seed) if isinstance(seed, str) and seed else None


class DLaaSLoginHandler(OAuthLoginHandler):
    """Resolves the provider's endpoints (discovery) before redirecting to it, and sends a ``nonce``.

    oauthenticator keeps the login's state (and PKCE verifier) in a signed cookie; the nonce's seed
    joins them there, and the authorization request carries its hash.
    """

    _nonce_seed: str | None = None

    async def get(self):
        try:
            await self.authenticator.resolve_endpoints()
        except IAMError as e:
            raise login_error(e, issuer=self.authenticator.oidc_issuer) from None
        return super().get()

    def set_state_cookie(self, state_cookie_value):
        state = _deserialize_state(state_cookie_value)
        self._nonce_seed = state[NONCE_SEED_KEY] = new_nonce_seed()
        super().set_state_cookie(_serialize_state(state))

    def authorize_redirect(self, *args, extra_params=None, **kwargs):
        extra_params = dict(extra_params or {})
        if self._nonce_seed is not None:
            extra_params["nonce"] = nonce_for(self._nonce_seed)
        return super().authorize_redirect(*args, extra_params=extra_params, **kwargs)


class PendingExchanges:
    """A login's token exchanges, still running once the user is known, bound and allowed.

    :meth:`finish` waits for them and stores the tokens in the auth model JupyterHub is about to save
    (or raises the login's error page when a required target failed); :meth:`drop` cancels them when
    JupyterHub refuses the login after the authenticator allowed it.
    """

    def __init__(self, authenticator, task: asyncio.Future):
        self.authenticator = authenticator
        self.task = task
        self.finished = False
        # A login JupyterHub refuses after us never collects its exchanges: keep their errors quiet.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def finish(self, auth_model: dict) -> None:
        self.finished = True
        await self.authenticator.complete_login(auth_model, await self.task)

    def drop(self) -> None:
        self.task.cancel()
        self.authenticator.count_login("refused")


#: The exchanges of the login whose account JupyterHub is saving in this request, for ExchangesFirst.
_saving: ContextVar[PendingExchanges | None] = ContextVar("dlaas_saving_login", default=None)


class ExchangesFirst:
    """The ``reconcile_auth_state_hook`` of DLaaSAuthenticator (JupyterHub 6.1 and later).

    JupyterHub calls it after assigning the account's roles and groups, just before it saves the
    auth_state: the login's token exchanges are finished there, so that bookkeeping overlaps them
    too. The operator's own hook, kept in :attr:`hook`, then runs as it would without this one.
    """

    def __init__(self, hook=None):
        self.hook = hook

    async def __call__(self, authenticator, auth_model: dict, existing_auth_state):
        pending = _saving.get()
        if pending is not None and not pending.finished:
            await pending.finish(auth_model)
        if self.hook is None:
            return auth_model.get("auth_state")
        return await maybe_future(self.hook(authenticator, auth_model, existing_auth_state))

    def __repr__(self):
        return f"ExchangesFirst({self.hook!r})"


class DLaaSCallbackHandler(OAuthCallbackHandler):
    """The OAuth callback, with the token exchanges overlapping JupyterHub's own work.

    :meth:`DLaaSAuthenticator.authenticate` returns as soon as the user is verified and allowed,
    handing the exchanges still in flight to :meth:`defer_exchanges`. JupyterHub runs its own
    checks meanwhile, and the login waits for the tokens only in :meth:`auth_to_user`, before
    JupyterHub assigns roles and groups and saves the auth_state.
    """

    pending_exchanges: PendingExchanges | None = None
    _found_users: dict | None = None

    def find_user(self, name):
        # The subject check and JupyterHub's bookkeeping both look the account up: load it once per
        # login, found or not (user_from_username looks again before it creates one).
        if self._found_users is None:
            self._found_users = {}
        if name not in self._found_users:
            self._found_users[name] = super().find_user(name)
        return self._found_users[name]

    def user_from_username(self, username):
        # JupyterHub creates a missing account here: look again first, another login may have made it.
        (self._found_users or {}).pop(username, None)
        user = super().user_from_username(username)
        self._found_users = {**(self._found_users or {}), username: user}
        return user

    async def get(self):
        try:
            return await super().get()
        except web.HTTPError as e:
            if e.status_code == 400 and str(e.log_message).startswith("OAuth state"):
                # A reloaded or bookmarked callback: its code is spent and its state cookie gone.
                self.extra_error_html = self._sign_in_links(again=True)
                raise user_error(400, "This sign-in page has expired: it was already used, or it was opened "
                                      "in another browser. Please sign in again.",
                                 log_message=e.log_message) from None
            # oauthenticator's refusals (not allowed, a state mismatch) carry no reason: JupyterHub
            # would head the page with the message and repeat it below.
            as_user_error(e)
            if e.status_code == 403:
                self.extra_error_html = self._sign_in_links(again=False)
            raise

    def _sign_in_links(self, *, again: bool) -> str:
        base = self.hub.base_url
        links = [f'<a class="btn btn-primary" href="{base}login">Sign in again</a>'] if again else []
        links.append(f'<a class="btn btn-default btn-secondary" id="dlaas-switch-account" '
                     f'href="{base}dlaas/switch-account">Sign in with another account</a>')
        return " ".join(links)

    def defer_exchanges(self, pending: PendingExchanges) -> None:
        self.pending_exchanges = pending

    async def auth_to_user(self, authenticated, user=None):
        pending, self.pending_exchanges = self.pending_exchanges, None
        if pending is None:
            return await super().auth_to_user(authenticated, user)
        if user is None:
            user = self.find_user(authenticated["name"])  # JupyterHub makes a new user itself
        if user is None or not isinstance(getattr(self.authenticator, "reconcile_auth_state_hook", None),
                                          ExchangesFirst):
            # A login refused for its tokens makes no account.
            await pending.finish(authenticated)
            return await super().auth_to_user(authenticated, user)
        saving = _saving.set(pending)
        try:
            return await super().auth_to_user(authenticated, user)
        finally:
            _saving.reset(saving)
            if not pending.finished:  # JupyterHub failed before its save
                pending.drop()

    def on_finish(self):
        # JupyterHub refused the login after the authenticator allowed it (blocked_users, a
        # post_auth_hook): the exchanged tokens are dropped unused.
        if self.pending_exchanges is not None:
            self.pending_exchanges.drop()
            self.pending_exchanges = None
        super().on_finish()


class DLaaSLogoutHandler(OAuthLogoutHandler):
    """The hub's sign-out: a page with one button, and the sign-out itself on its POST.

    ``GET /hub/logout`` (the home page's "Logout", JupyterLab's *File > Log Out*) changes nothing: it
    shows what signing out does and a form that POSTs back with ``_xsrf``, which JupyterHub checks
    before this handler runs. Another site can make a browser GET any URL (a link, an image), but it
    cannot read the page's ``_xsrf``: a forged sign-out would revoke the user's grant at the provider
    and cut every running server off from EOS and Rucio at its next renewal. The POST signs out of
    the hub (JupyterHub's own logout), ends the sessions the user's browsers hold on their servers,
    revokes the refresh token and ends the provider's session.
    """

    _provider_logout_url: str | None = None

    async def get(self):
        user = self.current_user
        if user is None:
            return await self.render_logout_page()  # nobody to sign out: on to the login page
        self.set_header("Cache-Control", "no-store")
        facts = await self.authenticator.sign_out_facts(user)
        html = await self.render_template("dlaas-signout.html", shutdown_on_logout=self.shutdown_on_logout, **facts)
        self.finish(html)

    async def post(self):
        user = self.current_user
        if user is not None and hasattr(user, "get_auth_state"):
            # Before JupyterHub's logout, which deletes this browser session's tokens itself.
            self.authenticator.end_server_sessions(self, user)
        await super().get()  # JupyterHub's logout, which calls handle_logout and render_logout_page

    async def handle_logout(self):
        await super().handle_logout()
        user = self.current_user
        if user is not None and hasattr(user, "get_auth_state"):
            self._provider_logout_url = await self.authenticator.sign_out(self, user)

    async def render_logout_page(self):
        if self._provider_logout_url and not self.authenticator.logout_redirect_url:
            return self.redirect(self._provider_logout_url)
        return await super().render_logout_page()


class SwitchAccountHandler(BaseHandler):
    """``/hub/dlaas/switch-account``: end the provider's session (whoever holds it), then sign in.

    For a browser whose provider session belongs to someone the hub refused: without it, "Sign in"
    would go straight back through that session.
    """

    async def get(self):
        try:
            await self.authenticator.resolve_endpoints()
        except IAMError:
            pass  # the login page will say that the provider is unreachable
        url = self.authenticator.provider_logout_url(self)
        self.redirect(url or self.settings["login_url"])


class SignInAgainHandler(BaseHandler):
    """``/hub/dlaas/sign-in-again?next=<url>``: through the provider once more, then back to ``next``.

    The way back for a user whose sign-in has expired (JupyterLab's status bar and the token page link
    here). The hub's own login page would not do: JupyterHub checks a sign-in only every
    ``auth_refresh_age``, and until then sends a browser with its cookie straight on to ``next``. This
    starts the provider's sign-in (as the login page's button does; nothing changes until the
    provider's callback); the new sign-in replaces the expired one. ``next`` is checked as JupyterHub
    checks it (this hub's own URLs only).
    """

    def get(self):
        login = self.authenticator.login_url(self.hub.base_url)
        self.redirect(url_concat(login, {"next": self.get_next_url(default=self.hub.base_url + "home")}))
