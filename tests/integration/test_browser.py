"""A scientist's journey in a real browser: headless Chromium, the development IAM and the demo's hub.

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the Python
``playwright`` package (test extra), which drives it through ``executable_path``: no browser download.
Screenshots of every page go to ``test-artifacts/browser/<JupyterHub version>/`` (or $DLAAS_ARTIFACTS).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path

import httpx
import jupyterhub
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .conftest import PASSWORDS, browser_login

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DLAAS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
HUB_OVERRIDES = {"Spawner.default_url": "/lab"}
# What MariaSKA (/escape, /escape/ska) may use, in the order of profiles/.
MARIA_PROFILES = ["minimal", "root", "root-xcache", "ska-sdc1", "micromega", "agnpy", "reana"]


# Typed into a terminal of the user's server: the EOS token file's mode, rucio.cfg, the extension's config.
CHECK_FROM_INSIDE = "; ".join([
    'f="${OAUTH2_TOKEN#FILE:}"',
    'stat -c "eos %a %U" "$f"',
    'echo "rucio=$RUCIO_CONFIG"',
    'grep -c "auth_type = oidc" "$RUCIO_CONFIG"',
    "python3 -c \"import json, os; c = json.load(open(os.path.join(os.environ['JUPYTER_CONFIG_PATH'], "
    "'jupyter_server_config.json'))); i = c['RucioConfig']['instances'][0]; "
    "print('rucio-ext', i['mode'], i['oidc_auth'])\"",
])


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing: pip install -e '.[test]'"
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DLAAS_CHROMIUM)"
    return None


def artifacts_dir(journey: str) -> Path:
    """An empty folder for a journey's screenshots: test-artifacts/<journey>/jupyterhub-<version>/
    (or under $DLAAS_ARTIFACTS)."""
    base = Path(os.environ.get("DLAAS_ARTIFACTS", ROOT / "test-artifacts"))
    directory = base / journey / f"jupyterhub-{jupyterhub.__version__}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


@pytest.fixture(scope="module")
def artifacts() -> Path:
    return artifacts_dir("browser")


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("DLAAS_REQUIRE_BROWSER"):
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


class Journey:
    def __init__(self, page, artifacts: Path):
        self.page = page
        self.artifacts = artifacts
        self.shots = 0

    def shot(self, name: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self, hub, username: str) -> bool:
        """Sign in from the hub's login page; whether the IAM asked for the password."""
        page = self.page
        page.goto(f"{hub.url}/hub/login")
        page.locator("a", has_text="Sign in with").click()
        page.wait_for_load_state("networkidle")
        asked = page.url.startswith(hub.iam_url) and page.locator("input[name=password]").count() > 0
        if asked:
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", PASSWORDS[username])
            self.shot(f"iam-form-{username.lower()}")
            page.locator("form [type=submit], form button").first.click()
        page.wait_for_load_state("networkidle")
        return asked

    def start_lab(self, profile: str = "minimal") -> None:
        """On the Server Options page: pick ``profile``, start, and wait for JupyterLab."""
        page = self.page
        page.wait_for_url(re.compile(r"/hub/spawn"))
        page.locator(f"input[name=profile][value={profile}]").check()
        page.locator("form#spawn_form [type=submit], #spawn_form button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"/user/[^/]+/lab"), timeout=120_000)
        page.wait_for_selector(".jp-LabShell", timeout=120_000)

    def press_sign_out(self):
        """The hub's sign-out page: its one button."""
        self.page.locator("#dlaas-sign-out").click()

    def confirm_iam_sign_out(self, hub):
        """The IAM asks whether to end its session: yes; the browser lands on the hub's login page."""
        page = self.page
        page.wait_for_url(re.compile(re.escape(hub.iam_url) + "session/end"))
        self.shot("iam-sign-out")
        page.locator("button", has_text="Yes, sign me out").click()
        page.wait_for_url(f"{hub.url}/hub/login")
        page.wait_for_load_state("networkidle")


def terminal_output(server_url: str, token: str, command: str, timeout: float = 30) -> str:
    """Run ``command`` in a Jupyter terminal of the user's server (REST and websocket, the user's token)."""
    import asyncio
    import concurrent.futures

    headers = {"Authorization": f"token {token}"}
    name = httpx.post(f"{server_url}api/terminals", headers=headers).json()["name"]

    async def run() -> str:
        ws_url = server_url.replace("http", "ws", 1) + f"terminals/websocket/{name}"
        conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
        marker = "END-OF-CHECK"
        conn.write_message(json.dumps(["stdin", f"{command}; echo {marker}\r"]))
        out = ""
        deadline = time.monotonic() + timeout
        while out.count(marker) < 2 and time.monotonic() < deadline:  # once echoed, once printed
            message = await asyncio.wait_for(conn.read_message(), timeout)
            if message is None:
                break
            kind, *rest = json.loads(message)
            if kind == "stdout":
                out += rest[0]
        conn.close()
        return out

    try:
        # Playwright's sync API runs an event loop in this thread: talk to the terminal from another.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()
    finally:
        httpx.delete(f"{server_url}api/terminals/{name}", headers=headers)


def test_scientist_journey(hub, browser, artifacts):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    journey = Journey(page, artifacts)

    page.goto(f"{hub.url}/hub/")
    assert page.locator("a", has_text="Sign in with Development IAM").is_visible()
    journey.shot("hub-login")

    journey.sign_in(hub, "MariaSKA")
    # No server yet: the hub sends her to the Server Options page.
    page.wait_for_url(re.compile(r"/hub/spawn"))
    offered = page.locator("input[name=profile]").evaluate_all("els => els.map(e => e.value)")
    assert offered == MARIA_PROFILES
    text = page.inner_text("body")
    assert "SKA SDC1" in text and "ROOT environment" in text and "GCC environment" not in text
    assert "SKA Science Data Challenge" in text or "SDC1" in text  # descriptions are shown
    journey.shot("server-options")

    page.locator("input[name=profile][value=ska-sdc1]").check()
    page.locator("form#spawn_form [type=submit], #spawn_form button[type=submit]").first.click()
    # Spawn progress, then JupyterLab.
    try:
        page.wait_for_url(re.compile(r"/hub/spawn-pending/"), timeout=10_000)
        journey.shot("spawn-progress")
    except Exception:  # a fast spawn may skip straight to the server
        pass
    page.wait_for_url(re.compile(r"/user/mariaska/lab"), timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel, .jp-LabShell", timeout=120_000)
    page.wait_for_timeout(2000)  # let the launcher render for the screenshot
    journey.shot("jupyterlab")

    # From inside the server, with the user's own token: the files, their modes, the configs.
    token = hub.api("POST", "/users/mariaska/tokens", json={"note": "journey", "scopes": ["access:servers!user"]})
    token = token.json()["token"]
    server_url = f"{hub.url}/user/mariaska/"
    out = terminal_output(server_url, token, CHECK_FROM_INSIDE)
    assert re.search(r"eos 600 \S+", out), out
    assert re.search(r"rucio=/\S+/rucio\.cfg", out) and re.search(r"^1\s*$", out, re.M), out
    assert "rucio-ext replica file" in out, out

    # The home page: stop the server from the control panel; the token page is linked.
    page.goto(f"{hub.url}/hub/home")
    assert page.locator("#dlaas-tokens-link a").count() == 1
    # The buttons work once the page's script has run (requirejs loads it after the load event):
    # a click before that does nothing, as it would for a very quick scientist.
    page.wait_for_function("() => window.require && require.defined && require.defined('home')", timeout=30_000)
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/users/mariaska/server" in r.url,
                              timeout=60_000) as stopped:
        page.locator("#stop").click()
    assert stopped.value.status in (202, 204), (stopped.value.status, stopped.value.text())
    page.wait_for_function("() => !document.querySelector('#stop') || document.querySelector('#stop')"
                           ".offsetParent === null", timeout=60_000)
    deadline = time.monotonic() + 30
    while hub.api("GET", "/users/mariaska").json()["servers"]:
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.3)
    page.reload()
    assert "Start My Server" in " ".join(page.inner_text("#start").split())
    journey.shot("home-stopped")

    page.locator("#dlaas-tokens-link a").click()
    page.wait_for_url(re.compile(r"/hub/dlaas/tokens"))
    assert page.locator("tr.dlaas-token").count() == 2
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    body = page.content()
    for secret in [state["access_token"], state["refresh_token"]] + [
            t["access_token"] for t in state["exchanged"].values()]:
        assert secret not in body
    journey.shot("tokens")

    # Sign out of the hub and of the IAM; "Sign in" again asks for the password. The home page's
    # "Logout" lands on a page with one button, which signs out.
    page.goto(f"{hub.url}/hub/home")
    page.locator("#logout").click()
    page.wait_for_url(f"{hub.url}/hub/logout")
    assert "Sign out" in page.inner_text("#dlaas-signout")
    journey.shot("sign-out-page")
    journey.press_sign_out()
    journey.confirm_iam_sign_out(hub)
    assert page.locator("a", has_text="Sign in with").is_visible()
    journey.shot("signed-out")
    assert journey.sign_in(hub, "MariaSKA"), "the IAM let the next sign-in through without a password"
    page.wait_for_url(re.compile(r"/hub/(spawn|home)"))
    assert "mariaska" in page.inner_text("body").lower()
    journey.shot("signed-in-again")
    context.close()


