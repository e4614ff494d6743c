"""Cost of DLaaSAuthenticator.refresh_user when nothing is near expiry (the common case).

JupyterHub calls refresh_user on users' requests every auth_refresh_age, and token agents ask for
credentials regularly: when nothing is due it must make no network request and cost next to nothing.

    .venv/bin/python -m benchmarks.refresh_fast_path [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import httpx
from traitlets.config import Config

from dlaas_hub.auth.authenticator import DLaaSAuthenticator


class User:
    name = "mariaska"

    def __init__(self):
        far = int(time.time()) + 3000
        self.state = {"access_token": "a", "refresh_token": "r", "access_token_expires_at": far,
                      "exchanged": {"eos": {"access_token": "e", "expires_at": far},
                                    "rucio": {"access_token": "r", "expires_at": far}}}

    async def get_auth_state(self):
        return self.state

    async def save_auth_state(self, state):
        raise AssertionError("nothing was due: nothing to save")


async def run(calls: int) -> None:
    os.environ.setdefault("JUPYTERHUB_CRYPT_KEY", "a" * 64)
    config = Config()
    config.DLaaSAuthenticator.update(oidc_issuer="https://iam.invalid/", client_id="c", client_secret="s",
                                     exchange_targets={"eos": {"audience": "eos", "scope": "openid"},
                                                       "rucio": {"audience": "rucio", "scope": "openid"}})
    auth = DLaaSAuthenticator(config=config)

    def refuse(request):
        raise AssertionError(f"network request to {request.url}")

    auth.iam_client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    user = User()
    started = time.perf_counter()
    for _ in range(calls):
        assert await auth.refresh_user(user) is True
    elapsed = time.perf_counter() - started
    print(f"{calls} refresh_user calls with nothing due: {elapsed * 1e6 / calls:.1f} µs each, no network request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    asyncio.run(run(parser.parse_args().calls))


if __name__ == "__main__":
    main()
