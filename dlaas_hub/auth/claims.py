"""The user's claims at login: the id_token, verified and bound to its login, completed by userinfo.

The part of :class:`~dlaas_hub.auth.authenticator.DLaaSAuthenticator` that says who signed in and
in which groups; the JWT checks themselves are in :mod:`dlaas_hub.auth.idtoken`.
"""

from __future__ import annotations

from contextvars import ContextVar

from jupyterhub.traitlets import Callable
from traitlets import CaselessStrEnum, Float, HasTraits, List, Unicode, Union, validate

from ..errors import ConfigError, login_error
from ..tokens.claims import subject_mismatch
from ..tokens.http import IAMError, request_json
from .idtoken import SAFE_ALGORITHMS, IDTokenError, verify_id_token

#: The nonce the login being completed in this task was sent with ("" when it has none).
expected_nonce: ContextVar[str] = ContextVar("dlaas_expected_nonce", default="")

# JWT bookkeeping claims of the id_token that say nothing about the user.
_REGISTERED_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "jti", "nonce", "at_hash", "c_hash", "azp",
                      "auth_time", "sid"}


class LoginClaims(HasTraits):
    """The verified claims of a login, and when userinfo must complete them."""

    id_token_algorithms = List(
        Unicode(),
        default_value=["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"],
        config=True,
        help="Signature algorithms accepted on id_tokens. Only asymmetric algorithms may be listed: "
             "``none`` and HMAC (HS256...) are refused at start-up.",
    )
    id_token_leeway = Float(
        60.0,
        config=True,
        help="Clock skew in seconds tolerated when checking the id_token's ``exp``, ``iat`` and ``nbf``.",
    )
    groups_claim = Union(
        [Unicode(), Callable()],
        default_value="wlcg.groups",
        config=True,
        help="""The claim that lists the user's groups: ``wlcg.groups`` (paths such as ``/escape/ska``;
        request the ``wlcg.groups`` scope) or ``groups`` (IAM's names such as ``escape/ska``).
        May be a callable taking the user's claims and returning a list of group names.
        The groups feed ``allowed_groups``, ``admin_groups`` and the hub's managed groups.
        """,
    )
    fetch_userinfo = CaselessStrEnum(
        ["when_claims_missing", "always"],
        default_value="when_claims_missing",
        config=True,
        help="""When a login also asks the provider's userinfo endpoint for the user's claims.

        ``when_claims_missing`` (the default): only when the verified id_token lacks a claim the hub
        reads: :attr:`username_claim`, :attr:`groups_claim`, :attr:`extra_claims` and the spawner's
        ``rucio_account`` claim. INDIGO IAM puts them in the id_token, so a login makes no userinfo
        request. Nothing is lost: the id_token comes from the same code exchange as a userinfo answer
        would, and its signature is checked.

        ``always``: every login reads userinfo too, and its answer completes and overrides the
        id_token's claims; for providers whose id_token carries only part of a claim, or when a
        ``username_claim`` or ``groups_claim`` callable reads claims the hub cannot name (a callable
        always leads to the userinfo request). ``userdata_from_id_token = True`` never asks userinfo.
        """,
    )
    extra_claims = List(
        Unicode(),
        config=True,
        help="""Claims the hub's configuration reads from a login besides the user name and the groups,
        for example in a ``modify_auth_state_hook``. When the verified id_token lacks one of them, the
        login asks the userinfo endpoint for it (see :attr:`fetch_userinfo`). The spawner's
        ``rucio_account`` claim is added by itself.""",
    )

    @validate("id_token_algorithms")
    def _check_algorithms(self, proposal):
        unsafe = [a for a in proposal.value if a not in SAFE_ALGORITHMS]
        if unsafe or not proposal.value:
            raise ConfigError(
                f"DLaaSAuthenticator.id_token_algorithms: {unsafe or 'an empty list'} not allowed; "
                f"use asymmetric algorithms among {sorted(SAFE_ALGORITHMS)}"
            )
        return proposal.value

    async def verify_id_token(self, id_token: str, *, nonce: str | None = None,
                              access_token: str | None = None) -> dict:
        """The id_token's claims, once its signature, issuer, audience and expiry are checked.

        A login's id_token is also bound to the login: its ``nonce`` must be the one this browser's
        authorization request carried, and its ``at_hash`` (when present) the access token's.
        """
        await self.resolve_endpoints()
        return await verify_id_token(
            id_token, jwks=self._jwks, issuer=self.oidc_issuer, audience=self.client_id,
            algorithms=self.id_token_algorithms, leeway=self.id_token_leeway,
            nonce=nonce, access_token=access_token,
        )

    async def token_to_user(self, token_info):
        """The user's claims: the login's verified id_token, completed by the userinfo endpoint."""
        try:
            nonce = expected_nonce.get()
            if not nonce:
                raise IDTokenError("this login's state holds no nonce (sign-in not started at this hub?)")
            claims = await self.verify_id_token(token_info.get("id_token"), nonce=nonce,
                                                access_token=token_info["access_token"])
        except IDTokenError as e:
            self.log.warning("Login refused: %s", e)
            raise login_error(IAMError("id_token check", str(e)), issuer=self.oidc_issuer,
                              status=403) from None
        except IAMError as e:
            raise login_error(e, issuer=self.oidc_issuer) from None
        mismatch = subject_mismatch(token_info["access_token"], claims["sub"], self.oidc_issuer)
        if mismatch:
            e = IAMError("code exchange", f"the access token does not belong to the id_token: {mismatch}")
            self.log.warning("Login refused: %s", e)
            raise login_error(e, issuer=self.oidc_issuer, status=403)
        user_info = {k: v for k, v in claims.items() if k not in _REGISTERED_CLAIMS}
        if self.userdata_from_id_token or not self.userdata_url or not self.userinfo_needed(user_info):
            return user_info
        try:
            userinfo = await request_json(
                self.iam_client, "GET", self.userdata_url, label="userinfo", retries=1,
                headers={"Authorization": f"Bearer {token_info['access_token']}"},
            )
        except IAMError as e:
            raise login_error(e, issuer=self.oidc_issuer) from None
        if userinfo.get("sub") != claims["sub"]:
            e = IAMError("userinfo", "the userinfo answer is about another subject than the id_token")
            self.log.warning("Login refused: %s", e)
            raise login_error(e, issuer=self.oidc_issuer, status=403)
        user_info.update(userinfo)
        return user_info

    def claims_needed(self) -> set[str] | None:
        """The claims a login must carry, or None when a callable reads claims the hub cannot name."""
        if callable(self.username_claim) or callable(self.groups_claim):
            return None
        return {self.username_claim, self.groups_claim, *self.extra_claims, *self._spawner_claims}

    def userinfo_needed(self, claims: dict) -> bool:
        """Whether the verified id_token's claims must be completed by the userinfo endpoint."""
        if self.fetch_userinfo == "always":
            return True
        needed = self.claims_needed()
        return needed is None or not needed <= claims.keys()
