"""What one token agent costs: start-up, resident memory over hours of renewals, CPU per round.

Every user pod runs one agent as a sidecar, so its memory request times the number of servers is
what the cluster reserves for it. One process tree on loopback: the development IAM with short
exchanged tokens (``--lifetime``), a hub with the demo's configuration (renewing at half the life),
one signed-in user, and the agent as the spawner runs it (``dlaas-hub token-agent``, the server's
environment, its API token's scopes), for ``--minutes``. With ``--baseline REF`` the agent of that
git revision runs the same course first (its package exported from git beside this one), for
the figures side by side.

Printed per agent: the time from its start until the first files are in place (the sidecar's
startup probe waits for that), its resident memory right after that and over the run (sampled every
``--sample`` seconds: start, max, end), its rounds and CPU per round (from schedstat, to the
nanosecond), and the shared libraries it maps (TLS's or not).

    .venv/bin/python -m benchmarks.token_agent [--minutes 10] [--lifetime 30] [--baseline HEAD~1]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from dlaas_hub.dev import devservices

from . import loadkit
from .renewal_storm import CONFIG, agent_tokens

ROOT = Path(__file__).resolve().parent.parent
READY = ".dlaas-ready"


def export_package(ref: str, into: Path) -> Path:
    """The dlaas_hub package as it was at ``ref`` (git archive), importable from ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "dlaas_hub"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def libraries_mapped(pid: int) -> str:
    """The shared libraries the agent has mapped (TLS's among them, or not)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    libraries = {line.split()[-1] for line in maps if ".so" in line.split()[-1]}
    tls = sorted(Path(p).name for p in libraries if "ssl" in p or "crypto" in p)
    return f"{len(libraries)} shared libraries mapped ({', '.join(tls) or 'no libssl'})"


def run_agent(label: str, pythonpath: Path, hub_api: str, user: str, token: str, minutes: float, sample: float,
              tmp: Path) -> dict:
    directory = tmp / f"tokens-{label}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env.update(PYTHONPATH=str(pythonpath), JUPYTERHUB_API_URL=hub_api, JUPYTERHUB_API_TOKEN=token,
               JUPYTERHUB_USER=user, JUPYTERHUB_SERVER_NAME="")
    log = (tmp / f"agent-{label}.log").open("w+")
    started = time.perf_counter()
    # As the spawners run it (dlaas-hub token-agent), without the console script's wrapper.
    proc = subprocess.Popen([sys.executable, "-m", "dlaas_hub.ops.cli", "token-agent", "--dir", str(directory),
                             "--margin", "300", "--min-interval", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp)
    try:
        while not (directory / READY).exists():
            if proc.poll() is not None or time.perf_counter() - started > 60:
                log.seek(0)
                raise SystemExit(f"{label}: the agent did not write its files:\n{log.read()[-3000:]}")
            time.sleep(0.005)
        ready = time.perf_counter() - started
        time.sleep(0.5)
        cpu_start, rss = loadkit.cpu_seconds(proc.pid), [loadkit.rss_mib(proc.pid)]
        libraries = libraries_mapped(proc.pid)
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(sample, max(0.0, deadline - time.monotonic())))
            rss.append(loadkit.rss_mib(proc.pid))
        cpu = loadkit.cpu_seconds(proc.pid) - cpu_start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log.seek(0)
    text = log.read()
    rounds = text.count("Credentials up to date") - 1  # after the first, which the start-up includes
    failures = text.count("Could not renew")
    return {"label": label, "ready": ready, "rss": rss, "cpu": cpu, "rounds": rounds, "failures": failures,
            "libraries": libraries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--lifetime", type=int, default=30, help="seconds, of the access and exchanged tokens")
    parser.add_argument("--sample", type=float, default=5, help="seconds between two memory samples")
    parser.add_argument("--baseline", metavar="REF", help="also run the agent of this git revision, first")
    args = parser.parse_args()

    port, api_port = devservices.free_port(), devservices.free_port()
    storm_token = secrets.token_hex(16)
    user = loadkit.user_name(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        iam = loadkit.IAM(tmp, 1, [f"http://127.0.0.1:{port}/hub/oauth_callback"],
                          extra_args=[f"--access-token-ttl={args.lifetime}", f"--exchange-token-ttl={args.lifetime}"])
        try:
            with loadkit.hub(tmp, "agent", CONFIG, iam, port, storm_token=storm_token, hub_internal_port=api_port,
                             refresh_margin=args.lifetime / 2, iam_concurrency_limit=10) as (url, proc, log):
                loadkit.sign_in(url, iam.url, user)
                hub_api = f"http://127.0.0.1:{api_port}/hub/api"
                token = agent_tokens(f"http://127.0.0.1:{api_port}", storm_token, [user])[user]
                agents = []
                if args.baseline:
                    agents.append((f"agent at {args.baseline}", export_package(args.baseline, tmp / "baseline")))
                agents.append(("this agent", ROOT))
                for label, path in agents:
                    results.append(run_agent(label.split()[-1], path, hub_api, user, token, args.minutes, args.sample,
                                             tmp))
                    results[-1]["label"] = label
        finally:
            devservices.stop(iam.proc)

    print(f"Token agent, {args.minutes:g} min against a real hub, tokens living {args.lifetime} s "
          f"(renewed at about {0.7 * args.lifetime:.0f} s); Python {sys.version.split()[0]}")
    for r in results:
        rss = r["rss"]
        per_round = r["cpu"] / r["rounds"] * 1000 if r["rounds"] else float("nan")
        print(f"  {r['label']}: files in place {r['ready'] * 1000:.0f} ms after start; RSS {rss[0]:.1f} MiB at start, "
              f"max {max(rss):.1f}, end {rss[-1]:.1f} MiB; {r['rounds']} rounds ({r['failures']} failed), "
              f"{per_round:.1f} ms CPU per round; {r['libraries']}")


if __name__ == "__main__":
    main()
