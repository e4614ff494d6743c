"""Hub accounts: acceptable names, and the IAM subject each account is bound to.

The part of :class:`~dlaas_hub.auth.authenticator.DLaaSAuthenticator` that decides who a login is
for; the pure rules are in :mod:`dlaas_hub.auth.identity`.
"""

from __future__ import annotations

import re

from tornado import web
from traitlets import Dict, HasTraits, Unicode, default, validate

from ..display import shown
from ..errors import ConfigError, user_error
from .identity import DEFAULT_USERNAME_PATTERN, Subject, bound_subject, name_matches, name_rule


class AccountBinding(HasTraits):
    """Names checked against ``username_pattern``, accounts bound to the ``sub`` of their first login."""

    subject_rebinds = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Hub accounts to bind anew, on purpose, to another IAM subject: ``{hub name: new sub}``.

        Each hub account is bound to the ``sub`` (and issuer) of its first login; a later login whose
        ``sub`` differs is refused, because a provider's user name may fold onto another user's hub
        name (``ALICE`` and ``alice``). When a person's IAM account was re-created (new ``sub``, same
        name), or the hub moves to another IAM, list the account here with the ``sub`` the refusal
        logged; the next login by that subject re-binds the account, keeping its servers and files.
        Remove the entry afterwards. Example::

            c.DLaaSAuthenticator.subject_rebinds = {"alice": "8a4c2f1e-7b3d-4e59-9c21-0f6d5a8b3e71"}
        """,
    )

    @default("username_pattern")
    def _username_pattern_default(self):
        # Hub names end up in paths, pod names and config files: keep them to a safe alphabet.
        return DEFAULT_USERNAME_PATTERN

    @validate("username_pattern")
    def _check_username_pattern(self, proposal):
        try:
            re.compile(proposal.value)
        except re.error as e:
            raise ConfigError(f"DLaaSAuthenticator.username_pattern is not a valid regular expression: {e}") from None
        return proposal.value


    def validate_username(self, username) -> bool:
        """The name must match :attr:`username_pattern` in full, whoever creates the account.

        JupyterHub compiles ``username_pattern`` only when it changes, so a default pattern would
        never be enforced; and a bare ``$`` also accepts a trailing newline.
        """
        return name_matches(self.username_pattern, username) and super().validate_username(username)

    def user_info_to_username(self, user_info):
        name = (self.username_claim(user_info) if callable(self.username_claim)
                else user_info.get(self.username_claim))
        if not isinstance(name, str) or not name:
            claim = self.username_claim if isinstance(self.username_claim, str) else "username_claim"
            self.log.warning("Login refused: the provider gave no user name (claim %s) for subject %s",
                             claim, shown(user_info.get("sub")))
            raise self._refusal(
                f"Your identity provider account has no user name (claim '{claim}'), so no hub account "
                "can be made for it. Ask your IAM administrator to check your account.", outcome="name_refused")
        if not name.isascii():
            # Case folding maps some non-ASCII letters onto ASCII ones (the Kelvin sign onto k):
            # such a name could claim another person's hub name before they first sign in.
            self._refuse_name(name)
        return name

    def _refusal(self, message: str, status: int = 403, outcome: str = "refused") -> web.HTTPError:
        exc = user_error(status, message)
        exc.dlaas_outcome = outcome
        return exc

    def check_username(self, name) -> None:
        """Refuse, with a page saying why, a name that :attr:`username_pattern` does not accept."""
        if not self.validate_username(name):
            self._refuse_name(name)

    def _refuse_name(self, name):
        self.log.warning("Login refused: the user name %s is not acceptable (ASCII only, and "
                         "DLaaSAuthenticator.username_pattern)", shown(name))
        raise self._refusal(
            f"Your IAM user name {shown(name)} is not acceptable as a hub user name (allowed: "
            f"{name_rule(self.username_pattern)}). Ask your hub administrator for help.", outcome="name_refused")

    def account_subject(self, auth_state: dict | None) -> Subject | None:
        """The IAM subject an auth_state's account is bound to (None when it records none)."""
        return bound_subject(auth_state, issuer=self.oidc_issuer, claims_key=self.user_auth_state_key)

    def login_subject(self, auth_state: dict) -> Subject:
        claims = auth_state.get(self.user_auth_state_key) or {}
        return Subject(claims["sub"], self.oidc_issuer)

    async def stored_auth_state(self, handler, name: str):
        """(whether the account exists, whether it has auth_state, its readable auth_state).

        The account is looked up through the handler: :class:`DLaaSCallbackHandler` keeps it for
        JupyterHub's own bookkeeping later in the same login, so the login loads it once.
        """
        find_user = getattr(handler, "find_user", None)
        user = find_user(name) if find_user is not None else None
        if user is None:
            return False, False, None
        stored = getattr(user, "encrypted_auth_state", None) is not None
        return True, stored, await user.get_auth_state()  # None when it cannot be decrypted

    async def check_subject(self, handler, auth_model: dict) -> None:
        """Bind the account to this login's subject, or refuse a login by another subject."""
        name, auth_state = auth_model["name"], auth_model["auth_state"]
        subject = self.login_subject(auth_state)
        exists, stored, previous = await self.stored_auth_state(handler, name)
        bound = self.account_subject(previous)
        if bound is None and stored:
            why = "its stored auth_state cannot be read (was JUPYTERHUB_CRYPT_KEY changed?)"
        elif bound is not None and bound != subject:
            why = f"it is bound to IAM subject {bound}"
        else:
            why = None
        if why and self.subject_rebinds.get(name) == subject.sub:
            self.log.warning("Hub account %s re-bound to IAM subject %s, as DLaaSAuthenticator.subject_rebinds "
                             "says (%s); remove the entry now", shown(name), subject, why)
        elif why:
            self.log.warning(
                "Login refused: hub account %s is not for IAM subject %s: %s. If this person should have "
                "the account, set DLaaSAuthenticator.subject_rebinds = {%s: %s}",
                shown(name), subject, why, shown(name), shown(subject.sub, 80))
            raise self._refusal(
                "This hub account belongs to another identity at the identity provider, so you cannot "
                "sign in to it. If it is yours (for example after your IAM account was re-created), ask "
                "your hub administrator to move it to your new identity.", outcome="subject_mismatch")
        elif not exists:
            self.log.info("New hub account %s bound to IAM subject %s", shown(name), subject)
        auth_state["subject"] = subject.to_state()

    def groups_from_auth_state(self, auth_state: dict) -> list[str]:
        """The user's groups, read from :attr:`groups_claim` of their claims."""
        claims = auth_state.get(self.user_auth_state_key) or {}
        groups = self.groups_claim(claims) if callable(self.groups_claim) else claims.get(self.groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            return []
        return [g for g in groups if isinstance(g, str) and g]
