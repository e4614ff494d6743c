"""Signing out at the provider: the end-session URL, the refresh token's revocation, the settings."""

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dlaas_hub.auth.signout import end_session_url, login_url_beside
from dlaas_hub.authenticator import ConfigError

from ..fakeiam import CLIENT_ID, FakeHandler, basic_auth_header
from ..tokens.test_renewal import StoredUser
from .build import make

pytestmark = pytest.mark.usefixtures("crypt_key")


def Request():
    """A logout request: the hub's callback URL is configured, so nothing of it is read."""
    return None


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_end_session_url_carries_the_rp_initiated_logout_parameters():
    url = end_session_url("https://iam.example/logout", client_id="hub", post_logout_redirect_uri="https://hub/hub/login",
                          id_token_hint="eyJ.a.b")
    assert url.startswith("https://iam.example/logout?")
    assert query(url) == {"client_id": "hub", "post_logout_redirect_uri": "https://hub/hub/login",
                          "id_token_hint": "eyJ.a.b"}
    assert end_session_url("https://iam.example/logout?x=1", client_id="hub").endswith("?x=1&client_id=hub")


def test_the_login_page_is_beside_the_callback():
    assert login_url_beside("https://hub.example/base/hub/oauth_callback") == "https://hub.example/base/hub/login"


@pytest.fixture
async def signed_in(iam):
    auth = make()
    model = await auth.authenticate(FakeHandler())
    yield auth, StoredUser(model["name"], model["auth_state"])
    await auth.iam_client.aclose()


async def test_sign_out_revokes_the_refresh_token_and_ends_the_provider_session(iam, signed_in, caplog):
    auth, user = signed_in
    with caplog.at_level(logging.INFO):
        url = await auth.sign_out(Request(), user)
    [revoked] = iam.revocation_requests
    assert revoked["token"] == user.state["refresh_token"] and revoked["token_type_hint"] == "refresh_token"
    assert revoked["_authorization"] == basic_auth_header()
    assert url.startswith(f"{iam.base}/logout?")
    assert query(url) == {"client_id": CLIENT_ID, "id_token_hint": user.state["id_token"],
                          "post_logout_redirect_uri": "https://hub.example/hub/login"}
    assert "refresh token revoked" in caplog.text and user.state["refresh_token"] not in caplog.text


async def test_a_failed_revocation_still_signs_out(iam, signed_in, caplog):
    auth, user = signed_in
    iam.revocation.mock(return_value=httpx.Response(503))
    with caplog.at_level(logging.WARNING):
        assert await auth.sign_out(Request(), user)
    assert "could not be revoked" in caplog.text


async def test_settings_turn_each_part_off_or_point_elsewhere(iam):
    auth = make(end_provider_session=False, revoke_on_logout=False)
    model = await auth.authenticate(FakeHandler())
    assert await auth.sign_out(Request(), StoredUser(model["name"], model["auth_state"])) is None
    assert iam.revocation_requests == []
    explicit = make(end_provider_session="https://sso.example/end", post_logout_redirect_url="https://hub.example/bye")
    await explicit.resolve_endpoints()
    url = explicit.provider_logout_url(Request(), "eyJ.a.b")
    assert url.startswith("https://sso.example/end?")
    assert query(url)["post_logout_redirect_uri"] == "https://hub.example/bye"


async def test_a_provider_without_end_session_endpoint_leaves_the_hubs_own_logout(iam, signed_in):
    auth, user = signed_in
    auth._metadata.cached.pop("end_session_endpoint")
    assert await auth.sign_out(Request(), user) is None
    assert len(iam.revocation_requests) == 1


@pytest.mark.parametrize("key,value", [("end_provider_session", "iam.example/logout"),
                                       ("post_logout_redirect_url", "javascript:alert(1)")])
def test_logout_urls_must_be_http_urls(key, value):
    with pytest.raises(ConfigError, match=f"DLaaSAuthenticator.{key} must be an http"):
        make(**{key: value})