def wait_ready(hub, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (hub.api("GET", f"/users/{name}").json()["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline, f"{name}'s server did not start"
        time.sleep(0.3)


def test_signing_out_ends_jupyterlab_in_a_reopened_browser(hub, browser, artifacts):
    # On a shared lab machine: sign in, open JupyterLab, close and reopen the browser (its session
    # cookies die, the hub's login cookie and the server's own cookie live on), sign out from
    # JupyterLab's File menu. The next person at that browser must not get into the server.
    first = browser.new_context(viewport={"width": 1280, "height": 900})
    page = first.new_page()
    page.set_default_timeout(60_000)
    journey = Journey(page, artifacts)
    journey.shots = 50
    journey.sign_in(hub, "hubadmin")
    assert hub.api("POST", "/users/hubadmin/server", json={"profile": "minimal"}).status_code in (201, 202)
    wait_ready(hub, "hubadmin")
    lab = f"{hub.url}/user/hubadmin/lab"
    page.goto(lab)
    page.wait_for_selector(".jp-LabShell", timeout=120_000)
    state = first.storage_state()
    first.close()

    session_cookies = [c["name"] for c in state["cookies"] if c["expires"] == -1]
    assert "jupyterhub-session-id" in session_cookies
    state["cookies"] = [c for c in state["cookies"] if c["expires"] != -1]
    server_cookie = next(c for c in state["cookies"] if c["name"].startswith("jupyterhub-user-hubadmin"))
    # The cookie holds, signed but readable, the OAuth token the server checks at the hub: a copy of
    # that cookie anywhere (another browser profile, a saved session) is worth exactly that token.
    server_token = signed_cookie_value(server_cookie["value"])
    assert whoami(hub, server_token) == 200
    reopened = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=state)
    try:
        page = reopened.new_page()
        page.set_default_timeout(60_000)
        journey.page = page
        page.goto(lab)
        page.wait_for_selector(".jp-LabShell", timeout=120_000)  # the server's cookie alone lets it in
        page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
        # The hub extension's entry (JupyterLab's own "Log Out" is the server's, which redirects there too).
        page.locator('.lm-Menu-item[data-command="hub:logout"]').click()
        page.wait_for_url(f"{hub.url}/hub/logout")
        journey.shot("lab-log-out-lands-on-sign-out-page")
        journey.press_sign_out()
        journey.confirm_iam_sign_out(hub)
        journey.shot("lab-signed-out")

        page.goto(lab)
        page.wait_for_load_state("networkidle")
        assert not page.url.startswith(lab) and page.locator(".jp-LabShell").count() == 0, page.url
        assert page.url.startswith(f"{hub.url}/hub/login"), page.url
        journey.shot("lab-after-sign-out")
        contents = reopened.request.get(f"{hub.url}/user/hubadmin/api/contents", max_redirects=0)
        assert contents.status in (302, 403), contents.status
        assert hub.api("GET", "/users/hubadmin").json()["servers"][""]["ready"]  # the server itself runs on
        assert whoami(hub, server_token) == 403, "the server's cookie still names a live token"
        assert "browser session(s) of their servers ended" in hub.log()
    finally:
        reopened.close()
        hub.api("DELETE", "/users/hubadmin/server")


def signed_cookie_value(cookie: str) -> str:
    """The value inside a tornado signed cookie (version 2: ``2|key|time|name|value|signature``)."""
    field = cookie.split("|")[4]
    return base64.b64decode(field.split(":", 1)[1]).decode()


def whoami(hub, token: str) -> int:
    return httpx.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}).status_code


