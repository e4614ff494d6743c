"""Signing out at the provider too: RP-initiated logout and RFC 7009 token revocation.

The URL a browser is sent to so that the provider ends its session and the revocation request
for a refresh token (pure helpers), and :class:`ProviderSignOut`, the authenticator's part that uses
them at logout.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import httpx
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
