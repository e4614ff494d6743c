"""What the Keycloak of the tests costs: time to start and resident memory.

Starts Keycloak as ``tests/integration/test_keycloak.py`` does (dev mode, its file database, the
realm of ``dev-keycloak/escape-realm.json`` imported, a fresh folder each run, so each start includes
dev mode's re-augmentation) ``--runs`` times, one after the other. Printed per run: seconds until the
realm's discovery document answers, and the resident memory of Keycloak's process tree right after
and ``--settle`` seconds later (the JVM's heap grows lazily).

    .venv/bin/python -m benchmarks.keycloak [--runs 3] [--settle 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dlaas_hub.dev import devservices, keycloakserver


def resident_mib(pid: int) -> float:
    """VmRSS of ``pid`` and its descendants, in MiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        status = Path(f"/proc/{current}/status")
        if not status.exists():
            continue
        total += next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            pending += [int(child) for child in children.read_text().split()]
    return total / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=30.0)
    args = parser.parse_args(argv)
    print(f"Keycloak {keycloakserver.VERSION}, Java at {keycloakserver.java_home()}")
    starts, after, settled = [], [], []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="keycloak-bench-") as tmp:
            port = devservices.free_port()
            server = keycloakserver.start_keycloak(
                Path(tmp), port, client_secret="bench", redirect_uris=[f"http://127.0.0.1:{port}/cb"])
            try:
                starts.append(server.started_in)
                after.append(resident_mib(server.proc.pid))
                time.sleep(args.settle)
                settled.append(resident_mib(server.proc.pid))
            finally:
                server.stop()
        print(f"run {run}: started in {starts[-1]:.1f} s; resident {after[-1]:.0f} MiB after start, "
              f"{settled[-1]:.0f} MiB {args.settle:.0f} s later")
    print(f"median of {args.runs}: started in {statistics.median(starts):.1f} s; resident "
          f"{statistics.median(after):.0f} MiB after start, {statistics.median(settled):.0f} MiB settled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
