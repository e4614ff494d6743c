"""The hub's own HTTP client (aiohttp) against a real HTTP server on 127.0.0.1."""

import asyncio
import json
import socket

import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from dlaas_hub.tokens.http import MAX_RESPONSE_BYTES, IAMError, request_json
from dlaas_hub.tokens.hubclient import AiohttpClient, make_client
from dlaas_hub.tokens.limiter import RequestLimiter


class Server:
    def __init__(self):
        self.requests = []
        self.answers = []  # (status, body) popped per request; default 200 {"ok": true}
        self.in_flight = 0
        self.peak = 0
        self.delay = 0.0


def app(server: Server):
    class Any(web.RequestHandler):
        async def prepare(self):
            server.in_flight += 1
            server.peak = max(server.peak, server.in_flight)
            server.requests.append({"method": self.request.method, "path": self.request.path,
                                    "query": self.request.query, "headers": dict(self.request.headers),
                                    "body": self.request.body.decode()})
            try:
                if server.delay:
                    await asyncio.sleep(server.delay)
                status, body = server.answers.pop(0) if server.answers else (200, {"ok": True})
                self.set_status(status)
                if status in (301, 302):
                    self.set_header("Location", "http://elsewhere.example/")
                self.finish(body if isinstance(body, bytes) else json.dumps(body))
            finally:
                server.in_flight -= 1

    return web.Application([(r"/.*", Any)])


@pytest.fixture
async def server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    state = Server()
    http = HTTPServer(app(state))
    http.add_sockets([sock])
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield state
    http.stop()


@pytest.fixture
async def client():
    c = make_client(timeout=2, backend="aiohttp")
    yield c
    await c.aclose()


async def test_form_post_with_basic_auth_returns_the_json(server, client):
    assert isinstance(client, AiohttpClient)
    document = await request_json(client, "POST", server.url + "/token", label="x",
                                  data={"grant_type": "refresh_token", "refresh_token": "r&t"},
                                  auth=("hub client", "s3cret"))
    assert document == {"ok": True}
    sent = server.requests[0]
    assert sent["body"] == "grant_type=refresh_token&refresh_token=r%26t"
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent["headers"]["Authorization"] == "Basic aHViIGNsaWVudDpzM2NyZXQ="
    assert sent["headers"]["User-Agent"] == "dlaas-hub"


async def test_query_parameters_are_encoded(server, client):
    await request_json(client, "GET", server.url + "/thing", label="x", params={"server": "a b"})
    assert server.requests[0]["query"] == "server=a+b"


async def test_4xx_is_definitive_and_not_retried(server, client):
    server.answers = [(400, {"error": "invalid_grant",
                             "error_description": "Code eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln is\n invalid"})]
    with pytest.raises(IAMError) as info:
        await request_json(client, "POST", server.url + "/token", label="code", retries=3, backoff=0)
    assert len(server.requests) == 1
    assert (info.value.error, info.value.transient) == ("invalid_grant", False)
    assert str(info.value).endswith("(invalid_grant: Code […] is invalid)") and "eyJ" not in str(info.value)


async def test_5xx_is_retried_then_recovers(server, client):
    server.answers = [(503, b"down"), (200, {"ok": 2})]
    assert await request_json(client, "GET", server.url + "/x", label="x", retries=1, backoff=0) == {"ok": 2}
    assert len(server.requests) == 2


async def test_refused_connection_is_transient_and_names_no_query(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(IAMError) as info:
        await request_json(client, "GET", f"http://127.0.0.1:{port}/x?access_token=leak", label="x")
    assert info.value.transient and "leak" not in str(info.value)


async def test_timeout_is_transient(server):
    server.delay = 0.5
    client = make_client(timeout=0.1, backend="aiohttp")
    try:
        with pytest.raises(IAMError, match="timed out") as info:
            await request_json(client, "GET", server.url + "/slow", label="x")
        assert info.value.transient
    finally:
        await client.aclose()


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b"", b"null"])
async def test_malformed_bodies_are_errors(server, client, body):
    server.answers = [(200, body)]
    with pytest.raises(IAMError, match="malformed"):
        await request_json(client, "GET", server.url + "/x", label="x")


async def test_oversized_response_is_refused(server, client):
    server.answers = [(200, b'{"a": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}')]
    with pytest.raises(IAMError, match="larger than"):
        await request_json(client, "GET", server.url + "/x", label="x")


async def test_redirects_are_not_followed(server, client):
    server.answers = [(302, b"")]
    with pytest.raises(IAMError, match="redirect"):
        await request_json(client, "GET", server.url + "/x", label="x")
    assert len(server.requests) == 1


async def test_on_sent_and_on_connect_are_told(server, client):
    events = []
    await request_json(client, "POST", server.url + "/x", label="x", data={"a": "b"},
                       on_sent=lambda: events.append("sent"), on_connect=lambda: events.append("connect"))
    await request_json(client, "POST", server.url + "/x", label="x", data={"a": "b"},
                       on_sent=lambda: events.append("sent again"), on_connect=lambda: events.append("connect again"))
    assert events[0] == "connect" and "sent" in events
    assert "connect again" not in events and "sent again" in events  # the pool kept the connection


async def test_the_limiter_bounds_what_reaches_the_server(server):
    server.delay = 0.02
    client = make_client(timeout=5, backend="aiohttp", limiter=RequestLimiter(3), max_connections=3)
    try:
        await asyncio.gather(*(request_json(client, "GET", server.url + "/x", label="x") for _ in range(30)))
    finally:
        await client.aclose()
    assert len(server.requests) == 30
    assert server.peak == client.limiter.peak == 3


def test_the_proxy_comes_from_the_environment_once_per_origin(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "iam.internal")
    client = make_client(backend="aiohttp")
    assert client.proxy_for("https://iam.example/token") == "http://proxy.example:3128"
    assert client.proxy_for("https://iam.internal/token") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert client.proxy_for("https://iam.example/jwks") == "http://proxy.example:3128"  # cached
    assert make_client(backend="aiohttp").proxy_for("https://iam.example/jwks") is None
