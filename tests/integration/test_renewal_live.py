"""Tokens that stay fresh with no user action: short-lived IAM tokens, a real hub, the local spawner
and its token agent. Prints the observed renewal timeline."""

import os
import time
from urllib.parse import urljoin

import httpx
import jwt
import pytest

from .conftest import browser_login
from .eos import eos_file_owner
from .test_spawn import start, stop

pytestmark = pytest.mark.integration

EXCHANGE_TTL = 20
DEV_IAM_ARGS = [f"--exchange-token-ttl={EXCHANGE_TTL}", "--access-token-ttl=30", "--rotate-refresh-tokens"]
HUB_OVERRIDES = {
    "DLaaSAuthenticator.refresh_margin": 10,
    "DLaaSAuthenticator.refresh_backoff": 2,
    "DLaaSAuthenticator.auth_refresh_age": 5,
    "DLaaSLocalSpawner.token_agent_margin": 6,
}


def read_tokens(directory):
    """Both token files, as a reader would see them; any missing, empty or partial file fails."""
    eos = open(os.path.join(directory, "eos-token")).read()
    rucio = open(os.path.join(directory, "rucio-token")).read()
    prefix, token, resource = eos.split(":", 2)
    assert prefix == "oauth2" and resource.endswith("/me"), "malformed EOS token file"
    exps = []
    for t in (token, rucio):
        claims = jwt.decode(t, options={"verify_signature": False})  # raises on a partial token
        exps.append(claims["exp"])
    return exps


def watch(directory, seconds, timeline, label):
    """Poll the files for ``seconds``, recording every new pair of expiries."""
    deadline = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < deadline:
        eos_exp, rucio_exp = read_tokens(directory)
        reads += 1
        if not timeline or timeline[-1][1:3] != (eos_exp, rucio_exp):
            timeline.append((round(time.monotonic(), 1), eos_exp, rucio_exp, label))
        time.sleep(0.05)
    return reads


def expiries(rows, column):
    """The expiries one file went through, in order. The agent replaces the files one after the
    other, so a read between the two renames sees one file renewed and the other not yet."""
    values = [row[column] for row in rows]
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def test_tokens_renewed_without_user_action_and_through_an_outage(hub, capsys):
    maria, callback = browser_login(hub, "MariaSKA")
    assert callback.status_code == 302
    start(hub, "mariaska", "minimal")
    directory = os.path.join(hub.workdir, "credentials", "mariaska", "default")
    t0 = time.monotonic()
    timeline = []

    reads = watch(directory, 50, timeline, "running")
    running = [row for row in timeline if row[3] == "running"]
    for column, name in ((1, "eos"), (2, "rucio")):
        exps = expiries(running, column)
        assert len(exps) >= 4, f"expected the first {name} token and 3 renewals in 50 s, saw {running}"
        assert exps == sorted(set(exps)), f"each {name} renewal has a later exp: {exps}"

    # The IAM's token endpoint fails for a while (longer than a token's lifetime)
    control = urljoin(hub.iam_url, "_dev/control")
    httpx.post(control, json={"fail_mode": "500", "fail_paths": ["/token"]})
    try:
        outage_start = len(timeline)
        reads += watch(directory, EXCHANGE_TTL + 5, timeline, "IAM down")
        # the user stays logged in: their browser session still reaches the hub (refresh_user runs)
        home = maria.get(f"{hub.url}/hub/home", follow_redirects=False)
        assert home.status_code == 200, home.status_code
    finally:
        httpx.post(control, json={"fail_mode": "none", "fail_paths": []})
    for column in (1, 2):
        # At most the renewal that was being written when the outage began.
        assert len(expiries(timeline[outage_start - 1:], column)) <= 2, "no new tokens while the IAM is down"

    # Renewal resumes on its own once the IAM is back
    # The hub retries a failing IAM after a jittered backoff that grew with each failure of the outage
    # (refresh_backoff 2 s, doubling): up to about a minute after the IAM's return, never more.
    before = timeline[-1][1]
    deadline = time.monotonic() + 90
    while timeline[-1][1] <= before and time.monotonic() < deadline:
        reads += watch(directory, 5, timeline, "IAM back")
    assert timeline[-1][1] > before, "renewal did not resume within 90 s of the IAM's return"
    # The renewed EOS file is one EOS accepts: its resource answers the new token as her.
    assert eos_file_owner(os.path.join(directory, "eos-token"))["preferred_username"] == "MariaSKA"
    assert hub.api("GET", "/users/mariaska").json()["servers"][""]["ready"]

    with capsys.disabled():
        print(f"\nrenewal timeline ({reads} reads of both files, none missing, empty or partial):")
        for at, eos_exp, rucio_exp, label in timeline:
            print(f"  t={at - t0:6.1f}s  eos exp={eos_exp}  rucio exp={rucio_exp}  ({label})")
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    stop(hub, "mariaska")
    assert not os.path.exists(directory)  # the stopped server's token files went with it
    log = hub.log()
    for secret in (state["refresh_token"], state["access_token"], state["exchanged"]["eos"]["access_token"]):
        assert secret not in log
