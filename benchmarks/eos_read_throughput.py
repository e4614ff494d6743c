"""Reading a 1 GiB data-lake file over root:// (TLS, ztn, the EOS token) from the storage standing in
for EOS, against reading a local copy of it: MiB/s per way, median of the runs.

    .venv/bin/python -m benchmarks.eos_read_throughput [--size-mib 1024] [--runs 3]

Starts XRootD with the SciTokens plugin (dlaas_hub.dev.xrootdserver, Debian's xrootd packages) trusting
a key made here, writes the file into its namespace and a copy beside it, and reads both with:
``xrdcp`` to /dev/null (what a terminal does), XRootD's Python bindings in 8 MiB reads (what a kernel
does; .venv-singleuser's ``xrootd`` wheel) and https with ``curl`` (XrdHttp); the local copy with
``cat`` and Python. Everything runs on this machine, so the figures are the protocol's and TLS's cost
over loopback, with the file in the page cache, not a network's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from dlaas_hub.dev import devservices, xrootdserver

ISSUER = "http://127.0.0.1:9/bench-issuer/"  # never fetched: the server gets its key in its key cache
SINGLEUSER_PYTHON = devservices.REPO_ROOT / ".venv-singleuser" / "bin" / "python"
CHUNK = 8 * 1024 * 1024

PYTHON_XROOTD = r"""
import sys, time
from XRootD import client
started = time.perf_counter()
total = 0
with client.File() as f:
    status, _ = f.open(sys.argv[1])
    assert status.ok, status.message
    offset = 0
    while True:
        status, data = f.read(offset, 8 * 1024 * 1024)
        assert status.ok, status.message
        if not data:
            break
        offset += len(data)
print(offset, time.perf_counter() - started)
"""

PYTHON_LOCAL = r"""
import sys, time
started = time.perf_counter()
total = 0
with open(sys.argv[1], "rb", buffering=0) as f:
    while chunk := f.read(8 * 1024 * 1024):
        total += len(chunk)
print(total, time.perf_counter() - started)
"""


def key_and_token(audience: str) -> tuple[dict, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench", alg="RS256", use="sig")
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "sub": "bench", "aud": audience, "iat": now, "nbf": now, "exp": now + 3600,
                        "jti": str(uuid.uuid4()), "scope": "openid"}, key, algorithm="RS256", headers={"kid": "bench"})
    return {"keys": [jwk]}, token


def write_file(path: Path, size_mib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1024 * 1024)
    with path.open("wb") as f:
        for i in range(size_mib):
            f.write(block[i % 7:] + block[:i % 7])  # not one block repeated: nothing compresses or dedups
    path.chmod(0o644)


def timed(args: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {result.stderr[-2000:]}")
    return elapsed


def python_timed(code: str, target: str, env: dict | None = None) -> float:
    result = subprocess.run([str(SINGLEUSER_PYTHON), "-c", code, target], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"python read failed: {result.stderr[-2000:]}")
    return float(result.stdout.split()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    jwks, token = key_and_token(xrootdserver.EOS_AUDIENCE)
    server = xrootdserver.start_xrootd(root_port=devservices.free_port(), https_port=devservices.free_port(),
                                       issuer=ISSUER, jwks=jwks)
    with tempfile.TemporaryDirectory() as work:
        try:
            token_file = Path(work) / "eos-bearer-token"
            token_file.write_text(token)
            token_file.chmod(0o600)
            served = server.data_dir / "bench" / "1g.bin"
            local = Path(work) / "1g.bin"
            print(f"writing {args.size_mib} MiB into the storage's namespace and a local copy...", flush=True)
            write_file(served, args.size_mib)
            write_file(local, args.size_mib)
            url = f"{server.root_url}//eos/eulake_1/bench/1g.bin"
            env = {**os.environ, **server.client_env(), "BEARER_TOKEN_FILE": str(token_file),
                   "XRD_CONNECTIONRETRY": "1"}
            ways = {
                "local copy, cat": lambda: timed(["cat", str(local)]),
                "root://, xrdcp": lambda: timed(["xrdcp", "-f", "-s", url, "/dev/null"], env),
                "https://, curl": lambda: timed(["curl", "-sS", "--fail", "-o", "/dev/null", "--cacert",
                                                 str(server.tls.ca), "-H", f"Authorization: Bearer {token}",
                                                 f"{server.https_url}/eos/eulake_1/bench/1g.bin"]),
            }
            if SINGLEUSER_PYTHON.exists():
                ways["local copy, Python 8 MiB reads"] = lambda: python_timed(PYTHON_LOCAL, str(local))
                ways["root://, XRootD Python 8 MiB reads"] = lambda: python_timed(PYTHON_XROOTD, url, env)
            else:
                print(f"({SINGLEUSER_PYTHON} is missing: ./scripts/test installs it; Python reads skipped)")
            print(f"{args.size_mib} MiB, median of {args.runs} runs (the file in the page cache):")
            local_rate = None
            for name, run in ways.items():
                run()  # warm: the page cache, the TLS session, the key cache
                seconds = statistics.median(run() for _ in range(args.runs))
                rate = args.size_mib / seconds
                local_rate = local_rate or rate
                print(f"  {name:38s} {seconds:7.2f} s {rate:9.0f} MiB/s  {rate / local_rate:6.1%} of the local copy")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
