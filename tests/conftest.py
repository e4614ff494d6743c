import json
import os
import tempfile

import pytest
import respx

from .fakeiam import FakeIAM


def _throwaway_kubeconfig():
    # kubespawner builds real pod manifests in the tests but never reaches a cluster.
    directory = tempfile.mkdtemp(prefix="dlaas-kubeconfig-")
    path = os.path.join(directory, "config")
    with open(path, "w") as f:
        json.dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "test", "user": {"token": "unused"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "dlaas"}}],
        }, f)
    os.environ["KUBECONFIG"] = path


# At this conftest's import, before any other conftest or test module imports the package:
# kubernetes_asyncio reads KUBECONFIG when it is imported.
_throwaway_kubeconfig()


@pytest.fixture(autouse=True)
def httpx_for_respx(monkeypatch):
    """Unit tests answer the provider's requests with respx, which serves httpx clients: the hub's
    own client (aiohttp) is tested against real servers, in tests/tokens/test_http_aiohttp.py and
    every integration test."""
    monkeypatch.setattr("dlaas_hub.tokens.hubclient.DEFAULT_BACKEND", "httpx")


@pytest.fixture
def iam():
    """An IAM in respx routes (discovery, JWKS, token, userinfo); other HTTP calls are refused."""
    with respx.mock(assert_all_called=False) as router:
        yield FakeIAM(router)


@pytest.fixture
def crypt_key(monkeypatch):
    """auth_state encryption key, which DLaaSAuthenticator requires."""
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "a" * 64)
