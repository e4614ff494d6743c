"""``dlaas-hub check-config --online``: what only the provider itself can say of a configuration.

The issuer's discovery document, fetched as the hub fetches it (:class:`ProviderMetadata`: the issuer
it names must be the configured one, with an authorization, token and keys endpoint), must offer the
grants the hub uses: the authorization code and refresh grants for sign-in, RFC 8693 token exchange
for the storage tokens. A provider that lists no ``grant_types_supported`` is given the benefit of
the doubt (a warning): the list is optional in OpenID Connect Discovery.
"""

from __future__ import annotations

import asyncio

import httpx

from ..auth.discovery import ProviderMetadata
from ..tokens.exchange import TOKEN_EXCHANGE_GRANT
from ..tokens.http import IAMError

ISSUER_KEY = "DLaaSAuthenticator.oidc_issuer"
NEEDED_GRANTS = {"authorization_code": "the sign-in", "refresh_token": "renewals",
                 TOKEN_EXCHANGE_GRANT: "the storage tokens (RFC 8693 token exchange)"}


async def _metadata(issuer: str) -> dict:
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0)) as client:
        return await ProviderMetadata(client, issuer, retries=1).get()


def provider_findings(issuer: str, *, exchange_targets: bool = True) -> list[tuple[str, str, str]]:
    """(level, setting, message) for what the provider at ``issuer`` says of itself."""
    try:
        metadata = asyncio.run(_metadata(issuer))
    except IAMError as e:
        return [("error", ISSUER_KEY, f"{issuer}: {e}")]
    offered = metadata.get("grant_types_supported")
    if not isinstance(offered, list):
        return [("warning", ISSUER_KEY, f"{issuer} does not list its grant_types_supported: whether it offers "
                                        "token exchange (RFC 8693) cannot be checked before a sign-in")]
    findings = []
    for grant, why in NEEDED_GRANTS.items():
        if grant == TOKEN_EXCHANGE_GRANT and not exchange_targets:
            continue
        if grant not in offered:
            findings.append(("error", ISSUER_KEY, f"{issuer} does not offer the {grant} grant, which the hub "
                                                  f"needs for {why} (its grant_types_supported: {', '.join(offered)})"))
    return findings
