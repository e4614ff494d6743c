"""What the load benchmarks share: a development IAM with many users, hubs, sign-ins, measurements.

One process tree on loopback. The IAM stands for another machine: with two or more CPUs it runs
on a CPU of its own (as in ``login_vs_stock``), the hubs, their proxies and the clients on the others.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import statistics
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx

from dlaas_hub.dev import devservices

CLIENT_ID = "dlaas-hub-load"


def user_name(i: int) -> str:
    return f"load{i:04d}"


def password(name: str) -> str:
    return f"pw-{name}"


def write_users(path: Path, count: int) -> None:
    users = [{"username": user_name(i), "password": password(user_name(i)), "sub": str(uuid.uuid4()),
              "name": f"Load User {i}", "email": f"{user_name(i)}@load.example", "groups": ["escape"]}
             for i in range(count)]
    path.write_text(json.dumps({"users": users}))


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(the IAM's CPU, everyone else's), or None on a single CPU."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return ({cpus[-1]}, set(cpus[:-1])) if len(cpus) >= 2 else None


def cpu_seconds(pid: int) -> float:
    """The CPU time of the process's threads from schedstat, to the nanosecond.

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms), charged to whoever runs at each tick: over
    logins of about 10 ms each that would be off by a millisecond per login, run to run.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            pass  # the thread ended meanwhile
    return total / 1e9


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


class IAM:
    def __init__(self, tmp: Path, users: int, redirect_uris: list[str], *, extra_args=()):
        self.secret = secrets.token_urlsafe(24)
        self.port = devservices.free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.control = f"{self.url}_dev/control"
        users_file = tmp / "users.json"
        write_users(users_file, users)
        split = split_cpus()
        if split:
            os.sched_setaffinity(0, split[0])  # inherited by the IAM and every thread it starts
        try:
            self.proc = devservices.start_dev_iam(
                self.port, redirect_uris=redirect_uris, client_id=CLIENT_ID, client_secret=self.secret,
                extra_args=[f"--users={users_file}", *extra_args], stdout=subprocess.DEVNULL)
        finally:
            if split:
                os.sched_setaffinity(0, split[1])
        self.endpoints = httpx.get(f"{self.url}.well-known/openid-configuration").json()

    def set(self, **update) -> dict:
        return httpx.post(self.control, json=update).json()

    def stats(self) -> dict:
        return httpx.get(self.control).json()["stats"]


@contextmanager
def hub(tmp: Path, name: str, config: Path, iam: IAM, port: int, **extra):
    workdir = tmp / name
    workdir.mkdir()
    settings = devservices.hub_settings(
        workdir, hub_port=port, iam_url=iam.url, client_id=CLIENT_ID, client_secret=iam.secret,
        crypt_key=secrets.token_hex(32), endpoints=iam.endpoints, **extra)
    proc, log = devservices.start_hub(workdir, config, settings, unset=("JUPYTERHUB_CRYPT_KEY",))
    try:
        yield settings["hub_url"], proc, log
    finally:
        devservices.stop(proc)


def sign_in(hub_url: str, iam_url: str, name: str) -> float:
    """One whole sign-in as a browser; returns the time of the hub's OAuth callback."""
    import time

    client, callback = devservices.login_until_callback(hub_url, iam_url, name, password(name))
    try:
        assert isinstance(callback, str), f"{name}: the sign-in stopped before the callback: {callback.status_code}"
        started = time.perf_counter()
        response = client.get(callback)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, f"{name}: callback answered {response.status_code}"
        return elapsed
    finally:
        client.close()


_LAG = re.compile(r"Event loop was unresponsive for at least ([0-9.]+)s")


def loop_stalls(log: Path, since: int = 0) -> list[float]:
    """The stalls JupyterHub logged ("Event loop was unresponsive", 1 s and more) after byte ``since``."""
    with log.open(errors="replace") as f:
        f.seek(since)
        return [float(m.group(1)) for m in _LAG.finditer(f.read())]


def loop_lag_histogram(hub_url: str, token: str) -> dict[float, float]:
    """JupyterHub's ``jupyterhub_event_loop_interval_seconds`` buckets: {upper bound: count}."""
    text = httpx.get(f"{hub_url}/hub/metrics", headers={"Authorization": f"token {token}"}).text
    buckets = {}
    for m in re.finditer(r'jupyterhub_event_loop_interval_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)', text):
        buckets[float(m.group(1))] = float(m.group(2))
    return buckets


def worst_lag(before: dict[float, float], after: dict[float, float]) -> float:
    """The smallest bucket bound below which every tick of the interval fell (the worst lag, rounded up)."""
    total = max(after.values(), default=0) - max(before.values(), default=0)
    for bound in sorted(after):
        if after[bound] - before.get(bound, 0) >= total:
            return bound
    return float("inf")
