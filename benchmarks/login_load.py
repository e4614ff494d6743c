"""A workshop signing in together: DLaaSAuthenticator's hub against the stock GenericOAuthenticator's.

One process tree on loopback: the development IAM (answering each request after ``--delay-ms``,
on a CPU of its own when there are two or more) with ``--users`` accounts, and two hubs of the same
JupyterHub, one signing in with DLaaSAuthenticator (verified id_token, groups, two token exchanges,
everything bounded by ``iam_concurrency_limit``), one with the stock GenericOAuthenticator (code
exchange and userinfo). Each hub gets every user signed in, ``--concurrency`` at a time, each a
first sign-in as a browser does it; the hubs take turns, ``--batch`` sign-ins at a time. Two
identical hubs do not cost the same: the one started first spends 2 to 3 % more CPU per sign-in
(measured with the same configuration on both sides, either way round), so each of ``--rounds``
(2) starts a fresh IAM and both hubs, in the other order each time. Printed per
hub: logins per second, the OAuth callback's p50 and p95, and the hub process's CPU per login
(schedstat); then the throughput and CPU ratios (targets: throughput at or above 0.90 of stock's,
CPU within 1.1x).

    .venv/bin/python -m benchmarks.login_load [--users 100] [--concurrency 15] [--delay-ms 25] [--together] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dlaas_hub.dev import devservices

from . import loadkit

CONFIGS = {"dlaas": devservices.DEMO_CONFIG, "stock": Path(__file__).with_name("stock_hub_config.py")}


def batch(hub_url: str, iam: loadkit.IAM, pid: int, names: list[str], concurrency: int, into: dict) -> None:
    """Sign ``names`` in, ``concurrency`` at a time; add wall time, CPU and callback times to ``into``."""
    cpu, wall = loadkit.cpu_seconds(pid), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        into["callbacks"] += list(pool.map(lambda n: loadkit.sign_in(hub_url, iam.url, n), names))
    into["wall"] += time.perf_counter() - wall
    time.sleep(0.2)  # the hub's bookkeeping after the last answer
    spent = loadkit.cpu_seconds(pid) - cpu
    into["cpu"] += spent
    into["per_batch"].append(spent / len(names))


def ratio(dlaas: dict, stock: dict) -> float:
    return (dlaas["cpu"] / len(dlaas["callbacks"])) / (stock["cpu"] / len(stock["callbacks"]))


def run_round(args, configs: dict, order: list[str], users: int) -> dict:
    """One IAM, both hubs started in ``order``, ``users`` sign-ins each; the figures per hub."""
    ports = {name: devservices.free_port() for name in order}
    names = [loadkit.user_name(i) for i in range(users)]
    warm = [loadkit.user_name(users + i) for i in range(args.warm_up)]
    results = {name: {"callbacks": [], "wall": 0.0, "cpu": 0.0, "per_batch": []} for name in order}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as hubs:
        iam = loadkit.IAM(Path(tmp), users + args.warm_up,
                          [f"http://127.0.0.1:{p}/hub/oauth_callback" for p in ports.values()])
        hubs.callback(devservices.stop, iam.proc)
        running = {name: hubs.enter_context(loadkit.hub(Path(tmp), name, configs[name], iam, ports[name]))
                   for name in order}
        for url, _, _ in running.values():
            for user in warm:
                loadkit.sign_in(url, iam.url, user)  # discovery, JWKS, lazy imports
        iam.set(delay_ms=args.delay_ms, reset_stats=True)
        # Both hubs sign everyone in, a batch at a time, taking turns (and turns at going first), so
        # that whatever else the machine does falls on both alike.
        def turn(name: str, start: int) -> None:
            url, proc, _ = running[name]
            batch(url, iam, proc.pid, names[start:start + args.batch], args.concurrency, results[name])

        for i, start in enumerate(range(0, len(names), args.batch)):
            turn_order = order if i % 2 == 0 else list(reversed(order))
            if args.together:
                with ThreadPoolExecutor(len(turn_order)) as hubs_at_once:
                    list(hubs_at_once.map(turn, turn_order, [start] * len(turn_order)))
            else:
                for name in turn_order:
                    turn(name, start)
        for name, (_, proc, _) in running.items():
            results[name]["rss"] = loadkit.rss_mib(proc.pid)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="sign-ins per hub, over all rounds")
    parser.add_argument("--concurrency", type=int, default=15)
    parser.add_argument("--delay-ms", type=int, default=25)
    parser.add_argument("--warm-up", type=int, default=5, help="sign-ins per hub before the measured ones")
    parser.add_argument("--batch", type=int, default=30, help="sign-ins per hub and turn")
    parser.add_argument("--together", action="store_true",
                        help="both hubs sign their batch in at the same time, sharing the CPU, instead of taking "
                             "turns: slower for both, but the machine's drift falls on both alike (the CPU ratio "
                             "then moves by about 0.01 from turn to turn, not 0.1)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="fresh IAM and hubs per round, the hubs started in the other order each round: of two "
                             "identical hubs, the one started first spends 2 to 3 %% more CPU per sign-in")
    parser.add_argument("--against-itself", action="store_true",
                        help="both hubs sign in with DLaaSAuthenticator: what the method itself shows between two "
                             "identical hubs")
    args = parser.parse_args()
    configs = dict(CONFIGS, stock=CONFIGS["dlaas"]) if args.against_itself else CONFIGS
    labels = {"dlaas": "DLaaSAuthenticator",
              "stock": "DLaaSAuthenticator (again)" if args.against_itself else "stock GenericOAuthenticator"}

    results = {name: {"callbacks": [], "wall": 0.0, "cpu": 0.0, "per_batch": []} for name in CONFIGS}
    rounds = []
    own_cpu = loadkit.split_cpus() is not None
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    per_round = -(-args.users // args.rounds)
    for r in range(args.rounds):
        order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
        count = min(per_round, args.users - r * per_round)
        if count <= 0:
            break
        if cpus is not None:
            os.sched_setaffinity(0, cpus)  # the last round left this process on the hubs' CPUs
        this = run_round(args, configs, order, count)
        rounds.append((order[0], ratio(this["dlaas"], this["stock"])))
        for name, figures in this.items():
            for key in ("callbacks", "per_batch"):
                results[name][key] += figures[key]
            for key in ("wall", "cpu"):
                results[name][key] += figures[key]
            results[name]["rss"] = figures["rss"]
    for r in results.values():
        r.update(throughput=len(r["callbacks"]) / r["wall"], p50=statistics.median(r["callbacks"]),
                 p95=loadkit.percentile(r["callbacks"], 95), cpu=r["cpu"] / len(r["callbacks"]))

    print(f"JupyterHub {__import__('jupyterhub').__version__}; {args.users} first sign-ins per hub, "
          f"{args.concurrency} at a time; the IAM answers each request after {args.delay_ms} ms"
          + (" on a CPU of its own" if own_cpu else " (shared CPU)")
          + ("; the two hubs at the same time" if args.together else "; the two hubs taking turns"))
    for name, label in labels.items():
        r = results[name]
        print(f"  {label + ':':30s}{r['throughput']:6.2f} logins/s   callback p50 {r['p50'] * 1000:6.0f} ms "
              f"p95 {r['p95'] * 1000:6.0f} ms   hub CPU {r['cpu'] * 1000:5.1f} ms/login   "
              f"hub RSS {r['rss']:.0f} MiB")
    d, s = results["dlaas"], results["stock"]
    print(f"  throughput ratio DLaaS / stock: {d['throughput'] / s['throughput']:.2f} (target >= 0.90); "
          f"hub CPU per login ratio: {d['cpu'] / s['cpu']:.2f} (target <= 1.10)")
    if len(rounds) > 1:
        shown = ", ".join(f"{value:.2f} ({'DLaaS' if first == 'dlaas' else 'other'} hub started first)"
                          for first, value in rounds)
        balanced = statistics.geometric_mean(value for _, value in rounds)
        print(f"  hub CPU per login ratio by round: {shown}; geometric mean {balanced:.2f}")
    # The machine's drift moves whole runs; the two hubs' batches of one turn share it.
    turns = sorted(a / b for a, b in zip(d["per_batch"], s["per_batch"]))
    print(f"  hub CPU per login ratio, turn by turn ({len(turns)} turns): median {statistics.median(turns):.2f}, "
          f"middle half {loadkit.percentile(turns, 25):.2f} to {loadkit.percentile(turns, 75):.2f}")


if __name__ == "__main__":
    main()
