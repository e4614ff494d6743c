"""The token agent: keeps a server's credential files fresh, next to the notebook server.

It asks the hub for the server's current credential files with the server's own API token and
rewrites them atomically before they expire. It never deletes a file, so a failed round keeps the
still-valid tokens in place, and it backs off (with jitter) while the hub is unreachable, so that
a hub coming back from a restart is not met by every agent at once; but its pause never outgrows a
fraction of the life left in the files it holds, and once they have expired it asks every few
seconds, so that renewals resume as soon as the hub is back. When the hub answers that the user's
sign-in has expired (401), it says so once and asks again about once a minute (the hub answers
that from what it holds, without asking the IAM), to see a new sign-in soon; when the hub
says it asks too often (429), it waits as ``Retry-After`` says.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

from . import lakestate
from .files import CredentialError, CredentialFile, ensure_private_dir, write_private_file
from .hubrequest import HubError, get_json, keep_tls_out

log = logging.getLogger("dlaas_hub.agent")

READY_MARKER = ".dlaas-ready"

#: While its hub is unreachable, an agent pauses at most this fraction of the life left in its files.
PAUSE_SHARE_OF_LIFE = 0.25


@dataclass
class AgentConfig:
    directory: str
    api_url: str
    api_token: str
    user: str
    server_name: str = ""
    margin: float = 300.0  # renew this long before the earliest expiry
    min_interval: float = 5.0
    max_interval: float = 1800.0
    max_backoff: float = 300.0
    # While the sign-in has expired the hub answers from what it holds, without asking the IAM: asking
    # it every minute is cheap, and the scientist who signs in again sees fresh tokens within a minute.
    sign_in_interval: float = 60.0
    make_dirs: tuple[str, ...] = ()  # created (mode 0700) before the first set is marked ready
    timeout: float = 20.0  # seconds for one request to the hub, connection included

    @classmethod
    def from_env(cls, directory: str, **overrides) -> "AgentConfig":
        needed = ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER")
        missing = [k for k in needed if not os.environ.get(k)]
        if missing:
            raise SystemExit(f"dlaas-hub token-agent: {', '.join(missing)} not set (the spawner sets them)")
        return cls(directory=directory, api_url=os.environ["JUPYTERHUB_API_URL"],
                   api_token=os.environ["JUPYTERHUB_API_TOKEN"], user=os.environ["JUPYTERHUB_USER"],
                   server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""), **overrides)

    @property
    def url(self) -> str:
        return f"{self.api_url.rstrip('/')}/dlaas/users/{quote(self.user, safe='')}/credentials"


class TokenAgent:
    """Synchronous on purpose: one request every few minutes needs no event loop, and asyncio with
    httpx would double what every user pod holds for it (``benchmarks/token_agent.py``)."""

    def __init__(self, config: AgentConfig):
        self.config = config
        self.retry_after: float | None = None  # what the hub's last 429 asked for
        self.expires_at: int | None = None  # earliest expiry of the files in place
        self.stopping = threading.Event()
        self.failures = 0
        self.written: dict[str, str] = {}
        self.rounds = 0
        self.dirs_missing = list(config.make_dirs)
        self.expired = False  # the hub said the user must sign in again
        self.state: dict | None = None  # the data lake's state, as last recorded

    def fetch(self) -> tuple[list[CredentialFile], int | None]:
        files, expires_at, _ = self.fetch_with_status()
        return files, expires_at

    def fetch_with_status(self) -> tuple[list[CredentialFile], int | None, dict | None]:
        document = get_json(self.config.url, params={"server": self.config.server_name},
                                 headers={"Authorization": f"token {self.config.api_token}"},
                                 timeout=self.config.timeout)
        files = [CredentialFile.from_json(f) for f in document.get("files", [])]
        for target, why in (document.get("missing") or {}).items():
            log.warning("No %s token for this server: %s", target, why)
        expires_at = document.get("expires_at")
        status = document.get("status")
        return files, expires_at if isinstance(expires_at, int) else None, status if isinstance(status, dict) else None

    def record(self, state: dict) -> None:
        """Write the data lake's state for JupyterLab's status bar (no token in it); never fails a round."""
        self.state = state
        try:
            ensure_private_dir(self.config.directory)
            write_private_file(self.config.directory, lakestate.STATE_FILE, json.dumps(state))
        except (CredentialError, OSError) as e:
            log.warning("Could not write %s (%s)", lakestate.STATE_FILE, e.strerror if isinstance(e, OSError) else e)

    def write(self, files: list[CredentialFile]) -> int:
        """Write the files whose content changed; returns how many were written."""
        ensure_private_dir(self.config.directory)
        changed = 0
        for f in files:
            if self.written.get(f.name) == f.content and os.path.exists(os.path.join(self.config.directory, f.name)):
                continue
            write_private_file(self.config.directory, f.name, f.content)
            self.written[f.name] = f.content
            changed += 1
        self.make_dirs()
        marker = os.path.join(self.config.directory, READY_MARKER)
        if not os.path.exists(marker):
            # Tells the sidecar's startup probe that the first set is in place.
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
        return changed

    def make_dirs(self) -> None:
        """Create the user's directories (their scratch space) once the tokens are in place.

        The agent runs as the user, before the notebook starts, and after the EOS token is
        written, so that a FUSE-mounted data lake sees the user's own token. A directory that
        cannot be made is logged and retried next round: the server still gets its tokens.
        """
        for path in list(self.dirs_missing):
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as e:
                log.warning("Could not create %s (%s); retrying next round", path, e.strerror or type(e).__name__)
                continue
            self.dirs_missing.remove(path)
            log.info("Directory %s is ready", path)

    def next_delay(self, expires_at: int | None) -> float:
        """Wake up a margin before the earliest expiry; for short-lived tokens, at 70% of what is left.

        Up to a tenth of the margin later, at random: the servers of a workshop that signed in together
        then ask the hub over half a minute rather than in the same second.
        """
        if expires_at is None:
            return self.config.max_interval
        remaining = expires_at - time.time()
        margin = min(self.config.margin, 0.3 * max(remaining, 0))
        delay = remaining - margin + random.uniform(0, 0.1 * margin)
        return min(max(delay, self.config.min_interval), self.config.max_interval)

    def backoff(self) -> float:
        """The pause after a failed round: doubling with each failure up to ``max_backoff``, jittered,
        but never more than a quarter of the life left in the files in place; once they have
        expired, between one and two ``min_interval``: a hub back from a restart renews them at once.
        """
        low = self.config.min_interval
        ceiling = min(self.config.max_backoff, low * 2 ** min(self.failures, 10))
        if self.expires_at is not None:
            left = self.expires_at - time.time()
            ceiling = min(ceiling, 2 * low if left <= 0 else max(low, PAUSE_SHARE_OF_LIFE * left))
        return random.uniform(low, max(low, ceiling))

    def run_once(self) -> float:
        """One round: fetch and write. Returns how long to sleep before the next round."""
        self.rounds += 1
        self.retry_after = None
        try:
            files, expires_at, status = self.fetch_with_status()
            changed = self.write(files)
        except HubError as e:
            self.retry_after = e.retry_after
            if e.status == 401:
                self.record(lakestate.after_sign_in_expired(self.state, time.time()))
                return self.sign_in_needed()
            if e.status == 429:
                return self.asked_to_wait()
            self.record(lakestate.after_failure(self.state, time.time(), "the hub could not renew them"
                                                if e.status else "the hub could not be reached"))
            return self.failed(e)
        except (CredentialError, OSError) as e:
            self.record(lakestate.after_failure(self.state, time.time(), "the token files could not be written"))
            return self.failed(e)
        self.record(lakestate.after_fetch(status, time.time()))
        if self.expired:
            log.info("The user signed in again: credentials are being renewed again")
            self.expired = False
        self.failures = 0
        self.expires_at = expires_at
        delay = self.next_delay(expires_at)
        log.info("Credentials up to date (%d file(s) rewritten); next check in %.0f s", changed, delay)
        return delay

    def sign_in_needed(self) -> float:
        """The hub says the user's sign-in has expired: say so once, then ask every ``sign_in_interval``
        or so (jittered: servers never in step), to pick up the new sign-in soon after it happens."""
        self.failures += 1
        delay = random.uniform(self.config.sign_in_interval / 2, self.config.sign_in_interval)
        if not self.expired:
            log.error("The hub cannot renew this server's tokens: the user's sign-in has expired and they "
                      "must sign in to the hub again. The current files stay until they expire; asking the "
                      "hub again every minute or so")
            self.expired = True
        else:
            log.info("Still waiting for the user to sign in again; next check in %.0f s", delay)
        return delay

    def asked_to_wait(self) -> float:
        """The hub refused for asking too often (429): wait as it says, a little more, at random."""
        wait = self.retry_after if self.retry_after is not None else self.backoff()
        delay = wait + random.uniform(0, 0.1 * wait + 1)
        log.warning("The hub asks this server to ask less often (429); next check in %.0f s", delay)
        return delay

    def failed(self, e: Exception) -> float:
        self.failures += 1
        delay = self.backoff()
        if isinstance(e, HubError) and e.status == 403:
            log.error("The hub refused this server's token (403): is the custom:dlaas:tokens scope granted?")
        log.warning("Could not renew credentials (%s); keeping the current files, retrying in %.0f s",
                    e if not isinstance(e, OSError) else type(e).__name__, delay)
        return delay

    def run(self) -> None:
        while not self.stopping.is_set():
            delay = self.run_once()
            self.stopping.wait(delay)
        log.info("Token agent stopped")


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s dlaas-token-agent] %(message)s")
    config = AgentConfig.from_env(args.dir, margin=args.margin, min_interval=args.min_interval,
                                  make_dirs=tuple(args.make_dir or ()))
    if not config.api_url.startswith("https:"):
        keep_tls_out()
    agent = TokenAgent(config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stopping.set())
    if args.once:
        agent.run_once()
        return 0 if agent.failures == 0 else 1
    agent.run()
    return 0
