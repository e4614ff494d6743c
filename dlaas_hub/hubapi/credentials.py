"""The hub API endpoint through which a server's token agent fetches its credential files.

``GET /hub/api/dlaas/users/{name}/credentials[?server=<server name>]`` returns the files of that
server (its profile decides the Rucio extension's mode), rendered from the user's current exchanged
tokens (never the refresh token or the user's broad access token). It needs the
``custom:dlaas:tokens`` scope, which the DLaaS spawners grant to the user's server tokens, and
access to that very server (a server's own token has it for itself only); it only answers requests
authenticated by an API token: a browser session never gets the tokens, even the user's own.
"""

from __future__ import annotations

import json
import time

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from .admission import Admission
from .metrics import CREDENTIALS_SERVED
from .ratelimit import key_of
from .scopes import TOKENS_SCOPE

# How many credentials requests start per event-loop iteration. Each one's first step (JupyterHub's
# token lookup) takes a few milliseconds of CPU: eight keep an iteration in the tens of milliseconds
# when every agent of a workshop asks at once.
ADMITTED_PER_ITERATION = 8
ADMISSION = Admission(ADMITTED_PER_ITERATION)


# When the hub last logged refusals for flooding, and how many since (one line a minute at most).
_REFUSALS = {"logged_at": 0.0, "since": 0}


class CredentialsAPIHandler(APIHandler):
    async def prepare(self):
        # Both before JupyterHub authenticates the request: that is the synchronous work a burst
        # piles up, and what a flood would make the hub do for every request.
        if self.refused_for_flooding():
            return
        await ADMISSION.enter()
        await super().prepare()

    def refused_for_flooding(self) -> bool:
        """Answer 429 with ``Retry-After`` when this request's token has used up its bucket."""
        buckets = getattr(self.authenticator, "credentials_buckets", None)
        token = self.get_auth_token()
        if buckets is None or not token:
            return False
        wait = buckets.take(key_of(token))
        if not wait:
            return False
        CREDENTIALS_SERVED.labels("rate_limited").inc()
        _REFUSALS["since"] += 1
        now = time.monotonic()
        if now - _REFUSALS["logged_at"] >= 60 or not _REFUSALS["logged_at"]:
            self.log.warning("Credentials endpoint: %d request(s) refused (429) in the last minute or so: a "
                             "server's token asked faster than DLaaSAuthenticator.credentials_rate allows",
                             _REFUSALS["since"])
            _REFUSALS.update(logged_at=now, since=0)
        self._quiet = True
        self.set_status(429)
        self.set_header("Retry-After", str(buckets.retry_after(wait)))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": 429, "message": "Too many requests for credentials from this token: "
                                                          "wait as Retry-After says"}))
        return True

    def _log(self):
        # A flood's refusals are counted and summed up once a minute above; an access-log line each
        # (thousands a minute) would cost the hub more than refusing.
        if not getattr(self, "_quiet", False):
            super()._log()

    async def get(self, user_name):
        try:
            await self._serve(user_name)
        except web.HTTPError as e:
            CREDENTIALS_SERVED.labels({401: "login_expired", 404: "not_found"}.get(e.status_code, "forbidden")).inc()
            raise
        CREDENTIALS_SERVED.labels("served").inc()

    async def _serve(self, user_name):
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        # Checked here rather than with @needs_scope, which wants the scope defined at import time.
        if not has_scope(f"{TOKENS_SCOPE}!user={user_name}", self.parsed_scopes, db=self.db):
            self.log.warning("Refusing %s's credentials to a token without %s", user_name, TOKENS_SCOPE)
            raise web.HTTPError(403, f"Requires the {TOKENS_SCOPE} scope for this user")
        if not self.get_auth_token():
            raise web.HTTPError(403, "Credentials are only served to a server's API token, not to a browser session")
        # A server's own token (its agent's) belongs to the user: no second lookup of the account.
        current = self.current_user
        user = current if getattr(current, "name", None) == user_name and hasattr(current, "spawners") \
            else self.find_user(user_name)
        server_name = self.get_argument("server", "")
        if user is None or server_name not in user.orm_spawners:
            raise web.HTTPError(404, "No such server")
        if not has_scope(f"access:servers!server={user.name}/{server_name}", self.parsed_scopes, db=self.db):
            # Another server's token: each server's agent fetches its own files.
            raise web.HTTPError(403, "This token may not access that server")
        spawner = user.spawners[server_name]
        if not hasattr(spawner, "credential_bundle"):
            raise web.HTTPError(404, "This server is not started by a DLaaS spawner")
        refresh = getattr(self.authenticator, "refresh_credentials", None)
        if refresh is not None and not await refresh(user):
            raise web.HTTPError(401, "The user's sign-in has expired; they must sign in again")
        bundle = await spawner.served_bundle()
        spawner.credentials_served_at = time.time()
        self.set_header("Cache-Control", "no-store")
        self.finish({
            "files": [f.to_json() for f in bundle.files],
            "missing": bundle.missing,
            "expires_at": bundle.expires_at(),
            # For the server's status bar: per target its state and last renewal or error, never a token.
            "status": await spawner.served_status(),
        })


def handlers() -> list[tuple[str, type]]:
    return [(r"/api/dlaas/users/([^/]+)/credentials", CredentialsAPIHandler)]
