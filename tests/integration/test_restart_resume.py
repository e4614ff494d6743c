"""Renewals resume as soon as the hub is back: eight servers' token agents, a hub killed (SIGKILL) for
30 s while their 20 s tokens expire, and every server's files fresh again within 15 s of its return.

A token agent backs off while the hub is away, but its pause never outgrows a share of the life
left in its files, and once they have expired it asks every few seconds: none is left waiting out
a doubled backoff of a minute while its files are stale.
"""

import os
import signal
import time

import pytest

from .conftest import browser_login
from .test_renewal_live import read_tokens
from .test_restart import restart

pytestmark = pytest.mark.integration

DEV_IAM_ARGS = ["--exchange-token-ttl=20", "--access-token-ttl=20"]
HUB_OVERRIDES = {
    "DLaaSAuthenticator.refresh_margin": 10,
    "DLaaSAuthenticator.refresh_backoff": 2,
    "DLaaSLocalSpawner.token_agent_margin": 6,
}
LOGINS = {"alice": "alice", "MariaSKA": "mariaska", "hubadmin": "hubadmin"}
# Eight servers: each user's default and named ones (the demo allows three named servers a user).
SERVERS = {"alice": ["", "a1", "a2"], "mariaska": ["", "m1", "m2"], "hubadmin": ["", "h1"]}
OUTAGE = 30
RESUMED_WITHIN = 15


def wait_all_ready(hub, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = {user: hub.api("GET", f"/users/{user}").json()["servers"] for user in SERVERS}
        if all((models[user].get(name) or {}).get("ready") for user, names in SERVERS.items() for name in names):
            return
        time.sleep(0.5)
    raise AssertionError(f"not every server started\n{hub.log()[-4000:]}")


def directory(hub, user, name):
    return os.path.join(hub.workdir, "credentials", user, f"named-{name}" if name else "default")


def earliest_expiry(path) -> float:
    try:
        return min(read_tokens(path))
    except (OSError, ValueError):
        return 0.0  # being replaced: read again


def test_every_servers_files_are_fresh_within_seconds_of_the_hubs_return(hub):
    for login in LOGINS:
        assert browser_login(hub, login)[1].status_code == 302
    for user, names in SERVERS.items():
        for name in names:
            path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
            response = hub.api("POST", path, json={"profile": "minimal"})
            assert response.status_code in (201, 202), response.text
    wait_all_ready(hub)
    paths = [directory(hub, user, name) for user, names in SERVERS.items() for name in names]
    assert len(paths) == 8

    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait()
    killed_at = time.time()
    time.sleep(OUTAGE)
    assert all(earliest_expiry(p) < time.time() for p in paths), "the files should have expired in the outage"

    again = restart(hub)
    hub.proc = again.proc  # the module's fixture stops this one
    returned = time.time()
    try:
        fresh_at = {}
        while len(fresh_at) < len(paths) and time.time() < returned + RESUMED_WITHIN + 30:
            for path in paths:
                if path not in fresh_at and earliest_expiry(path) > time.time() + 5:
                    fresh_at[path] = time.time() - returned
            time.sleep(0.2)
        waits = sorted(round(t, 1) for t in fresh_at.values())
        print(f"\nhub away {returned - killed_at:.1f} s; files fresh after its return, in s: {waits}")
        stale = [p for p in paths if p not in fresh_at]
        assert not stale, f"files never renewed after the hub's return: {stale}"
        assert max(fresh_at.values()) <= RESUMED_WITHIN, f"renewed too late after the hub's return: {waits}"
    finally:
        for user, names in SERVERS.items():
            for name in names:
                again.api("DELETE", f"/users/{user}/servers/{name}" if name else f"/users/{user}/server")
