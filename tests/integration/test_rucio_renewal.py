"""Short-lived tokens against the real Rucio: the hub renews the server's Rucio token, the client's
next call uses the new one, and Rucio refuses the old one once it has expired."""

import time

import httpx
import jwt
import pytest

from . import rucio_fixtures
from .conftest import browser_login
from .rucio_fixtures import rucio_cli
from .test_spawn import server_environ, start, stop

pytestmark = pytest.mark.integration
rucio, hub = rucio_fixtures.rucio, rucio_fixtures.hub

EXCHANGE_TTL = 20
DEV_IAM_ARGS = [f"--exchange-token-ttl={EXCHANGE_TTL}", "--access-token-ttl=30"]
HUB_OVERRIDES = {
    "DLaaSAuthenticator.refresh_margin": 10,
    "DLaaSAuthenticator.refresh_backoff": 2,
    "DLaaSAuthenticator.auth_refresh_age": 5,
    "DLaaSLocalSpawner.token_agent_margin": 6,
}


def test_the_renewed_token_is_used_and_the_expired_one_refused(hub, rucio):
    browser_login(hub, "MariaSKA")
    server = start(hub, "mariaska", "minimal")
    env = server_environ(server)
    token_file = f"{env['RUCIO_CONFIG'].rsplit('/', 1)[0]}/rucio-token"
    first = open(token_file).read()
    first_exp = jwt.decode(first, options={"verify_signature": False})["exp"]
    assert "mariaska" in rucio_cli(env, "whoami").stdout

    # Past the first token's expiry, the file holds a renewed one and the client works with it.
    while time.time() < first_exp + 2:
        time.sleep(0.5)
    renewed = open(token_file).read()
    assert renewed != first and jwt.decode(renewed, options={"verify_signature": False})["exp"] > time.time()
    whoami = rucio_cli(env, "whoami")
    assert whoami.returncode == 0 and "mariaska" in whoami.stdout, whoami.stderr

    def status(token):
        return httpx.get(f"{rucio.url}/accounts/whoami", headers={"X-Rucio-Auth-Token": token},
                         follow_redirects=True).status_code

    assert status(first) == 401  # expired: refused by Rucio
    assert status(renewed) == 200
    stop(hub, "mariaska")
