"""How many IAM round trips a login costs on the hub's critical path (the design says 2).

Starts the development IAM with an artificial delay on every request and a real hub, logs in N
times, and times the hub's OAuth callback alone (code exchange, then all token exchanges
concurrently; userinfo too when the id_token lacks a claim). Prints the median callback time in
units of the IAM's delay.

    .venv/bin/python -m benchmarks.login_round_trips [--delay-ms 300] [--logins 5]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx

from dlaas_hub.dev import devservices

CLIENT_ID = "dlaas-hub-bench"
PASSWORDS = devservices.dev_iam_passwords()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=int, default=300)
    parser.add_argument("--logins", type=int, default=5)
    args = parser.parse_args()

    secret = secrets.token_urlsafe(24)
    iam_port, hub_port = devservices.free_port(), devservices.free_port()
    iam = devservices.start_dev_iam(iam_port, redirect_uris=[f"http://127.0.0.1:{hub_port}/hub/oauth_callback"],
                                    client_id=CLIENT_ID, client_secret=secret, stdout=subprocess.DEVNULL)
    iam_url = f"http://127.0.0.1:{iam_port}/"
    with tempfile.TemporaryDirectory() as workdir:
        settings = devservices.hub_settings(Path(workdir), hub_port=hub_port, iam_url=iam_url, client_id=CLIENT_ID,
                                            client_secret=secret, crypt_key=secrets.token_hex(32))
        proc, _ = devservices.start_hub(Path(workdir), devservices.DEMO_CONFIG, settings,
                                        unset=("JUPYTERHUB_CRYPT_KEY",))
        hub_url = settings["hub_url"]
        try:
            devservices.browser_login(hub_url, iam_url, "alice", PASSWORDS["alice"])  # warms discovery and JWKS
            control = urljoin(iam_url, "_dev/control")
            httpx.post(control, json={"delay_ms": args.delay_ms, "reset_stats": True})
            timings = []
            original = httpx.Client.get

            def timed_get(self, url, *a, **kw):
                started = time.perf_counter()
                response = original(self, url, *a, **kw)
                if "/hub/oauth_callback" in str(url):
                    timings.append(time.perf_counter() - started)
                return response

            httpx.Client.get = timed_get
            try:
                for _ in range(args.logins):
                    _, callback = devservices.browser_login(hub_url, iam_url, "MariaSKA", PASSWORDS["MariaSKA"])
                    assert callback.status_code == 302, callback.status_code
            finally:
                httpx.Client.get = original
            stats = httpx.get(control).json()["stats"]
        finally:
            devservices.stop(proc)
            devservices.stop(iam)

    delay = args.delay_ms / 1000
    median = statistics.median(timings)
    # What the hub asks (the browser's own /auth and login-form requests are left out).
    per_login = {path: n / args.logins for path, n in stats["requests"].items()
                 if not path.startswith(("/auth", "/interaction"))}
    print(f"IAM delay per request: {args.delay_ms} ms; logins: {args.logins}")
    print(f"hub callback (code exchange + 2 token exchanges): median {median * 1000:.0f} ms "
          f"= {median / delay:.2f} x the IAM delay (2 round trips would be 2.00 plus the hub's own work)")
    print(f"hub requests to the IAM per login: {per_login} (discovery and JWKS are cached)")
    print(f"grants: {stats['grants']}")


if __name__ == "__main__":
    main()
