"""Signing out at the provider too: RP-initiated logout and RFC 7009 token revocation.

The URL a browser is sent to so that the provider ends its session and the revocation request
for a refresh token (pure helpers), and :class:`ProviderSignOut`, the authenticator's part that uses
them at logout.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode, urlsplit

import httpx
from jupyterhub import orm
from traitlets import Bool, HasTraits, Unicode, Union, validate

from ..errors import ConfigError
from ..tokens.http import IAMError, request_json


def end_session_url(endpoint: str, *, client_id: str, post_logout_redirect_uri: str | None = None,
                    id_token_hint: str | None = None) -> str:
    """The provider's ``end_session_endpoint`` with OpenID Connect RP-Initiated Logout 1.0's parameters.

    ``id_token_hint`` tells the provider whose session to end (it may have expired: providers accept
    that); ``client_id`` lets it check ``post_logout_redirect_uri`` without one.
    """
    params = {"client_id": client_id}
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    if post_logout_redirect_uri:
        params["post_logout_redirect_uri"] = post_logout_redirect_uri
    separator = "&" if urlsplit(endpoint).query else "?"
    return endpoint + separator + urlencode(params)


async def revoke_token(client: httpx.AsyncClient, revocation_endpoint: str, token: str, *,
                       token_type_hint: str = "refresh_token", auth=None, client_params=None) -> None:
    """Revoke ``token`` at the provider (RFC 7009). Raises IAMError; an unknown token is no error there."""
    data = {"token": token, "token_type_hint": token_type_hint, **(client_params or {})}
    await request_json(client, "POST", revocation_endpoint, label=f"revocation of the {token_type_hint}",
                       data=data, auth=auth, retries=1, expect_json=False)


def cookie_path_of(redirect_uri: str | None) -> str | None:
    """The path of the cookie an OAuth client of the hub (a server, a service) keeps its session in.

    JupyterHub's servers and services set it on their base URL, where their ``oauth_callback`` is.
    """
    path = urlsplit(redirect_uri or "").path
    if not path.endswith("/oauth_callback"):
        return None
    return path[: -len("oauth_callback")]


def login_url_beside(callback_url: str) -> str:
    """The hub's login page, next to its OAuth callback URL (``.../hub/oauth_callback``)."""
    base, _, _ = callback_url.rpartition("/")
    return f"{base}/login"


