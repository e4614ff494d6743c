"""The replay of another user's genuine id_token, through a tampering proxy in front of the
development IAM's token and userinfo endpoints, is refused by a real hub."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest

from dlaas_hub.dev import devservices

from .conftest import browser_login, start_hub

pytestmark = pytest.mark.integration


class TamperingProxy:
    """Forwards POST /token and GET /userinfo to the IAM; may swap parts of their answers.

    ``id_token``: put in every code-exchange answer instead of the provider's; ``userinfo``: the
    answer given to every userinfo request.
    """

    def __init__(self, iam_url: str):
        self.iam_url = iam_url.rstrip("/")
        self.id_token: str | None = None
        self.userinfo: dict | None = None
        self.swapped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = httpx.post(f"{proxy.iam_url}/token", content=body, timeout=30, headers={
                    k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")})
                content = answer.content
                if answer.status_code == 200 and b"authorization_code" in body and proxy.id_token:
                    content = json.dumps({**answer.json(), "id_token": proxy.id_token}).encode()
                    proxy.swapped += 1
                self._answer(answer.status_code, content)

            def do_GET(self):
                if proxy.userinfo is not None:
                    proxy.swapped += 1
                    return self._answer(200, json.dumps(proxy.userinfo).encode())
                answer = httpx.get(f"{proxy.iam_url}/me", timeout=30,
                                   headers={"Authorization": self.headers.get("Authorization", "")})
                self._answer(answer.status_code, answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", devservices.free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxy(dev_iam):
    p = TamperingProxy(dev_iam)
    yield p
    p.close()


@pytest.fixture(scope="module", params=["when_claims_missing", "always"])
def tampered_hub(request, dev_iam, ports, client_secret, tmp_path_factory, proxy):
    """A hub whose token and userinfo requests pass through the proxy, asking userinfo as configured."""
    port = ports["hub"] if request.param == "when_claims_missing" else ports["hub2"]
    hub = start_hub(tmp_path_factory.mktemp("hub"), hub_port=port, iam_url=dev_iam, client_secret=client_secret,
                    overrides={"DLaaSAuthenticator.token_url": f"{proxy.url}/token",
                               "DLaaSAuthenticator.userdata_url": f"{proxy.url}/me",
                               "DLaaSAuthenticator.fetch_userinfo": request.param})
    hub.fetch_userinfo = request.param
    yield hub
    devservices.stop(hub.proc)


@pytest.fixture
def victim(tampered_hub, proxy):
    """alice has signed in; the attacker holds her genuine, unexpired id_token."""
    proxy.id_token, proxy.userinfo = None, None
    _, callback = browser_login(tampered_hub, "alice")
    assert callback.status_code == 302, callback.text
    state = tampered_hub.api("GET", "/users/alice").json()["auth_state"]
    yield state
    proxy.id_token, proxy.userinfo = None, None


def subjects(state: dict) -> set[str]:
    return {jwt.decode(t["access_token"], options={"verify_signature": False})["sub"]
            for t in state["exchanged"].values()}


def test_another_users_id_token_in_the_code_exchange_is_refused(tampered_hub, proxy, victim):
    assert jwt.decode(victim["id_token"], options={"verify_signature": False})["nonce"]  # genuine, of alice's login
    proxy.id_token = victim["id_token"]
    swapped = proxy.swapped
    _, callback = browser_login(tampered_hub, "MariaSKA")
    assert proxy.swapped == swapped + 1  # the answer really was tampered with
    assert callback.status_code == 403, callback.text
    assert "Sign-in could not be completed" in callback.text
    log = tampered_hub.log()
    assert "Login refused: the id_token's nonce is missing or is not this login's" in log
    assert "&nonce=[secret]&" in log  # the authorization request is logged without its nonce
    victim_nonce = jwt.decode(victim["id_token"], options={"verify_signature": False})["nonce"]
    assert victim_nonce not in log
    # alice's account holds alice's tokens only; no session was made for anyone.
    after = tampered_hub.api("GET", "/users/alice").json()["auth_state"]
    assert subjects(after) == subjects(victim) == {victim["subject"]["sub"]}
    assert after["exchanged"] == victim["exchanged"]


def test_another_users_userinfo_is_refused(tampered_hub, proxy, victim):
    proxy.userinfo = victim["oauth_user"]
    swapped = proxy.swapped
    _, callback = browser_login(tampered_hub, "MariaSKA")
    if tampered_hub.fetch_userinfo == "when_claims_missing":
        # The id_token carries every claim the hub reads: userinfo is not asked, nothing to swap.
        assert proxy.swapped == swapped and callback.status_code == 302
        return
    assert proxy.swapped == swapped + 1
    assert callback.status_code == 403, callback.text
    assert "the userinfo answer is about another subject than the id_token" in tampered_hub.log()
    assert tampered_hub.api("GET", "/users/alice").json()["auth_state"]["exchanged"] == victim["exchanged"]
