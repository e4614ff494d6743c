"""DLaaSAuthenticator's login against the stock GenericOAuthenticator's, side by side.

One process tree: the development IAM and two hubs of the same JupyterHub, one signing in with
DLaaSAuthenticator (verified id_token, groups, two token exchanges), one with the stock
GenericOAuthenticator (code exchange and userinfo only). Logins alternate between the two hubs.

1. With ``--delay-ms`` (25) on every IAM request: the median time of the hub's OAuth callback alone.
2. The same IAM requests from a bare client, for the IAM's own share: the stock login's second round
   trip is a userinfo answer, DLaaS's two concurrent token exchanges.
3. With no delay: the hub process's CPU time per login.

Prints both medians and the ratios; the target is a ratio at or below 1.0.

The IAM stands for another machine: with two or more CPUs it runs on a CPU of its own, and the hubs,
their proxies and this client on the others. With shared CPUs (``--iam-cpu shared``) the kernel may
wake the IAM on the CPU of the hub that just wrote to it, where it waits behind that hub's own work;
only DLaaS works while its requests are at the IAM, so only its logins pay for that, a cost no
deployment has.

    .venv/bin/python -m benchmarks.login_vs_stock [--delay-ms 25] [--logins 40] [--iam-cpu N|shared]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import re
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from dlaas_hub.dev import devservices

from .loadkit import cpu_seconds

CLIENT_ID = "dlaas-hub-bench"
USER = "MariaSKA"
PASSWORD = devservices.dev_iam_passwords()[USER]
CONFIGS = {
    "dlaas": devservices.DEMO_CONFIG,
    "stock": Path(__file__).with_name("stock_hub_config.py"),
}


def callback_seconds(hub_url: str, iam_url: str) -> float:
    client, callback = devservices.login_until_callback(hub_url, iam_url, USER, PASSWORD)
    assert isinstance(callback, str), f"the sign-in stopped before the callback: {callback.status_code}"
    started = time.perf_counter()
    response = client.get(callback)
    elapsed = time.perf_counter() - started
    assert response.status_code == 302, f"{hub_url}: callback answered {response.status_code}"
    client.close()
    return elapsed


def bare_code_flow(client: httpx.Client, endpoints: dict, redirect_uri: str) -> tuple[str, str]:
    """Sign in at the IAM as a bare OAuth client (PKCE); returns the code and its verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    response = client.get(endpoints["authorization_endpoint"] + "?" + urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri, "state": "bench",
        "scope": "openid profile email offline_access wlcg.groups",
        "code_challenge": challenge, "code_challenge_method": "S256"}))
    for _ in range(20):
        if response.status_code in (302, 303):
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(redirect_uri):
                return parse_qs(urlsplit(target).query)["code"][0], verifier
            response = client.get(target)
            continue
        action = re.search(r'action="([^"]+)"', response.text).group(1)
        response = client.post(urljoin(str(response.url), action), data={"username": USER, "password": PASSWORD})
    raise RuntimeError("the bare sign-in did not reach the redirect")