class ProviderSignOut(HasTraits):
    """The hub's logout ends the provider's session and revokes the refresh token."""

    end_provider_session = Union(
        [Bool(), Unicode()],
        default_value=True,
        config=True,
        help="""Whether signing out of the hub also ends the user's session at the provider
        (OpenID Connect RP-Initiated Logout), so that the next "Sign in" on the same browser asks for
        a password again: on a shared lab machine, the next person never gets the previous one's account.

        ``True`` (the default): when the provider's discovery document advertises an
        ``end_session_endpoint``, the hub's logout ends with a redirect there carrying
        ``id_token_hint`` (from the encrypted auth_state), ``client_id`` and
        ``post_logout_redirect_uri`` (:attr:`post_logout_redirect_url`). A URL: that endpoint, whatever
        discovery says. ``False``: the provider's session is left alone. oauthenticator's
        ``logout_redirect_url``, when set, takes precedence over this.
        """,
    )
    post_logout_redirect_url = Unicode(
        config=True,
        help="""Where the provider sends the browser after ending its session. Defaults to the hub's
        login page next to ``oauth_callback_url`` (``https://hub.example/hub/login``). Register it with
        the provider's client as a post-logout redirect URI (INDIGO IAM: the client's "Post logout
        redirect URIs").""",
    )
    revoke_on_logout = Bool(
        True,
        config=True,
        help="""Revoke the user's refresh token at the provider's ``revocation_endpoint`` (RFC 7009,
        when discovery advertises one) when they sign out of the hub, so that a signed-out session
        leaves no live grant behind. Servers still running keep the exchanged tokens they hold until
        those expire (EOS: 20 minutes, Rucio: an hour at IAM's defaults); renewing them then needs a
        new sign-in.""",
    )

    @validate("end_provider_session", "post_logout_redirect_url")
    def _check_logout_urls(self, proposal):
        value = proposal.value
        if isinstance(value, str) and value and not re.match(r"^https?://[^\s/]+\S*$", value):
            raise ConfigError(f"DLaaSAuthenticator.{proposal.trait.name} must be an http(s) URL (or "
                              f"{'True or False' if proposal.trait.name == 'end_provider_session' else 'empty'}), "
                              f"not {value!r}")
        return value


    def end_session_endpoint(self) -> str | None:
        """The provider's end-session URL that :attr:`end_provider_session` selects, if any."""
        if isinstance(self.end_provider_session, str):
            return self.end_provider_session
        if not self.end_provider_session:
            return None
        endpoint = (self._metadata.cached or {}).get("end_session_endpoint")
        return endpoint if isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")) else None

    def provider_logout_url(self, handler, id_token: str | None = None) -> str | None:
        """Where the browser goes to end its provider session, then comes back to the hub's login."""
        endpoint = self.end_session_endpoint()
        if endpoint is None:
            return None
        back = self.post_logout_redirect_url or login_url_beside(self.get_callback_url(handler))
        return end_session_url(endpoint, client_id=self.client_id, post_logout_redirect_uri=back,
                               id_token_hint=id_token)

    async def sign_out_facts(self, user) -> dict:
        """What the sign-out page tells the user before they confirm: never a token."""
        try:
            await self.resolve_endpoints()
        except IAMError:
            pass  # the page can still be shown; signing out does not need the provider
        metadata = self._metadata.cached or {}
        auth_state = await user.get_auth_state() or {}
        expiries = [t.get("expires_at") for t in (auth_state.get("exchanged") or {}).values()
                    if isinstance(t, dict) and isinstance(t.get("expires_at"), (int, float))]
        running = [name or "default" for name, spawner in sorted(user.spawners.items()) if spawner.active]
        return {
            "provider": self.login_service,
            "ends_provider_session": self.end_session_endpoint() is not None and not self.logout_redirect_url,
            "revokes": bool(self.revoke_on_logout and isinstance(metadata.get("revocation_endpoint"), str)
                            and auth_state.get("refresh_token")),
            "running_servers": running,
            "tokens_last_until": (time.strftime("%H:%M UTC", time.gmtime(max(expiries)))
                                  if expiries and max(expiries) > time.time() else None),
        }

    def end_server_sessions(self, handler, user) -> int:
        """End every session that a browser holds on the user's servers (and the hub's services).

        JupyterHub's logout deletes the tokens of this browser's hub session only, found by its
        session-id cookie; a browser closed and reopened since has lost that cookie, yet its
        servers' cookies still open JupyterLab. So every token the hub issued to a browser session
        of this user (through OAuth: it carries a session id) is deleted, and this browser's cookies
        of those servers are cleared. The servers' own API tokens and the user's API tokens stay.
        Returns how many tokens were deleted.
        """
        db = handler.db
        tokens = db.query(orm.APIToken).filter(orm.APIToken.user_id == user.id,
                                               orm.APIToken.session_id.isnot(None)).all()
        clients = {t.oauth_client for t in tokens if t.oauth_client is not None}
        for token in tokens:
            db.delete(token)
        db.commit()
        host_prefix = handler.settings.get("cookie_host_prefix_enabled", False)
        for client in clients:
            path = cookie_path_of(client.redirect_uri)
            if path is None:
                continue
            if host_prefix:
                handler.clear_cookie("__Host-" + client.identifier, path="/", secure=True)
            handler.clear_cookie(client.identifier, path=path)
        if tokens:
            self.log.info("Sign-out of %s: %d browser session(s) of their servers ended", user.name, len(tokens))
        return len(tokens)

    async def sign_out(self, handler, user) -> str | None:
        """Revoke the user's refresh token and return the provider's end-session URL, if any.

        Never raises: a provider that is down does not keep anyone signed in to the hub.
        """
        try:
            await self.resolve_endpoints()
        except IAMError as e:
            self.log.warning("Sign-out of %s: the provider is not reachable (%s)", user.name, e)
        auth_state = await user.get_auth_state() or {}
        await self.revoke_refresh_token(user.name, auth_state.get("refresh_token"))
        self.renewer.forget(user.name)
        return self.provider_logout_url(handler, auth_state.get("id_token"))

    async def revoke_refresh_token(self, name: str, refresh_token) -> bool:
        endpoint = (self._metadata.cached or {}).get("revocation_endpoint")
        if not self.revoke_on_logout or not isinstance(endpoint, str) or not refresh_token:
            return False
        try:
            await revoke_token(self.iam_client, endpoint, refresh_token, auth=self._client_auth(),
                               client_params=self._client_params())
        except IAMError as e:
            self.log.warning("Sign-out of %s: the refresh token could not be revoked (%s)", name, e)
            return False
        self.log.info("Sign-out of %s: refresh token revoked at the provider", name)
        return True
