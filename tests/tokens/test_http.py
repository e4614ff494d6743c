import httpx
import pytest
import respx

from dlaas_hub.tokens.http import MAX_RESPONSE_BYTES, IAMError, oauth_error_code, request_json, safe_url
from dlaas_hub.tokens.hubclient import make_client

URL = "https://iam.test.example/thing"


@pytest.fixture
async def client():
    async with make_client(timeout=2) as c:
        yield c


@respx.mock
async def test_json_object_is_returned(client):
    respx.get(URL).respond(json={"a": 1})
    assert await request_json(client, "GET", URL, label="x") == {"a": 1}


@respx.mock
async def test_4xx_is_definitive_and_not_retried(client):
    route = respx.post(URL).respond(400, json={
        "error": "invalid_grant", "error_description": "Code eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln is\n invalid"})
    with pytest.raises(IAMError) as info:
        await request_json(client, "POST", URL, label="code", retries=3, backoff=0)
    assert route.call_count == 1
    assert info.value.error == "invalid_grant"
    assert info.value.transient is False
    # The provider's words, on one line, without what could be a code or a token.
    assert str(info.value).endswith("(invalid_grant: Code […] is invalid)")
    assert "eyJ" not in str(info.value)


@respx.mock
async def test_5xx_is_retried_then_transient(client):
    route = respx.get(URL).respond(503, text="down")
    with pytest.raises(IAMError) as info:
        await request_json(client, "GET", URL, label="x", retries=2, backoff=0)
    assert route.call_count == 3
    assert info.value.transient and info.value.status == 503


@respx.mock
async def test_retry_recovers_after_a_5xx(client):
    route = respx.get(URL).mock(side_effect=[httpx.Response(502), httpx.Response(200, json={"ok": True})])
    assert await request_json(client, "GET", URL, label="x", retries=1, backoff=0) == {"ok": True}
    assert route.call_count == 2


@pytest.mark.parametrize("exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError])
@respx.mock
async def test_timeouts_and_refused_connections_are_transient(client, exc):
    respx.get(URL + "?access_token=leak").mock(side_effect=exc("boom"))
    with pytest.raises(IAMError) as info:
        await request_json(client, "GET", URL + "?access_token=leak", label="x")
    assert info.value.transient
    assert "leak" not in str(info.value)


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b"", b"null"])
@respx.mock
async def test_malformed_bodies_are_errors(client, body):
    respx.get(URL).respond(200, content=body)
    with pytest.raises(IAMError) as info:
        await request_json(client, "GET", URL, label="x")
    assert "malformed" in str(info.value)
    assert not info.value.transient


@respx.mock
async def test_oversized_response_is_refused(client):
    respx.get(URL).respond(200, content=b'{"a": "' + b"x" * (MAX_RESPONSE_BYTES + 10) + b'"}')
    with pytest.raises(IAMError, match="larger than"):
        await request_json(client, "GET", URL, label="x")


@respx.mock
async def test_redirects_are_not_followed(client):
    respx.get(URL).respond(302, headers={"location": "https://elsewhere.example/"})
    with pytest.raises(IAMError, match="redirect"):
        await request_json(client, "GET", URL, label="x")


def test_safe_url_drops_query_and_fragment():
    assert safe_url("https://h/p?access_token=abc#frag") == "https://h/p"


@pytest.mark.parametrize("doc,code", [
    ({"error": "invalid_scope"}, "invalid_scope"),
    ({"error": "Bearer eyJhbGciOi..."}, None),
    ({"error": 3}, None),
    ([], None),
])
def test_oauth_error_code_only_accepts_codes(doc, code):
    assert oauth_error_code(doc) == code


async def test_a_pooled_request_fails_no_import():
    """httpcore looks for sniffio on each request; without it every request re-scans sys.path
    for a module that is not there (encode/httpcore#1103), a fifth of a request's CPU here."""
    import asyncio
    import builtins

    async def answer(reader, writer):
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
            await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    failed = []
    real_import = builtins.__import__

    def counting_import(name, *args, **kwargs):
        try:
            return real_import(name, *args, **kwargs)
        except ImportError:
            failed.append(name)
            raise

    async with make_client() as c:
        await request_json(c, "GET", url, label="warm-up")
        builtins.__import__ = counting_import
        try:
            for _ in range(3):
                assert await request_json(c, "GET", url, label="x") == {}
        finally:
            builtins.__import__ = real_import
    server.close()
    assert failed == []
