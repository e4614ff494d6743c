"""`datalake upload` of many small files against the development Rucio server: files per second and
Rucio requests per 100 files (the target: a handful per batch of 100, never one per file).

    .venv/bin/python -m benchmarks.datalake_upload [--files 1000]

Starts the development Rucio server (sqlite, one gunicorn worker and thread) in a temporary
directory and uploads as its root account (no IAM needed), through the same Uploader the command
uses, with Rucio's own client in .venv-rucio.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from dlaas_hub.dev import devservices, rucioserver

RUN = r"""
import sys, time
from pathlib import Path
from rucio.client import Client
from dlaas_hub.server.datalake import Settings, Uploader, collect

requests = 0

class Counting(Client):
    def _send_request(self, *args, **kwargs):
        global requests
        requests += 1
        return super()._send_request(*args, **kwargs)

scratch, n = sys.argv[1], int(sys.argv[2])
client = Counting()
try:
    client.add_scope("root", "bench")
except Exception:
    pass
started = time.perf_counter()
files = collect([str(Path(scratch) / "run")], scratch, prefix=f"bench{int(time.time())}.")
collected = time.perf_counter()
before = requests
settings = Settings("JUPYTER-SCRATCHDISK", scratch, "file://localhost/scratch")
with open("/dev/null", "w") as out:
    Uploader(client, settings, scope="bench", rse_expression="EULAKE-1", lifetime_days=0,
             delay_deletion=False, out=out).upload(files)
done = time.perf_counter()
print(f"{len(files)} {collected - started:.3f} {done - collected:.3f} {requests - before}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlaas-bench-rucio-") as tmp:
        work = Path(tmp)
        server = rucioserver.start_rucio(work / "rucio", devservices.free_port(), issuer="http://127.0.0.1:9/")
        try:
            server.bootstrap({"users": [], "datasets": [], "rses": [
                {"name": "EULAKE-1", "prefix": "/eos/eulake_1", "local_dir": str(work / "eos")},
                {"name": "JUPYTER-SCRATCHDISK", "prefix": "/scratch", "local_dir": str(work / "scratch"),
                 "scratch": True}]})
            run = work / "scratch" / "run"
            run.mkdir(parents=True)
            for i in range(args.files):
                (run / f"f{i:05d}.dat").write_text(f"file {i}\n")
            started = time.perf_counter()
            result = subprocess.run([rucioserver.rucio_bin("python"), "-c", RUN, str(work / "scratch"),
                                     str(args.files)], env=server.environ(), capture_output=True, text=True,
                                    check=False)
            wall = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(result.stderr[-3000:])
            files, collect_s, upload_s, requests = result.stdout.split()
            files, requests = int(files), int(requests)
            print(f"datalake upload of {files} small files to the development Rucio (sqlite, 1 worker):")
            print(f"  collect (stat + adler32): {float(collect_s):.2f} s")
            print(f"  register + rules:         {float(upload_s):.2f} s  ->  {files / float(upload_s):.0f} files/s")
            print(f"  Rucio requests:           {requests} ({100 * requests / files:.1f} per 100 files)")
            print(f"  whole command (with the client's start): {wall:.2f} s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
