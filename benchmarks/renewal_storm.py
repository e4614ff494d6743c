"""Tokens falling due together: every user's token agents ask the hub at once.

One process tree on loopback: the development IAM (``--delay-ms`` per request, on a CPU of its own
when there are two or more, rotating refresh tokens) and a hub with the demo's configuration. Every
one of ``--users`` signs in; once all their tokens are due, each user's credentials are asked for
``--asks`` times at once (as several servers' token agents would), through the real endpoint at the
hub's own API address, which is where an agent's ``JUPYTERHUB_API_URL`` points (in z2jh
``http://hub:8081/hub/api``): a token agent does not go through the proxy.

Printed: the answers' p50/p95/max, the IAM's requests by grant and the duplicates (refreshes beyond
one per user, exchanges beyond one per user and target), the IAM's peak concurrency against the
hub's bound, the IAM's busy span and the target (p95 within 1.25x that span plus 1 s), the hub's
event-loop stalls, and its memory: at rest, per signed-in user, and after the storm. Then the same
requests again with every token fresh: the credentials endpoint's own cost, with no renewal.

    .venv/bin/python -m benchmarks.renewal_storm [--users 100] [--asks 3] [--delay-ms 25] [--limit 10]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx

from dlaas_hub.dev import devservices

from . import loadkit

CONFIG = Path(__file__).with_name("storm_hub_config.py")


def agent_tokens(hub_url: str, admin_token: str, names: list[str]) -> dict[str, str]:
    """One API token per user with the scopes of a server's token agent (the user's own)."""
    tokens = {}
    with httpx.Client(timeout=60, headers={"Authorization": f"token {admin_token}"}) as client:
        for name in names:
            r = client.post(f"{hub_url}/hub/api/users/{name}/tokens", json={
                "scopes": ["custom:dlaas:tokens!user", "access:servers!user"], "note": "storm agent"})
            r.raise_for_status()
            tokens[name] = r.json()["token"]
    return tokens


async def storm(hub_url: str, tokens: dict[str, str], asks: int) -> list[tuple[float, int, int | None]]:
    # aiohttp, not httpx: with thousands of connections open at once, httpx's pool costs its client
    # about 10 ms of CPU per request (against 4 at a hundred), on the CPU the hub runs on.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def one(name):
            started = time.perf_counter()
            async with session.get(f"{hub_url}/hub/api/dlaas/users/{name}/credentials", params={"server": ""},
                                   headers={"Authorization": f"token {tokens[name]}"}) as r:
                body = await r.json() if r.status == 200 else {}
            return time.perf_counter() - started, r.status, body.get("expires_at")
        return await asyncio.gather(*(one(n) for n in tokens for _ in range(asks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--asks", type=int, default=3, help="credentials requests per user, all at once")
    parser.add_argument("--delay-ms", type=int, default=25)
    parser.add_argument("--limit", type=int, default=10, help="DLaaSAuthenticator.iam_concurrency_limit")
    parser.add_argument("--concurrency", type=int, default=15, help="sign-ins at a time, before the storm")
    parser.add_argument("--lifetime", type=int, default=120,
                        help="seconds, of the access and exchanged tokens; more than twice the storm's length, "
                             "so that the second round finds them fresh")
    args = parser.parse_args()

    names = [loadkit.user_name(i) for i in range(args.users)]
    port = devservices.free_port()
    api_port = devservices.free_port()
    hub_direct = f"http://127.0.0.1:{api_port}"
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        iam = loadkit.IAM(Path(tmp), args.users, [f"http://127.0.0.1:{port}/hub/oauth_callback"],
                          extra_args=[f"--access-token-ttl={args.lifetime}", f"--exchange-token-ttl={args.lifetime}",
                                      "--rotate-refresh-tokens"])
        try:
            with loadkit.hub(Path(tmp), "storm", CONFIG, iam, port, storm_token=token, hub_internal_port=api_port,
                             refresh_margin=args.lifetime / 2, iam_concurrency_limit=args.limit) as (url, proc, log):
                rest = loadkit.rss_mib(proc.pid)
                with ThreadPoolExecutor(args.concurrency) as pool:
                    list(pool.map(lambda n: loadkit.sign_in(url, iam.url, n), names))
                signed_in = time.time()
                agents = agent_tokens(hub_direct, token, names)
                time.sleep(1)
                loaded = loadkit.rss_mib(proc.pid)
                time.sleep(max(0.0, args.lifetime / 2 + 1 - (time.time() - signed_in)))  # everyone's tokens are due
                iam.set(delay_ms=args.delay_ms, reset_stats=True)
                lag_before = loadkit.loop_lag_histogram(url, token)
                log_offset = log.stat().st_size
                cpu = loadkit.cpu_seconds(proc.pid)
                started, clients_cpu = time.perf_counter(), time.process_time()
                answers = asyncio.run(storm(hub_direct, agents, args.asks))
                wall, clients_cpu = time.perf_counter() - started, time.process_time() - clients_cpu
                cpu = loadkit.cpu_seconds(proc.pid) - cpu
                stats = iam.stats()
                lag = loadkit.worst_lag(lag_before, loadkit.loop_lag_histogram(url, token))
                stalls = loadkit.loop_stalls(log, log_offset)
                after = loadkit.rss_mib(proc.pid)
                # The same requests again, everything fresh: the endpoint's own cost, without renewals.
                time.sleep(1)
                fresh_cpu = loadkit.cpu_seconds(proc.pid)
                again = asyncio.run(storm(hub_direct, agents, args.asks))
                fresh_cpu = loadkit.cpu_seconds(proc.pid) - fresh_cpu
                asked_again = iam.stats()["requests"].get("/token", 0) - stats["requests"].get("/token", 0)
        finally:
            devservices.stop(iam.proc)

    times = [t for t, _, _ in answers]
    statuses = {s for _, s, _ in answers}
    fresh = sum(1 for _, s, exp in answers if s == 200 and exp and exp > signed_in + args.lifetime / 2)
    grants = stats["grants"]
    refreshes = grants.get("refresh_token", 0)
    exchanges = grants.get("urn:ietf:params:oauth:grant-type:token-exchange", 0)
    busy = (stats["last_answer_ms"] - stats["first_request_ms"]) / 1000 if stats["first_request_ms"] else 0.0
    p95 = loadkit.percentile(times, 95)
    print(f"JupyterHub {__import__('jupyterhub').__version__}; {args.users} users, {args.asks} credentials requests "
          f"each at once ({len(answers)}); IAM {args.delay_ms} ms per request; iam_concurrency_limit {args.limit}")
    print(f"  answers: HTTP {sorted(statuses)}, {fresh} of {len(answers)} with renewed tokens; "
          f"p50 {statistics.median(times):.2f} s, p95 {p95:.2f} s, max {max(times):.2f} s; storm over in {wall:.2f} s")
    print(f"  IAM requests by grant: {grants}; errors: {stats['grantErrors'] or 'none'}")
    print(f"  duplicates: {refreshes - args.users} refreshes, {exchanges - 2 * args.users} exchanges beyond one per "
          f"user and target")
    print(f"  IAM peak concurrency {stats['peak_in_flight']} (bound {args.limit}); IAM busy span {busy:.2f} s; "
          f"p95 target {1.25 * busy + 1:.2f} s: {'met' if p95 <= 1.25 * busy + 1 else 'MISSED'}")
    print(f"  hub CPU in the storm {cpu:.2f} s ({cpu / len(answers) * 1000:.1f} ms per credentials request); "
          f"event loop: worst tick lag <= {lag:.3f} s, stalls logged (>= 1 s): {stalls or 'none'}")
    print(f"  the agents' side (this process, on the hub's CPU): {clients_cpu:.2f} s of CPU in the storm")
    again_times = [t for t, _, _ in again]
    print(f"  the same {len(again)} requests with every token fresh: p50 {statistics.median(again_times):.2f} s, "
          f"p95 {loadkit.percentile(again_times, 95):.2f} s, hub CPU {fresh_cpu / len(again) * 1000:.1f} ms per "
          f"request, {asked_again} requests to the IAM")
    print(f"  hub RSS: {rest:.0f} MiB at rest, {loaded:.0f} MiB with {args.users} signed in "
          f"({(loaded - rest) * 1024 / args.users:.0f} KiB per user), {after:.0f} MiB after the storm")


if __name__ == "__main__":
    main()
