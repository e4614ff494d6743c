import asyncio
import time
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from dlaas_hub.tokens.claims import jwt_expiry
from dlaas_hub.tokens.exchange import (
    ACCESS_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    ExchangedToken,
    ExchangeError,
    ExchangeTarget,
    exchange_all,
    exchange_token,
)
from dlaas_hub.tokens.hubclient import make_client

from ..fakeiam import CLIENT_ID, CLIENT_SECRET, basic_auth_header, on_the_wire

EOS = ExchangeTarget("eos", "eos-eulake", "openid storage.read:/eos")
RUCIO = ExchangeTarget("rucio", "rucio", "openid profile", required=False)


@pytest.fixture
async def client():
    async with make_client() as c:
        yield c


# -- configuration ----------------------------------------------------------------------------

def test_target_from_config():
    t = ExchangeTarget.from_config("eos", {"audience": "eos-eulake", "scope": " openid   profile ", "required": False})
    assert t == ExchangeTarget("eos", "eos-eulake", "openid profile", required=False)


@pytest.mark.parametrize("config,message", [
    ({"audience": "a"}, r"exchange_targets\['eos'\].scope must be a non-empty string"),
    ({"scope": "openid"}, r"exchange_targets\['eos'\].audience"),
    ({"audience": "a", "scope": ""}, r"\.scope must be a non-empty"),
    ({"audience": "a", "scope": "openid offline_access"}, "must not contain offline_access"),
    ({"audience": "a", "scope": "openid", "required": "yes"}, r"\.required must be true or false"),
    ({"audience": "a", "scope": "openid", "aud": "typo"}, "unknown keys: aud"),
    ("eos-eulake", "must be a dict"),
])
def test_bad_target_config_names_the_key(config, message):
    with pytest.raises(ValueError, match=message):
        ExchangeTarget.from_config("eos", config)


# -- one exchange -----------------------------------------------------------------------------

async def test_exchange_sends_the_iam_request(iam, client):
    token = await exchange_token(client, f"{iam.base}/token", "subject-token-value", EOS,
                                 auth=(CLIENT_ID, CLIENT_SECRET))
    [sent] = iam.exchange_requests
    assert sent == {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": "subject-token-value",
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": "eos-eulake",
        "scope": "openid storage.read:/eos",
        "_authorization": basic_auth_header(),
    }
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["aud"] == "eos-eulake"
    assert token.expires_at == claims["exp"]
    assert token.audience == "eos-eulake" and token.scope == "openid storage.read:/eos"


