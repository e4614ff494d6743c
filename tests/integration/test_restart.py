"""A hub killed (SIGKILL) in the middle of a renewal storm, and started again: nothing is lost.

Three users with running servers (the local spawner, real token agents), short-lived tokens and an
IAM that rotates refresh tokens and answers slowly, so that the hub dies with a refresh at the IAM.
After the restart: every account, server and credential file is still there; each user either has
fresh tokens again or, when the refresh answer died with the hub (its rotated refresh token lost),
is in a clear "sign in again" state that the agent reports; the IAM is not asked again for them.
"""

import json
import os
import signal
import time
from urllib.parse import urljoin

import httpx
import pytest

from dlaas_hub.dev import devservices

from .conftest import Hub, browser_login
from .test_renewal_live import read_tokens
from .test_spawn import start

pytestmark = pytest.mark.integration

# Equal lifetimes: every renewal starts with a refresh, whose rotated token a killed hub loses.
DEV_IAM_ARGS = ["--exchange-token-ttl=20", "--access-token-ttl=20", "--rotate-refresh-tokens"]
HUB_OVERRIDES = {
    "DLaaSAuthenticator.refresh_margin": 10,
    "DLaaSAuthenticator.refresh_backoff": 2,
    "DLaaSLocalSpawner.token_agent_margin": 6,
}
USERS = {"alice": "alice", "MariaSKA": "mariaska", "hubadmin": "hubadmin"}


def restart(hub: Hub) -> Hub:
    """The same hub again: same database, keys, ports and settings."""
    settings = json.loads((hub.workdir / "settings.json").read_text())
    proc, log_path = devservices.start_hub(hub.workdir, hub.workdir / "jupyterhub_config.py", settings,
                                           env={"DLAAS_TEST_SERVICE_TOKEN": hub.service_token},
                                           unset=("JUPYTERHUB_CRYPT_KEY",))
    return Hub(hub.url, proc, log_path, hub.service_token, hub.iam_url, hub.workdir)


def iam_stats(hub) -> dict:
    return httpx.get(urljoin(hub.iam_url, "_dev/control")).json()["stats"]


def test_a_hub_killed_during_a_renewal_storm_loses_nothing(hub):
    for login in USERS:
        assert browser_login(hub, login)[1].status_code == 302
    for name in USERS.values():
        assert start(hub, name, "minimal")["ready"]
    directories = {name: os.path.join(hub.workdir, "credentials", name, "default") for name in USERS.values()}
    control = urljoin(hub.iam_url, "_dev/control")

    # Slow answers from the IAM. The hub dies after the IAM has answered a refresh (and rotated the
    # refresh token) while that renewal's exchanges are still at the IAM: its answer is never saved.
    refreshed = iam_stats(hub)["grants"].get("refresh_token", 0)
    httpx.post(control, json={"delay_ms": 1500})
    deadline = time.monotonic() + 40
    while iam_stats(hub)["grants"].get("refresh_token", 0) == refreshed:
        assert time.monotonic() < deadline, "no renewal reached the IAM"
        time.sleep(0.02)
    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait()
    killed_at = time.time()
    time.sleep(2)  # the IAM answers into the void (and rotates the refresh token)
    httpx.post(control, json={"delay_ms": 0})

    again = restart(hub)
    hub.proc = again.proc  # the module's fixture stops this one
    try:
        # Two token lifetimes: every user's agent has come back to the hub by then.
        time.sleep(45)
        errors_then = iam_stats(hub)["grantErrors"].get("refresh_token", 0)
        expired, fresh = [], []
        for name, directory in directories.items():
            model = again.api("GET", f"/users/{name}").json()
            assert model["servers"][""]["ready"], f"{name}'s server did not survive the restart"
            assert model["auth_state"], f"{name} lost their sign-in"
            eos_exp, rucio_exp = read_tokens(directory)  # files still complete
            if model["auth_state"].get("login_expired"):
                expired.append(name)
            else:
                assert min(eos_exp, rucio_exp) > killed_at + 5, f"{name}'s tokens were not renewed after the restart"
                fresh.append(name)
        assert expired, "the refresh in flight when the hub died should have been lost with it"
        assert errors_then <= len(expired), f"a lost refresh was retried against the IAM: {iam_stats(hub)}"
        time.sleep(10)
        assert iam_stats(hub)["grantErrors"].get("refresh_token", 0) == errors_then, "nothing loops"
        log = again.log()
        assert "must sign in to the hub again" in log  # the agent said so
        assert "refused the refresh token" in log  # and the hub, with the reason
        print(f"\nafter the restart: fresh tokens for {fresh}, sign in again needed for {expired}")
    finally:
        for name in USERS.values():
            again.api("DELETE", f"/users/{name}/server")
