"""Signing out at the provider too: RP-initiated logout and RFC 7009 token revocation.

Pure helpers, no hub: the URL a browser is sent to so that the provider ends its session, and the
revocation request for a refresh token.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import httpx

from .http import request_json


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