async def test_client_credentials_in_the_body_when_not_basic(iam, client):
    await exchange_token(client, f"{iam.base}/token", "s", EOS,
                         client_params={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    sent = iam.exchange_requests[0]
    assert sent["client_id"] == CLIENT_ID and sent["client_secret"] == CLIENT_SECRET
    assert sent["_authorization"] == ""


async def test_opaque_token_expiry_from_expires_in(iam, client):
    iam.exchange_failures["eos-eulake"] = httpx.Response(200, json={"access_token": "opaque", "expires_in": 600})
    before = time.time()
    token = await exchange_token(client, f"{iam.base}/token", "s", EOS)
    assert before + 600 - 1 <= token.expires_at <= time.time() + 600


@pytest.mark.parametrize("body,message", [
    ({"expires_in": 600}, "no access_token"),
    ({"access_token": ""}, "no access_token"),
    ({"access_token": "opaque"}, "lifetime"),
    ({"access_token": "opaque", "expires_in": "soon"}, "lifetime"),
    ({"access_token": "opaque", "expires_in": -5}, "lifetime"),
])
async def test_malformed_exchange_answers(iam, client, body, message):
    iam.exchange_failures["eos-eulake"] = httpx.Response(200, json=body)
    with pytest.raises(ExchangeError, match=message) as info:
        await exchange_token(client, f"{iam.base}/token", "s", EOS)
    assert info.value.target is EOS and not info.value.transient


async def test_denied_exchange_is_definitive(iam, client):
    iam.exchange_failures["eos-eulake"] = httpx.Response(
        400, json={"error": "invalid_scope", "error_description": "scope not allowed"})
    with pytest.raises(ExchangeError) as info:
        await exchange_token(client, f"{iam.base}/token", "s", EOS, retries=2)
    assert info.value.error == "invalid_scope" and not info.value.transient
    assert len(iam.exchange_requests) == 1


async def test_5xx_exchange_is_retried(iam, client):
    iam.exchange_failures["eos-eulake"] = httpx.Response(503)
    with pytest.raises(ExchangeError) as info:
        await exchange_token(client, f"{iam.base}/token", "s", EOS, retries=1)
    assert info.value.transient
    assert len(iam.exchange_requests) == 2


def test_exchanged_token_repr_hides_the_token():
    t = ExchangedToken("very-secret-token", 1, "aud", "scope")
    assert "very-secret-token" not in repr(t)
    state = t.to_state()
    assert abs(state.pop("obtained_at") - time.time()) < 5  # shown as the last renewal
    assert state == {"access_token": "very-secret-token", "expires_at": 1, "audience": "aud", "scope": "scope"}


# -- all targets ------------------------------------------------------------------------------

async def test_all_targets_are_exchanged_concurrently(iam, client):
    both_arrived = asyncio.Event()
    arrived = []
    original = iam.token.side_effect

    async def slow(request):
        await on_the_wire(request)
        arrived.append(request)
        if len(arrived) == 2:
            both_arrived.set()
        # Each answer waits until both requests are in flight: sequential exchanges would time out.
        await asyncio.wait_for(both_arrived.wait(), timeout=5)
        return original(request)

    iam.token.mock(side_effect=slow)
    results = await exchange_all(client, f"{iam.base}/token", "s", [EOS, RUCIO])
    assert set(results) == {"eos", "rucio"}
    assert all(isinstance(r, ExchangedToken) for r in results.values())


async def test_one_failure_does_not_cancel_the_others(iam, client):
    iam.exchange_failures["rucio"] = httpx.Response(400, json={"error": "invalid_target"})
    results = await exchange_all(client, f"{iam.base}/token", "s", [EOS, RUCIO])
    assert isinstance(results["eos"], ExchangedToken)
    assert isinstance(results["rucio"], ExchangeError) and results["rucio"].error == "invalid_target"


# -- tokens -----------------------------------------------------------------------------------

def test_jwt_expiry():
    assert jwt_expiry(jwt.encode({"exp": 1234}, "k" * 32)) == 1234
    assert jwt_expiry(jwt.encode({"sub": "x"}, "k" * 32)) is None
    assert jwt_expiry(jwt.encode({"exp": True}, "k" * 32)) is None
    assert jwt_expiry("opaque-token") is None


async def test_sent_is_set_once_every_request_is_on_the_wire(client):
    """The login does its own checks once the exchanges are sent, while the provider works on them."""
    arrived, release = [], asyncio.Event()

    async def provider(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                      if line.startswith(b"content-length"))
        body = await reader.readexactly(length)
        arrived.append(body)
        await release.wait()
        answer = b'{"access_token": "t", "expires_in": 60}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(answer), answer))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(provider, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/token"
    sent = asyncio.Event()
    task = asyncio.ensure_future(exchange_all(client, url, "s", [EOS, RUCIO], sent=sent))
    await asyncio.wait_for(sent.wait(), timeout=5)
    assert not task.done()  # no answer yet: the event says sent, not answered
    release.set()
    results = await task
    assert all(isinstance(r, ExchangedToken) for r in results.values())
    assert len(arrived) == 2
    server.close()


class RecordingTransport(httpx.AsyncHTTPTransport):
    """A real transport that notes when each exchange starts and what httpcore tells of it."""

    def __init__(self):
        super().__init__()
        self.events = []

    async def handle_async_request(self, request):
        audience = parse_qs(request.content.decode())["audience"][0]
        self.events.append((audience, "start"))
        traced = request.extensions["trace"]

        async def trace(event, info):
            self.events.append((audience, event))
            await traced(event, info)

        request.extensions["trace"] = trace
        return await super().handle_async_request(request)

    def index(self, audience, event):
        return self.events.index((audience, event))


async def keep_alive_provider(reader, writer):
    answer = b'{"access_token": "t", "expires_in": 60}'
    while head := await reader.readuntil(b"\r\n\r\n"):
        length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                      if line.startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(answer), answer))
        await writer.drain()


@pytest.mark.parametrize("pool", ["warm", "cold"])
async def test_each_exchange_goes_out_once_the_one_before_is_written_or_connecting(pool):
    server = await asyncio.start_server(keep_alive_provider, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/token"
    transport = RecordingTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        if pool == "warm":
            await exchange_all(client, url, "s", [EOS, RUCIO])  # leaves two idle connections
            transport.events.clear()
        results = await exchange_all(client, url, "s", [EOS, RUCIO])
    server.close()
    assert all(isinstance(r, ExchangedToken) for r in results.values())
    rucio_starts = transport.index("rucio", "start")
    if pool == "warm":
        # The provider has the first request before the second is even prepared.
        assert rucio_starts > transport.index("eos-eulake", "http11.send_request_body.complete")
        assert not any(event.startswith("connection.") for _, event in transport.events)
    else:
        # The second does not wait for the first one's connection to be made.
        assert transport.index("eos-eulake", "connection.connect_tcp.started") < rucio_starts
        assert rucio_starts < transport.index("eos-eulake", "connection.connect_tcp.complete")


async def test_sent_is_set_when_a_request_fails_before_it_is_sent(client):
    sent = asyncio.Event()
    results = await exchange_all(client, "http://127.0.0.1:9/token", "s", [EOS], sent=sent, retries=0)
    assert sent.is_set() and isinstance(results["eos"], ExchangeError)
