"""Which HTTP client for the token agent: what each costs a fresh process for one GET to the hub.

The agent asks the hub a few times an hour from every user pod, so the client's resident memory and
start-up matter, not its throughput. Each candidate runs in a new interpreter (the agent's own: the
same site-packages) that imports it, makes one GET of a JSON answer from a local HTTP server, and
reports its modules, the time taken (import included) and its resident memory. ``http.client`` is
measured as the agent uses it: without TLS for a plain-HTTP hub (``ssl`` kept out), and with it.

    .venv/bin/python -m benchmarks.agent_http_clients [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROBE = r"""
import sys, time
which, url = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if which == "httpx + asyncio (the former agent)":
    import asyncio, httpx
    async def get():
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).json()
    answer = asyncio.run(get())
elif which == "httpx, synchronous":
    import httpx
    with httpx.Client() as client:
        answer = client.get(url).json()
elif which == "urllib3":
    import json, urllib3
    answer = json.loads(urllib3.PoolManager().request("GET", url).data)
elif which.startswith("http.client"):
    if "no TLS" in which:
        sys.modules["ssl"] = None
    import http.client, json, urllib.parse
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", parts.path)
    answer = json.loads(connection.getresponse().read())
elapsed = time.perf_counter() - started
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
assert answer == {"files": []}
print(f"{len(sys.modules)} {elapsed} {rss}")
"""

CLIENTS = ["httpx + asyncio (the former agent)", "httpx, synchronous", "urllib3", "http.client (with TLS loaded)",
           "http.client, no TLS (the agent, plain-HTTP hub)"]


class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"files": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per client (medians printed)")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hub/api/dlaas/users/u/credentials"
    print(f"One GET from a fresh Python {sys.version.split()[0]} process, median of {args.runs}:")
    try:
        for client in CLIENTS:
            runs = []
            for _ in range(args.runs):
                out = subprocess.run([sys.executable, "-c", PROBE, client, url], capture_output=True, text=True,
                                     check=True).stdout.split()
                runs.append((int(out[0]), float(out[1]), float(out[2])))
            modules, elapsed, rss = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"  {client:50s} {modules:4.0f} modules  {elapsed * 1000:5.0f} ms  RSS {rss:5.1f} MiB")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
