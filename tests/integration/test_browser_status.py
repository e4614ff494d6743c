"""The data lake's state in JupyterLab's status bar, in Chromium, in the servers' own environment (the
demo's): fresh, renewal failing while the IAM is down, back, the sign-in expired (with a notification
whose one link signs in again and comes back to the lab), and fresh again. Never a token on the page.
Screenshots go to ``test-artifacts/browser-status/<JupyterHub version>/``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from . import rucio_fixtures, test_browser
from .conftest import process_environments, require_singleuser
from .test_browser import Journey
from .test_rucio_extension import SINGLEUSER_COMMAND  # noqa: F401 - read by the hub fixture

pytestmark = pytest.mark.integration
rucio, hub, browser = rucio_fixtures.rucio, rucio_fixtures.hub, test_browser.browser
# Short tokens, so that renewals, an outage and an expired sign-in show within minutes.
TOKEN_TTL = 90
DEV_IAM_ARGS = [f"--exchange-token-ttl={TOKEN_TTL}", f"--access-token-ttl={TOKEN_TTL}"]
HUB_OVERRIDES = {"Spawner.default_url": "/lab"}
ITEM = "#dlaas-datalake-status"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    return test_browser.artifacts_dir("browser-status")


def hhmm(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))  # the browser runs in UTC (timezone_id below)


def iam_control(hub, **change) -> dict:
    answer = httpx.post(urljoin(hub.iam_url, "_dev/control"), json=change, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_level(page, level: str, timeout: float):
    page.wait_for_selector(f"{ITEM}[data-level={level}]", timeout=timeout * 1000)
    return page.locator(ITEM)


def lake_state(page) -> dict:
    """What the status item reads, fetched as the page does (with the server's cookie)."""
    state = page.evaluate("""async () => {
        const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || '';
        const answer = await fetch('/user/mariaska/dlaas/state', {cache: 'no-store', headers: {'X-XSRFToken': xsrf}});
        return {status: answer.status, body: await answer.text()};
    }""")
    assert state["status"] == 200, state
    return json.loads(state["body"])


def server_tokens(hub) -> list[str]:
    """The tokens in MariaSKA's server's files (read through its process environment). Only this hub's
    server: another hub (the other JupyterHub's tests, run alongside) may have a mariaska too."""
    for _, env in process_environments():
        token_file = env.get("DLAAS_EOS_TOKEN_FILE", "")
        if env.get("JUPYTERHUB_USER") == "mariaska" and token_file.startswith(f"{hub.workdir}/"):
            directory = Path(token_file).parent
            return [(directory / name).read_text().strip() for name in ("eos-bearer-token", "rucio-token")]
    raise AssertionError("no server process for mariaska")


def assert_no_token(page, tokens: list[str]) -> None:
    html, state = page.content(), str(lake_state(page))
    for token in tokens:
        assert token not in html and token not in state
        assert token.split(".")[2] not in html  # not even a token's signature
    assert "eyJ" not in state  # no JWT at all in what the item reads


def test_the_status_bar_shows_the_data_lakes_state_and_the_way_back_after_an_expired_sign_in(
        hub, browser, artifacts):
    require_singleuser()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the browser fixture checked it is there

    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC", locale="en-US")
    page = context.new_page()
    journey = Journey(page, artifacts)
    try:
        journey.sign_in(hub, "MariaSKA")
        journey.start_lab()

        # JupyterLab's own question (news from jupyterlab.github.io): answered as a scientist would.
        news = page.locator(".Toastify__toast", has_text="official Jupyter news")
        try:
            news.get_by_role("button", name="No", exact=True).click(timeout=10_000)
        except PlaywrightTimeout:
            pass

        # Fresh: which tokens, and until when (the earliest expiry of those in place).
        item = wait_for_level(page, "ok", 60)
        tokens = lake_state(page)["tokens"]
        assert [t["target"] for t in tokens] == ["eos", "rucio"]
        text = item.inner_text()
        assert re.fullmatch(r"Data lake: EOS and Rucio fresh until \d\d:\d\d", text), text
        until = min(t["expires_at"] for t in lake_state(page)["tokens"])
        assert text.endswith(hhmm(until)) or text.endswith(hhmm(until - TOKEN_TTL))  # or renewed since
        journey.shot("status-fresh")
        assert_no_token(page, server_tokens(hub))

        # The IAM fails: the hub cannot renew; the item says since when, and that it keeps trying.
        iam_control(hub, fail_mode="500", fail_paths=["/token"])
        outage = time.time()
        try:
            item = wait_for_level(page, "warning", TOKEN_TTL + 90)
            text = item.inner_text()
            assert re.fullmatch(r"Data lake: renewal failing since \d\d:\d\d", text), text
            since = lake_state(page)["since"]
            assert outage - 5 <= since <= time.time() and text.endswith(hhmm(since))
            assert "keeps trying" in item.get_attribute("title")
            journey.shot("status-renewal-failing")
        finally:
            iam_control(hub, fail_mode="none", fail_paths=[])
        item = wait_for_level(page, "ok", 120)  # back once the IAM is
        assert "fresh until" in item.inner_text()

        # The sign-in expires (the IAM forgets her refresh token): the item and a notification say so,
        # with one way back; the tokens in place are never shown.
        assert iam_control(hub, end_sign_ins_of="MariaSKA")["refresh_tokens_ended"] >= 1
        item = wait_for_level(page, "error", TOKEN_TTL + 120)
        assert item.inner_text() == "Data lake: sign-in expired"
        notice = page.locator(".Toastify__toast", has_text="Your sign-in has expired")
        notice.wait_for(timeout=30_000)
        page.wait_for_function(  # slid in whole (the toast arrives from the right)
            "() => [...document.querySelectorAll('.Toastify__toast')].every(t => "
            "t.getBoundingClientRect().right <= window.innerWidth)", timeout=10_000)
        said = notice.inner_text()
        assert "EOS and Rucio tokens are no longer renewed" in said and "…" not in said  # whole, not cut
        # One action (beside the toast's own close button): signing in again.
        assert [text for text in notice.locator("button").all_inner_texts() if text.strip()] == ["Sign in again"]
        journey.shot("sign-in-expired-notification")
        assert_no_token(page, server_tokens(hub))

        # Its link: the hub's sign-in, the IAM, and back in JupyterLab, where the item turns fresh.
        # (The hub's login page would not do: JupyterHub rechecks a sign-in only every few minutes, and
        # sends a browser with its cookie straight back to the lab.)
        visited = []
        page.on("request", lambda request: visited.append(request.url) if request.is_navigation_request() else None)
        notice.get_by_role("button", name="Sign in again").click()
        page.wait_for_load_state("networkidle")
        if page.url.startswith(hub.iam_url) and page.locator("input[name=password]").count():
            page.fill("input[name=username]", "MariaSKA")
            page.fill("input[name=password]", test_browser.PASSWORDS["MariaSKA"])
            page.locator("form [type=submit], form button").first.click()
        page.wait_for_url(re.compile(r"/user/mariaska/lab"), timeout=60_000)
        page.wait_for_selector(".jp-LabShell", timeout=120_000)
        assert f"{hub.url}/hub/dlaas/sign-in-again?next=%2Fuser%2Fmariaska%2Flab" in visited
        assert any(url.startswith(hub.iam_url) for url in visited)  # signed in again at the IAM
        item = wait_for_level(page, "ok", 150)  # the agent asks about once a minute, the page every 20 s
        assert re.fullmatch(r"Data lake: EOS and Rucio fresh until \d\d:\d\d", item.inner_text())
        journey.shot("status-fresh-after-signing-in-again")
        assert_no_token(page, server_tokens(hub))
    finally:
        context.close()
