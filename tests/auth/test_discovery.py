import asyncio

import httpx
import pytest
import respx

from dlaas_hub.auth.discovery import ProviderMetadata, discovery_url, issuers_match
from dlaas_hub.tokens.http import IAMError
from dlaas_hub.tokens.hubclient import make_client

from ..fakeiam import FakeIAM


@pytest.mark.parametrize("a,b,match", [
    ("https://iam.example/", "https://iam.example", True),
    ("https://iam.example", "https://iam.example/", True),
    ("https://iam.example/", "https://iam.example/", True),
    ("https://iam.example/", "https://iam.example.evil/", False),
    ("https://iam.example/realm", "https://iam.example/", False),
    ("", "", False),
])
def test_issuers_match_modulo_trailing_slash(a, b, match):
    assert issuers_match(a, b) is match


def test_discovery_url():
    assert discovery_url("https://iam.example/") == "https://iam.example/.well-known/openid-configuration"


@respx.mock
async def test_metadata_is_fetched_once_for_concurrent_callers():
    iam = FakeIAM(respx.mock)
    async with make_client() as client:
        metadata = ProviderMetadata(client, iam.issuer)
        results = await asyncio.gather(*(metadata.get() for _ in range(10)))
    assert all(r["token_endpoint"] == f"{iam.base}/token" for r in results)
    assert iam.discovery.call_count == 1


@respx.mock
async def test_issuer_without_slash_matches_iam_issuer_with_slash():
    FakeIAM(respx.mock, issuer="https://iam.test.example/")
    async with make_client() as client:
        assert (await ProviderMetadata(client, "https://iam.test.example").get())["issuer"]


@respx.mock
async def test_metadata_naming_another_issuer_is_refused():
    iam = FakeIAM(respx.mock)
    iam.discovery.mock(side_effect=lambda r: httpx.Response(200, json={**iam.metadata(), "issuer": "https://evil/"}))
    async with make_client() as client:
        with pytest.raises(IAMError, match="names issuer"):
            await ProviderMetadata(client, iam.issuer).get()


@respx.mock
async def test_metadata_without_token_endpoint_is_refused():
    iam = FakeIAM(respx.mock)
    doc = iam.metadata()
    del doc["token_endpoint"]
    iam.discovery.mock(return_value=httpx.Response(200, json=doc))
    async with make_client() as client:
        with pytest.raises(IAMError, match="no token_endpoint"):
            await ProviderMetadata(client, iam.issuer).get()


@respx.mock
async def test_failed_discovery_is_retried_and_not_cached():
    iam = FakeIAM(respx.mock)
    iam.discovery.mock(side_effect=httpx.ConnectError("refused"))
    async with make_client() as client:
        metadata = ProviderMetadata(client, iam.issuer, retries=2, backoff=0)
        with pytest.raises(IAMError) as info:
            await metadata.get()
        assert info.value.transient
        assert iam.discovery.call_count == 3
        iam.discovery.mock(side_effect=lambda r: httpx.Response(200, json=iam.metadata()))
        assert (await metadata.get())["jwks_uri"] == f"{iam.base}/jwks"
