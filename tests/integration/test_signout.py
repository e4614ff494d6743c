"""Signing out of the hub signs out of the IAM: RP-initiated logout, refresh token revoked, and a
refused user may sign in with another account; against the development IAM and a real hub."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from dlaas_hub.dev import devservices

from .conftest import CLIENT_ID, PASSWORDS, browser_login

pytestmark = pytest.mark.integration


def follow(client: httpx.Client, response: httpx.Response, *, until: str | None = None) -> httpx.Response:
    """Follow redirects by hand (the client does not), stopping before a URL starting with ``until``."""
    for _ in range(20):
        if response.status_code not in (301, 302, 303, 307):
            return response
        target = urljoin(str(response.url), response.headers["location"])
        if until and target.startswith(until):
            return response
        response = client.get(target)
    raise AssertionError("too many redirects")


def confirm_iam_sign_out(client: httpx.Client, page: httpx.Response) -> httpx.Response:
    """Press "Yes, sign me out" on the IAM's confirmation page."""
    assert "Sign out of the development IAM" in page.text, page.text
    form = re.search(r'<form[^>]*id="op.logoutForm"[^>]*>(.*?)</form>', page.text, re.S)
    action = re.search(r'action="([^"]+)"', form.group(0)).group(1)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(1)))
    return client.post(urljoin(str(page.url), action), data={**fields, "logout": "yes"})


def press_sign_out(client: httpx.Client, hub) -> httpx.Response:
    """Open the hub's sign-out page (the home page's "Logout") and press its one button."""
    page = client.get(f"{hub.url}/hub/logout")
    assert page.status_code == 200, page.text
    form = re.search(r'<form[^>]*id="dlaas-signout-form"[^>]*>(.*?)</form>', page.text, re.S)
    action = re.search(r'action="([^"]+)"', form.group(0)).group(1)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(1)))
    assert set(fields) == {"_xsrf"} and fields["_xsrf"]
    return client.post(urljoin(str(page.url), action), data=fields)


def start_sign_in(client: httpx.Client, hub) -> httpx.Response:
    """Click "Sign in": follow the redirects until the IAM asks something or the hub's callback is reached."""
    return follow(client, client.get(f"{hub.url}/hub/oauth_login"), until=f"{hub.url}/hub/oauth_callback")


def refresh_grant(hub, client_secret: str, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{hub.iam_url}token", auth=(CLIENT_ID, client_secret),
                      data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_a_signed_in_browser_goes_through_the_iam_session_without_a_password(hub):
    # What the sign-out must undo: the IAM's single sign-on session.
    client, callback = browser_login(hub, "alice")
    assert callback.status_code == 302
    step = start_sign_in(client, hub)
    assert step.status_code in (302, 303) and step.headers["location"].startswith(f"{hub.url}/hub/oauth_callback")


def test_sign_out_ends_the_iam_session_and_revokes_the_refresh_token(hub, client_secret):
    client, callback = browser_login(hub, "MariaSKA")
    assert callback.status_code == 302
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    assert refresh_grant(hub, client_secret, state["refresh_token"]).status_code == 200  # live before

    logout = press_sign_out(client, hub)
    assert logout.status_code == 302
    target = urlsplit(logout.headers["location"])
    assert f"{target.scheme}://{target.netloc}/" == hub.iam_url and target.path == "/session/end"
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert params["client_id"] == CLIENT_ID
    assert params["post_logout_redirect_uri"] == f"{hub.url}/hub/login"
    assert params["id_token_hint"] == state["id_token"]

    back = confirm_iam_sign_out(client, client.get(logout.headers["location"]))
    assert back.status_code in (302, 303) and back.headers["location"] == f"{hub.url}/hub/login"

    refused = refresh_grant(hub, client_secret, state["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"

    # "Sign in" again: the IAM asks for the password.
    step = start_sign_in(client, hub)
    assert step.status_code == 200 and 'type="password"' in step.text
    log = hub.log()
    assert "Sign-out of mariaska: refresh token revoked at the provider" in log
    assert "POST /hub/logout -> " in log and "id_token_hint=[secret]" in log
    header, payload, signature = state["id_token"].split(".")
    assert payload[:24] not in log and signature[:24] not in log and state["refresh_token"] not in log


def test_a_refused_user_may_sign_in_with_another_account(hub):
    client, callback = browser_login(hub, "mallory")
    assert callback.status_code == 403
    link = re.search(r'<a[^>]*id="dlaas-switch-account"[^>]*href="([^"]+)"', callback.text)
    assert link and "Sign in with another account" in callback.text
    end = client.get(urljoin(f"{hub.url}/", link.group(1)))
    assert end.status_code == 302 and end.headers["location"].startswith(f"{hub.iam_url}session/end?")
    back = confirm_iam_sign_out(client, client.get(end.headers["location"]))
    assert back.headers["location"] == f"{hub.url}/hub/login"
    step = start_sign_in(client, hub)
    assert step.status_code == 200 and 'type="password"' in step.text  # not mallory's session again
    action = re.search(r'action="([^"]+)"', step.text).group(1)
    answer = follow(client, client.post(urljoin(str(step.url), action),
                                        data={"username": "alice", "password": PASSWORDS["alice"]}),
                    until=f"{hub.url}/hub/oauth_callback")
    callback = client.get(urljoin(str(answer.url), answer.headers["location"]))
    assert callback.status_code == 302, callback.text
    assert client.get(f"{hub.url}/hub/api/user").json()["name"] == "alice"


def test_reloading_a_used_callback_says_sign_in_again(hub):
    client, callback_url = devservices.login_until_callback(hub.url, hub.iam_url, "mallory", PASSWORDS["mallory"])
    assert client.get(callback_url).status_code == 403
    again = client.get(callback_url)
    assert again.status_code == 400
    assert "This sign-in page has expired" in again.text and "OAuth state" not in again.text
    assert 'href="/hub/login"' in again.text and "Sign in with another account" in again.text
