"""DLaaSAuthenticator's login against the stock GenericOAuthenticator's, side by side.

One process tree: the development IAM and two hubs of the same JupyterHub, one signing in with
DLaaSAuthenticator (verified id_token, groups, two token exchanges), one with the stock
GenericOAuthenticator (code exchange and userinfo only). Logins alternate between the two hubs.

1. With ``--delay-ms`` (25) on every IAM request: the median time of the hub's OAuth callback alone.
2. With no delay: the hub process's CPU time per login.

Prints both medians and the ratios; the target is a ratio at or below 1.0.

    .venv/bin/python -m benchmarks.login_vs_stock [--delay-ms 25] [--logins 40]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

import dlaas_hub
from dlaas_hub import devservices

CLIENT_ID = "dlaas-hub-bench"
USER = "MariaSKA"
PASSWORD = devservices.dev_iam_passwords()[USER]
CONFIGS = {
    "dlaas": Path(dlaas_hub.__file__).with_name("demo_config.py"),
    "stock": Path(__file__).with_name("stock_hub_config.py"),
}


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def callback_seconds(hub_url: str, iam_url: str) -> float:
    client, callback = devservices.login_until_callback(hub_url, iam_url, USER, PASSWORD)
    assert isinstance(callback, str), f"the sign-in stopped before the callback: {callback.status_code}"
    started = time.perf_counter()
    response = client.get(callback)
    elapsed = time.perf_counter() - started
    assert response.status_code == 302, f"{hub_url}: callback answered {response.status_code}"
    client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=int, default=25)
    parser.add_argument("--logins", type=int, default=40, help="logins per hub and phase")
    args = parser.parse_args()

    secret = secrets.token_urlsafe(24)
    iam_port = devservices.free_port()
    ports = {name: devservices.free_port() for name in CONFIGS}
    iam = devservices.start_dev_iam(
        iam_port, redirect_uris=[f"http://127.0.0.1:{p}/hub/oauth_callback" for p in ports.values()],
        client_id=CLIENT_ID, client_secret=secret, stdout=subprocess.DEVNULL)
    iam_url = f"http://127.0.0.1:{iam_port}/"
    control = f"{iam_url}_dev/control"
    endpoints = httpx.get(f"{iam_url}.well-known/openid-configuration").json()
    hubs = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, config in CONFIGS.items():
                workdir = Path(tmp) / name
                workdir.mkdir()
                settings = devservices.hub_settings(
                    workdir, hub_port=ports[name], iam_url=iam_url, client_id=CLIENT_ID, client_secret=secret,
                    crypt_key=secrets.token_hex(32), endpoints=endpoints)
                proc, _ = devservices.start_hub(workdir, config, settings, unset=("JUPYTERHUB_CRYPT_KEY",))
                hubs[name] = (settings["hub_url"], proc)
            for url, _ in hubs.values():
                callback_seconds(url, iam_url)  # warm-up: discovery, JWKS, the user's first login

            httpx.post(control, json={"delay_ms": args.delay_ms})
            timings = {name: [] for name in hubs}
            for i in range(args.logins):
                order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
                for name in order:
                    timings[name].append(callback_seconds(hubs[name][0], iam_url))

            httpx.post(control, json={"delay_ms": 0})
            cpu = {name: 0.0 for name in hubs}
            for i in range(args.logins):
                order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
                for name in order:
                    url, proc = hubs[name]
                    before = cpu_seconds(proc.pid)
                    callback_seconds(url, iam_url)
                    time.sleep(0.05)  # let the hub finish the request's bookkeeping
                    cpu[name] += cpu_seconds(proc.pid) - before
        finally:
            for _, proc in hubs.values():
                devservices.stop(proc)
            devservices.stop(iam)

    medians = {name: statistics.median(t) for name, t in timings.items()}
    per_login = {name: cpu[name] / args.logins for name in hubs}
    print(f"JupyterHub {__import__('jupyterhub').__version__}; {args.logins} logins per hub and phase, interleaved")
    print(f"callback with {args.delay_ms} ms per IAM request (median):")
    print(f"  DLaaSAuthenticator (id_token check, 2 token exchanges): {medians['dlaas'] * 1000:7.1f} ms")
    print(f"  stock GenericOAuthenticator (no exchange):             {medians['stock'] * 1000:7.1f} ms")
    print(f"  ratio DLaaS / stock: {medians['dlaas'] / medians['stock']:.2f} (target <= 1.00)")
    print("hub CPU per login, 0 ms IAM delay (including the login's page requests):")
    print(f"  DLaaSAuthenticator: {per_login['dlaas'] * 1000:6.1f} ms   stock: {per_login['stock'] * 1000:6.1f} ms"
          f"   ratio {per_login['dlaas'] / per_login['stock']:.2f}")


if __name__ == "__main__":
    main()
