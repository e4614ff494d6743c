"""The user's token page and its JSON twin, on a real hub: the facts, never a token."""

import httpx
import pytest

from .conftest import browser_login

pytestmark = pytest.mark.integration


def secrets_of(hub, name):
    state = hub.api("GET", f"/users/{name}").json()["auth_state"]
    return [state["access_token"], state["refresh_token"], state["id_token"]] + [
        t["access_token"] for t in state["exchanged"].values()]


def test_home_links_to_the_token_page_which_lists_targets_without_tokens(hub):
    client, callback = browser_login(hub, "MariaSKA")
    assert callback.status_code == 302
    home = client.get(f"{hub.url}/hub/home")
    assert home.status_code == 200 and 'href="/hub/dlaas/tokens"' in home.text
    assert "Start" in home.text  # JupyterHub's own home page is still there
    page = client.get(f"{hub.url}/hub/dlaas/tokens")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    for target, audience in (("eos", "eos-eulake"), ("rucio", "rucio")):
        assert f'data-target="{target}"' in page.text and audience in page.text
    assert page.text.count(">valid<") == 2
    for secret in secrets_of(hub, "mariaska"):
        assert secret not in page.text


def test_json_for_the_users_own_api_token_only(hub):
    browser_login(hub, "alice")
    token = hub.api("POST", "/users/alice/tokens", json={"note": "status"}).json()["token"]
    response = hub.api("GET", "/dlaas/tokens")  # the service's token is not a user's
    assert response.status_code == 403
    response = httpx.get(f"{hub.url}/hub/api/dlaas/tokens", headers={"Authorization": f"token {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == "alice"
    assert {t["target"]: t["state"] for t in body["tokens"]} == {"eos": "valid", "rucio": "valid"}
    assert all(t["expires_at"] and t["last_renewal"] and t["last_error"] is None for t in body["tokens"])
    for secret in secrets_of(hub, "alice"):
        assert secret not in response.text


def test_signed_out_visitors_are_sent_to_log_in(hub):
    response = httpx.get(f"{hub.url}/hub/dlaas/tokens", follow_redirects=False)
    assert response.status_code == 302 and "/hub/login" in response.headers["location"]


def test_metrics_are_scraped_from_the_hubs_own_registry(hub):
    browser_login(hub, "alice")
    browser_login(hub, "mallory")
    response = hub.api("GET", "/../metrics")
    assert response.status_code == 200
    text = response.text
    assert "jupyterhub_" in text  # JupyterHub's own registry
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line.startswith("dlaas_")}
    assert samples['dlaas_logins_total{outcome="accepted"}'] >= 1
    assert samples['dlaas_logins_total{outcome="not_in_group"}'] >= 1
    assert samples['dlaas_token_requests_total{kind="exchange",outcome="ok",target="eos"}'] >= 1
    assert samples['dlaas_token_request_duration_seconds_count{kind="exchange",target="rucio"}'] >= 1
    for name in ("alice", "mallory", "mariaska"):
        assert name not in "".join(samples)
    (hub.workdir / "metrics-scrape.txt").write_text("\n".join(line for line in text.splitlines() if "dlaas_" in line))


def test_sign_in_again_goes_through_the_iam_and_back_to_next(hub):
    # A signed-in browser: the hub's own login page would send it straight on to `next`; this link
    # signs in anew at the IAM (whose session answers without the form here) and then goes there.
    client, _ = browser_login(hub, "MariaSKA")
    before = hub.api("GET", "/users/mariaska").json()["auth_state"]["refresh_token"]
    first = client.get(f"{hub.url}/hub/dlaas/sign-in-again", params={"next": "/hub/dlaas/tokens"})
    assert first.status_code == 302
    assert first.headers["location"] == "/hub/oauth_login?next=%2Fhub%2Fdlaas%2Ftokens"
    landed = client.get(f"{hub.url}/hub/dlaas/sign-in-again", params={"next": "/hub/dlaas/tokens"},
                        follow_redirects=True)
    assert landed.status_code == 200 and landed.url.path == "/hub/dlaas/tokens"
    assert any(str(r.url).startswith(hub.iam_url) for r in landed.history)  # through the IAM, really
    assert hub.api("GET", "/users/mariaska").json()["auth_state"]["refresh_token"] != before  # a new sign-in


def test_sign_in_again_never_leaves_for_another_site(hub):
    client, _ = browser_login(hub, "alice")
    answer = client.get(f"{hub.url}/hub/dlaas/sign-in-again", params={"next": "https://evil.example/x"})
    assert answer.status_code == 302 and "evil.example" not in answer.headers["location"]
