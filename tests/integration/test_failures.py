"""What operators and scientists see when the IAM or the configuration is wrong, with real processes."""

import secrets
from urllib.parse import urljoin

import httpx
import pytest

from dlaas_hub.dev import devservices

from .conftest import browser_login, start_hub

pytestmark = pytest.mark.integration


def test_hub_without_crypt_key_refuses_to_start_and_says_how(tmp_path, dev_iam, client_secret):
    with pytest.raises(AssertionError) as info:
        start_hub(tmp_path, hub_port=devservices.free_port(), iam_url=dev_iam, client_secret=client_secret,
                  crypt_key="")
    log = str(info.value)
    assert "JUPYTERHUB_CRYPT_KEY is not set" in log
    assert "openssl rand -hex 32" in log


def test_hub_starts_with_iam_down_and_login_says_try_later(tmp_path, client_secret):
    dead_iam = f"http://127.0.0.1:{devservices.free_port()}/"
    hub = start_hub(tmp_path, hub_port=devservices.free_port(), iam_url=dead_iam, client_secret=client_secret)
    try:
        assert httpx.get(f"{hub.url}/hub/health").status_code == 200
        response = httpx.get(f"{hub.url}/hub/oauth_login", timeout=60)
        assert response.status_code == 503
        assert "cannot be reached right now" in response.text
        assert "warning" in hub.log().lower() or "[W" in hub.log()
    finally:
        devservices.stop(hub.proc)


def test_iam_failing_during_login_gives_readable_page(hub):
    control = urljoin(hub.iam_url, "_dev/control")
    httpx.post(control, json={"fail_mode": "500", "fail_paths": ["/token"]})
    try:
        _, callback = browser_login(hub, "alice")
    finally:
        httpx.post(control, json={"fail_mode": "none", "fail_paths": []})
    assert callback.status_code == 503
    assert "cannot be reached right now" in callback.text
    # and the same user logs in fine once the IAM is back
    _, callback = browser_login(hub, "alice")
    assert callback.status_code == 302


def test_required_exchange_refused_gives_page_naming_target(tmp_path, dev_iam, client_secret, ports):
    # The development IAM refuses scopes outside the storage and OIDC ones, as IAM refuses scopes
    # a client is not allowed. The hub must reuse the redirect URI registered at the IAM.
    targets = {"eos": {"audience": "eos-eulake", "scope": "openid storage.read:/eos"},
               "rucio": {"audience": "rucio", "scope": "openid rucio:admin"}}
    hub = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=dev_iam, client_secret=client_secret,
                    exchange_targets=targets)
    try:
        _, callback = browser_login(hub, "alice")
        assert callback.status_code == 403
        assert "your &#39;rucio&#39; storage token" in callback.text or "your 'rucio' storage token" in callback.text
        assert "invalid_scope" in callback.text
        assert hub.api("GET", "/users/alice").status_code == 404
    finally:
        devservices.stop(hub.proc)


def test_a_returning_user_refused_for_a_required_exchange_keeps_the_account_and_its_tokens(
        tmp_path, dev_iam, client_secret, ports):
    # On JupyterHub 6.1+ the exchanges of a returning user finish inside JupyterHub's reconcile hook.
    key = secrets.token_hex(32)
    hub = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=dev_iam, client_secret=client_secret, crypt_key=key)
    try:
        assert browser_login(hub, "alice")[1].status_code == 302
        before = hub.api("GET", "/users/alice").json()["auth_state"]
    finally:
        devservices.stop(hub.proc)
    targets = {"eos": {"audience": "eos-eulake", "scope": "openid storage.read:/eos"},
               "rucio": {"audience": "rucio", "scope": "openid rucio:admin"}}
    hub = start_hub(tmp_path, hub_port=ports["hub2"], iam_url=dev_iam, client_secret=client_secret, crypt_key=key,
                    exchange_targets=targets)
    try:
        _, callback = browser_login(hub, "alice")
        assert callback.status_code == 403
        assert "storage token" in callback.text and "invalid_scope" in callback.text
        assert hub.api("GET", "/users/alice").json()["auth_state"] == before
        assert "Traceback" not in hub.log()
    finally:
        devservices.stop(hub.proc)


@pytest.mark.parametrize("overrides,named", [
    ({"DLaaSLocalSpawner.profiles_dir": "/nonexistent/profiles"}, "DLaaSLocalSpawner.profiles_dir"),
    ({"DLaaSLocalSpawner.rucio_instance": {"name": "escape"}}, "DLaaSLocalSpawner.rucio_instance"),
])
def test_spawner_misconfiguration_stops_the_hub_at_start_naming_the_setting(tmp_path, dev_iam, client_secret,
                                                                            overrides, named):
    with pytest.raises(AssertionError) as info:
        start_hub(tmp_path, hub_port=devservices.free_port(), iam_url=dev_iam, client_secret=client_secret,
                  overrides=overrides)
    assert named in str(info.value)
