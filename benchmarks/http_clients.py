"""Which async HTTP client should carry the hub's requests to the provider: CPU per request.

Every login makes three token-endpoint POSTs (code exchange, two token exchanges) and every renewal
one or more, all from the hub's single event loop, so the client's own CPU cost per request is
what a busy hub pays. This compares, on one pooled keep-alive client each:

- httpx (``httpx.AsyncClient``, httpcore underneath);
- tornado's ``SimpleAsyncHTTPClient`` (what oauthenticator uses);
- tornado's ``CurlAsyncHTTPClient`` (needs ``pycurl``; skipped without it);
- aiohttp (``aiohttp.ClientSession``).

A token endpoint stand-in runs in a separate process (tornado, form-encoded POST with basic auth,
a 1.5 kB JSON answer after ``--delay-ms``). This process sends ``--requests`` of them,
``--concurrency`` at a time, per client, after a warm-up, and prints the CPU time of this process
per request (``time.process_time``: the client's work only) and the wall-clock throughput.

    .venv/bin/python -m benchmarks.http_clients [--requests 2000] [--concurrency 10] [--delay-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlencode

from dlaas_hub.dev import devservices

ANSWER = json.dumps({"access_token": "x" * 1100, "token_type": "Bearer", "expires_in": 1200,
                     "scope": "openid profile", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
FORM = urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "s" * 1100,
                  "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                  "audience": "eos", "scope": "openid profile"})
AUTH = ("hub-client", secrets.token_urlsafe(24))


def serve(port: int, delay: float) -> None:
    from tornado import ioloop, web

    class Token(web.RequestHandler):
        async def post(self):
            if delay:
                await asyncio.sleep(delay)
            self.set_header("Content-Type", "application/json")
            self.finish(ANSWER)

    async def run():
        web.Application([(r"/token", Token)]).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    ioloop.IOLoop.current()
    asyncio.run(run())


async def with_httpx(url, n, concurrency):
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one():
            r = await client.post(url, content=FORM, auth=AUTH,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
            json.loads(r.content)
        await run_all(one, n, concurrency)


def tornado_runner(impl):
    async def run(url, n, concurrency):
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        AsyncHTTPClient.configure(impl, max_clients=concurrency)
        client = AsyncHTTPClient(force_instance=True)
        basic = "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()

        async def one():
            r = await client.fetch(HTTPRequest(url, method="POST", body=FORM, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Authorization": basic}))
            json.loads(r.body)
        try:
            await run_all(one, n, concurrency)
        finally:
            client.close()
    return run


async def with_aiohttp(url, n, concurrency):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auth=aiohttp.BasicAuth(*AUTH)) as session:
        async def one():
            async with session.post(url, data=FORM, headers={
                    "Content-Type": "application/x-www-form-urlencoded"}) as r:
                json.loads(await r.read())
        await run_all(one, n, concurrency)


async def run_all(one, n, concurrency):
    remaining = iter(range(n))

    async def worker():
        for _ in remaining:
            await one()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def clients() -> dict:
    found = {"httpx": with_httpx, "tornado simple": tornado_runner("tornado.simple_httpclient.SimpleAsyncHTTPClient")}
    try:
        import pycurl  # noqa: F401
        found["tornado curl"] = tornado_runner("tornado.curl_httpclient.CurlAsyncHTTPClient")
    except ImportError:
        print("tornado curl: skipped (pip install pycurl)")
    try:
        import aiohttp  # noqa: F401
        found["aiohttp"] = with_aiohttp
    except ImportError:
        print("aiohttp: skipped (pip install aiohttp)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--delay-ms", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per client (the median is shown)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.delay_ms / 1000)

    port = devservices.free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.http_clients", "--serve", str(port),
                               "--delay-ms", str(args.delay_ms)])
    url = f"http://127.0.0.1:{port}/token"
    try:
        wait_for_port(port)
        found = clients()
        results = {name: [] for name in found}
        for _ in range(args.rounds):
            for name, run in found.items():  # interleaved, so drift hits every client alike
                asyncio.run(run(url, 50, args.concurrency))  # warm-up: imports, connections
                cpu, wall = time.process_time(), time.perf_counter()
                asyncio.run(run(url, args.requests, args.concurrency))
                results[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    finally:
        server.terminate()
        server.wait()
    print(f"{args.requests} token-endpoint POSTs per round, {args.concurrency} at a time, "
          f"{args.delay_ms} ms server delay; median of {args.rounds} rounds")
    base = None
    for name, rounds in results.items():
        cpu = statistics.median(c for c, _ in rounds) / args.requests
        wall = statistics.median(w for _, w in rounds)
        base = base or cpu
        print(f"  {name + ':':16s} CPU {cpu * 1e6:7.0f} us/request ({cpu / base:.2f}x httpx)   "
              f"{args.requests / wall:7.0f} requests/s")


if __name__ == "__main__":
    main()