@pytest.fixture
def fresh_page(browser):
    """A page in a browser context of its own (no cookies from another test)."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_outsider_sees_a_readable_refusal(hub, fresh_page, artifacts):
    journey = Journey(fresh_page, artifacts)
    journey.shots = 20
    journey.sign_in(hub, "mallory")
    text = fresh_page.inner_text("body")
    assert "403 : Forbidden" in text and text.count("not in a group that may use this hub") == 1
    assert "Traceback" not in fresh_page.content()
    journey.shot("outsider-refused")
    # Someone else at the same browser: the refusal page ends mallory's IAM session first.
    fresh_page.locator("a", has_text="Sign in with another account").click()
    journey.confirm_iam_sign_out(hub)
    assert journey.sign_in(hub, "alice"), "the IAM let mallory's session through again"
    fresh_page.wait_for_url(re.compile(r"/hub/(spawn|home)"))
    assert "alice" in fresh_page.inner_text("body")
    journey.shot("another-account")


def test_tampered_form_value_is_refused_readably(hub, fresh_page, artifacts):
    page = fresh_page
    journey = Journey(page, artifacts)
    journey.shots = 30
    journey.sign_in(hub, "alice")  # /escape only: SKA SDC1 is not hers
    page.goto(f"{hub.url}/hub/spawn")
    assert "ska-sdc1" not in page.locator("input[name=profile]").evaluate_all("els => els.map(e => e.value)")
    page.locator("input[name=profile]").first.evaluate("e => { e.value = 'ska-sdc1'; e.checked = true; }")
    page.locator("form#spawn_form [type=submit], #spawn_form button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")
    text = page.inner_text("body")
    assert "Error: You may not use the profile 'ska-sdc1': it is reserved to other groups" in text
    assert "HTTP 403" not in text
    journey.shot("tampered-profile-refused")
    assert not hub.api("GET", "/users/alice").json()["servers"]


def test_screenshots_are_kept(artifacts, browser):
    shots = sorted(p.name for p in artifacts.glob("*.png"))
    assert len(shots) >= 9, shots
    for path in artifacts.glob("*.png"):
        assert path.stat().st_size > 5000 and stat.S_ISREG(path.stat().st_mode)


@pytest.mark.skipif(jupyterhub.version_info < (6,), reason="JupyterHub's admin page shows a server's profile "
                    "(user_options.profile) from 6.0 on; runs on the JupyterHub 6.1 leg")
def test_the_admin_page_shows_the_profile_each_server_runs(hub, fresh_page, artifacts):
    browser_login(hub, "alice")
    response = hub.api("POST", "/users/alice/server", json={})  # no choice: her default, recorded
    assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + 60
    while not (hub.api("GET", "/users/alice").json()["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline, "alice's server did not start"
        time.sleep(0.3)
    journey = Journey(fresh_page, artifacts)
    journey.shots = 40
    journey.sign_in(hub, "hubadmin")
    fresh_page.goto(f"{hub.url}/hub/admin")
    cell = fresh_page.locator("[data-testid=user-row-profile-used]", has_text="minimal")
    cell.first.wait_for(timeout=30_000)
    journey.shot("admin-profiles")
    hub.api("DELETE", "/users/alice/server")
