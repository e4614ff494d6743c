"""The user's view of their data-lake tokens: a hub page, and the same facts as JSON.

``GET /hub/dlaas/tokens`` (signed-in users, linked from the home page) and
``GET /hub/api/dlaas/tokens`` (the user's own API token) list the exchanged tokens by target:
audience, scope, expiry, last renewal and last error; whether the user must sign in again (the
provider refused their refresh token); and the user's running servers: the profile
each runs and when its token agent last fetched its files. They never show a token value.
"""

from __future__ import annotations

import datetime
import os

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import has_scope
from tornado import web

from ..tokens.status import sign_in_needed, token_status

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def _iso(at) -> str:
    if not at:
        return "—"
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class _StatusMixin:
    async def status_of(self, user) -> tuple[list[dict], dict | None]:
        """The user's tokens, and whether they must sign in again (read from one auth_state load)."""
        auth_state = await user.get_auth_state()
        return token_status(auth_state, getattr(self.authenticator, "targets", [])), sign_in_needed(auth_state)

    def servers_of(self, user) -> list[dict]:
        """The user's active servers (default first), each with its profile and last credentials fetch."""
        servers = []
        for name, spawner in sorted(user.spawners.items()):
            if not spawner.active or not hasattr(spawner, "running_profile"):
                continue
            profile = spawner.running_profile()
            servers.append({
                "name": name,
                "profile": profile.slug if profile else None,
                "profile_name": profile.display_name if profile else None,
                "credentials_fetched_at": int(spawner.credentials_served_at) or None,
            })
        return servers


class TokenStatusHandler(_StatusMixin, BaseHandler):
    @web.authenticated
    async def get(self):
        user = self.current_user
        tokens, sign_in = await self.status_of(user)
        self.set_header("Cache-Control", "no-store")
        html = await self.render_template("dlaas-tokens.html", tokens=tokens, servers=self.servers_of(user),
                                          when=_iso, sign_in_needed=sign_in)
        self.finish(html)


class TokenStatusAPIHandler(_StatusMixin, APIHandler):
    async def get(self):
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "Only a user's own API token may read their token status")
        if not has_scope(f"read:users!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"Requires read:users!user={user.name}")
        tokens, sign_in = await self.status_of(user)
        self.set_header("Cache-Control", "no-store")
        self.finish({"user": user.name, "tokens": tokens, "sign_in_needed": sign_in, "servers": self.servers_of(user)})


def handlers() -> list[tuple[str, type]]:
    return [(r"/dlaas/tokens", TokenStatusHandler), (r"/api/dlaas/tokens", TokenStatusAPIHandler)]
