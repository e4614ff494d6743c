"""The user's view of their data-lake tokens: a hub page, and the same facts as JSON.

``GET /hub/dlaas/tokens`` (signed-in users, linked from the home page) and
``GET /hub/api/dlaas/tokens`` (the user's own API token) list the exchanged tokens by target:
audience, scope, expiry, last renewal and last error. They never show a token value.
"""

from __future__ import annotations

import datetime
import os

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import has_scope
from tornado import web

from .tokenstatus import token_status

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def _iso(at) -> str:
    if not at:
        return "—"
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class _StatusMixin:
    async def tokens_of(self, user) -> list[dict]:
        targets = getattr(self.authenticator, "targets", [])
        return token_status(await user.get_auth_state(), targets)


class TokenStatusHandler(_StatusMixin, BaseHandler):
    @web.authenticated
    async def get(self):
        user = self.current_user
        tokens = await self.tokens_of(user)
        self.set_header("Cache-Control", "no-store")
        html = await self.render_template("dlaas-tokens.html", tokens=tokens, when=_iso)
        self.finish(html)


class TokenStatusAPIHandler(_StatusMixin, APIHandler):
    async def get(self):
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "Only a user's own API token may read their token status")
        if not has_scope(f"read:users!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"Requires read:users!user={user.name}")
        self.set_header("Cache-Control", "no-store")
        self.finish({"user": user.name, "tokens": await self.tokens_of(user)})


def handlers() -> list[tuple[str, type]]:
    return [(r"/dlaas/tokens", TokenStatusHandler), (r"/api/dlaas/tokens", TokenStatusAPIHandler)]