async def iam_alone(endpoints: dict, secret: str, redirect_uri: str, logins: int) -> dict[str, float]:
    """Median times of the IAM's answers to the requests the two logins make after the code exchange."""
    timings = {"code exchange": [], "userinfo": [], "two exchanges": []}
    async with httpx.AsyncClient(auth=(CLIENT_ID, secret), timeout=30) as iam:
        for _ in range(logins):
            with httpx.Client() as browser:
                code, verifier = bare_code_flow(browser, endpoints, redirect_uri)
            started = time.perf_counter()
            token = (await iam.post(endpoints["token_endpoint"], data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier})).json()["access_token"]
            timings["code exchange"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await iam.get(endpoints["userinfo_endpoint"], headers={"Authorization": f"Bearer {token}"}, auth=None)
            timings["userinfo"].append(time.perf_counter() - started)
            started = time.perf_counter()
            answers = await asyncio.gather(*(iam.post(endpoints["token_endpoint"], data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": audience, "scope": "openid profile"}) for audience in ("eos", "rucio")))
            timings["two exchanges"].append(time.perf_counter() - started)
            assert all(a.status_code == 200 for a in answers), [a.status_code for a in answers]
    return {name: statistics.median(t) for name, t in timings.items()}


def ratio_interval(dlaas: list[float], stock: list[float], *, rounds: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the ratio of medians, resampling the interleaved pairs together."""
    rng = random.Random(0)
    pairs = list(zip(dlaas, stock))
    ratios = sorted(
        statistics.median(d for d, _ in sample) / statistics.median(s for _, s in sample)
        for sample in ([rng.choice(pairs) for _ in pairs] for _ in range(rounds)))
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def split_cpus(choice: str) -> tuple[set[int], set[int]] | None:
    """(the IAM's CPUs, everyone else's), or None to share them all."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if choice == "shared" or len(cpus) < 2:
        return None
    iam = int(choice) if choice != "auto" else cpus[-1]
    if iam not in cpus:
        raise SystemExit(f"--iam-cpu {iam}: this process may only use CPUs {cpus}")
    return {iam}, set(cpus) - {iam}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=int, default=25)
    parser.add_argument("--logins", type=int, default=40, help="logins per hub and phase")
    parser.add_argument("--warm-up", type=int, default=5, help="logins per hub before the timed ones")
    parser.add_argument("--iam-cpu", default="auto",
                        help="the CPU the IAM runs on, alone (default: the last one), or 'shared'")
    args = parser.parse_args()
    split = split_cpus(args.iam_cpu)

    secret = secrets.token_urlsafe(24)
    iam_port = devservices.free_port()
    ports = {name: devservices.free_port() for name in CONFIGS}
    bare_redirect = f"http://127.0.0.1:{devservices.free_port()}/bench/callback"  # never served
    if split:
        os.sched_setaffinity(0, split[0])  # inherited by the IAM and every thread it starts
    iam = devservices.start_dev_iam(
        iam_port, redirect_uris=[f"http://127.0.0.1:{p}/hub/oauth_callback" for p in ports.values()] + [bare_redirect],
        client_id=CLIENT_ID, client_secret=secret, stdout=subprocess.DEVNULL)
    if split:
        os.sched_setaffinity(0, split[1])  # the hubs, their proxies and this client
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
            for _ in range(args.warm_up):
                for url, _ in hubs.values():
                    callback_seconds(url, iam_url)  # discovery, JWKS, the user's first login, lazy imports

            httpx.post(control, json={"delay_ms": args.delay_ms})
            timings = {name: [] for name in hubs}
            for i in range(args.logins):
                order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
                for name in order:
                    timings[name].append(callback_seconds(hubs[name][0], iam_url))

            alone = asyncio.run(iam_alone(endpoints, secret, bare_redirect, args.logins))

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
    quartiles = {name: statistics.quantiles(t, n=4) for name, t in timings.items()}
    per_login = {name: cpu[name] / args.logins for name in hubs}
    print(f"JupyterHub {__import__('jupyterhub').__version__}; {args.logins} logins per hub and phase, interleaved")
    print(f"the IAM on CPU {sorted(split[0])}, the hubs, proxies and client on CPUs {sorted(split[1])}" if split
          else "the IAM shares the CPUs with the hubs, proxies and client")
    print(f"callback with {args.delay_ms} ms per IAM request (median):")
    for name, label in (("dlaas", "DLaaSAuthenticator (id_token check, 2 token exchanges)"),
                        ("stock", "stock GenericOAuthenticator (no exchange)")):
        q1, _, q3 = quartiles[name]
        print(f"  {label + ':':56s}{medians[name] * 1000:7.1f} ms"
              f"   (quartiles {q1 * 1000:.1f} to {q3 * 1000:.1f} ms)")
    low, high = ratio_interval(timings["dlaas"], timings["stock"])
    print(f"  ratio DLaaS / stock: {medians['dlaas'] / medians['stock']:.2f} (target <= 1.00); "
          f"95 % bootstrap interval {low:.2f} to {high:.2f}")
    waits = {"dlaas": alone["code exchange"] + alone["two exchanges"],
             "stock": alone["code exchange"] + alone["userinfo"]}
    print(f"the same IAM requests from a bare client (median): code exchange {alone['code exchange'] * 1000:.1f} ms, "
          f"then userinfo {alone['userinfo'] * 1000:.1f} ms (stock) or two concurrent exchanges "
          f"{alone['two exchanges'] * 1000:.1f} ms (DLaaS)")
    own = {name: (medians[name] - waits[name]) * 1000 for name in hubs}
    print(f"  callback time beyond those IAM answers (the hub's, the proxy's and the client's own): "
          f"DLaaS {own['dlaas']:.1f} ms, stock {own['stock']:.1f} ms")
    print("hub CPU per login, 0 ms IAM delay (including the login's page requests):")
    print(f"  DLaaSAuthenticator: {per_login['dlaas'] * 1000:6.1f} ms   stock: {per_login['stock'] * 1000:6.1f} ms"
          f"   ratio {per_login['dlaas'] / per_login['stock']:.2f}")


if __name__ == "__main__":
    main()
