"""The ``auth`` fixture: a DLaaSAuthenticator for the fake IAM, its client closed afterwards."""

import pytest

from .build import make


@pytest.fixture
async def auth():
    authenticator = make()
    yield authenticator
    await authenticator.iam_client.aclose()
