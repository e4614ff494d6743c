import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from dlaas_hub.server.agent import READY_MARKER, AgentConfig, TokenAgent

USER = "mariaska"
PATH = f"/hub/api/dlaas/users/{USER}/credentials"
DROP, SLOW = "drop the connection", "answer too late"


class FakeHub:
    """A real HTTP server on 127.0.0.1 in the hub's place: answers its credentials endpoint as told,
    and notes each request (path, query, headers)."""

    def __init__(self):
        self.answers: list = []  # consumed first, one per request
        self.default = (200, {}, {})
        self.requests: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                hub.requests.append({"path": parts.path, "query": parse_qs(parts.query, keep_blank_values=True),
                                     "headers": dict(self.headers)})
                answer = hub.answers.pop(0) if hub.answers else hub.default
                if answer == DROP:
                    self.close_connection = True
                    return  # nothing sent: the client meets a closed connection
                if answer == SLOW:
                    time.sleep(1.5)
                    return
                status, body, headers = answer
                payload = json.dumps(body).encode()
                self.send_response(status if parts.path == PATH else 404)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hub/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, status=200, body=None, headers=None):
        self.default = (status, body if body is not None else {}, headers or {})

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    hub = FakeHub()
    yield hub
    hub.stop()


@pytest.fixture
def config(tmp_path, hub):
    return AgentConfig(directory=str(tmp_path / "tokens"), api_url=hub.url, api_token="server-api-token",
                       user=USER, server_name="", margin=60, min_interval=1, max_interval=600, max_backoff=30,
                       timeout=0.5)


def files(expires_at, content="oauth2:a.b.c:iam/userinfo"):
    return {"files": [{"name": "eos-token", "content": content, "expires_at": expires_at},
                      {"name": "rucio.cfg", "content": "[client]\n"}], "missing": {}, "expires_at": expires_at}


def refused_url(config) -> None:
    """Nothing listens there any more: connections are refused."""
    hub = FakeHub()
    config.api_url = hub.url
    hub.stop()


def test_first_round_writes_private_files_and_ready_marker(config, hub):
    hub.answer(body=files(int(time.time()) + 500))
    agent = TokenAgent(config)
    delay = agent.run_once()
    request = hub.requests[-1]
    assert request["headers"]["Authorization"] == "token server-api-token"
    assert request["path"] == PATH and request["query"]["server"] == [""]
    d = config.directory
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert open(os.path.join(d, "eos-token")).read() == "oauth2:a.b.c:iam/userinfo"
    for name in ("eos-token", "rucio.cfg", READY_MARKER):
        assert stat.S_IMODE(os.stat(os.path.join(d, name)).st_mode) == 0o600
    assert 500 - 60 - 5 <= delay <= 500 - 60 + 6  # a margin before the expiry, up to a tenth of it later


def test_the_users_directories_are_made_before_the_server_is_marked_ready(config, hub, tmp_path, caplog):
    hub.answer(body=files(2_000_000_000))
    blocked = tmp_path / "not-mounted-yet"
    blocked.write_text("a file where a directory should be")
    config.make_dirs = (str(tmp_path / "scratch" / "mariaska"), str(blocked / "mariaska"))
    agent = TokenAgent(config)
    agent.run_once()
    made = tmp_path / "scratch" / "mariaska"
    assert made.is_dir() and stat.S_IMODE(made.stat().st_mode) == 0o700
    assert os.path.exists(os.path.join(config.directory, READY_MARKER))
    assert agent.dirs_missing == [str(blocked / "mariaska")]
    assert f"Could not create {blocked / 'mariaska'} (Not a directory); retrying next round" in caplog.text
    assert agent.failures == 0  # the tokens are in place all the same
    blocked.unlink()
    blocked.mkdir()
    agent.run_once()
    assert agent.dirs_missing == [] and (blocked / "mariaska").is_dir()


def test_unchanged_files_are_not_rewritten(config, hub):
    hub.answer(body=files(2_000_000_000))
    agent = TokenAgent(config)
    agent.run_once()
    mtime = os.stat(os.path.join(config.directory, "eos-token")).st_mtime_ns
    agent.run_once()
    assert os.stat(os.path.join(config.directory, "eos-token")).st_mtime_ns == mtime


@pytest.mark.parametrize("failure", [(503, {}, {}), DROP, SLOW, "refused"])
def test_failures_keep_the_files_and_back_off(config, hub, failure):
    hub.answer(body=files(2_000_000_000, content="first"))
    agent = TokenAgent(config)
    agent.run_once()
    if failure == "refused":
        refused_url(config)
    else:
        hub.answers = [failure] * 6
    delays = [agent.run_once() for _ in range(6)]
    assert open(os.path.join(config.directory, "eos-token")).read() == "first"
    assert all(config.min_interval <= d <= config.max_backoff for d in delays)
    assert agent.failures == 6


def test_forbidden_says_which_scope_is_missing(config, hub, caplog):
    hub.answer(403, {"message": "no"})
    agent = TokenAgent(config)
    agent.run_once()
    assert "custom:dlaas:tokens" in caplog.text
    assert not os.path.exists(os.path.join(config.directory, READY_MARKER))


def test_bad_file_names_from_the_hub_are_refused(config, hub):
    hub.answer(body={"files": [{"name": "../../home/user/.bashrc", "content": "evil"}]})
    agent = TokenAgent(config)
    agent.run_once()
    assert agent.failures == 1
    assert not os.path.exists(os.path.join(os.path.dirname(config.directory), "home"))


def test_no_token_in_the_log(config, hub, caplog):
    caplog.set_level("DEBUG")
    hub.answer(body=files(2_000_000_000, content="oauth2:SECRET.JWT.VALUE:iam/userinfo"))
    agent = TokenAgent(config)
    agent.run_once()
    assert "SECRET" not in caplog.text and "server-api-token" not in caplog.text


def test_stops_promptly_when_asked(config, hub):
    hub.answer(body=files(int(time.time()) + 100_000))
    agent = TokenAgent(config)
    runner = threading.Thread(target=agent.run)
    runner.start()
    time.sleep(0.3)
    agent.stopping.set()
    runner.join(timeout=2)
    assert not runner.is_alive() and agent.rounds == 1


def test_next_delay_is_clamped(config):
    agent = TokenAgent(config)
    now = time.time()
    assert agent.next_delay(None) == config.max_interval
    assert agent.next_delay(int(now) + 1) == config.min_interval  # about to expire: ask right away
    assert 6 <= agent.next_delay(int(now) + 10) <= 7.4  # short-lived: at 70% of what is left (+ jitter)
    assert agent.next_delay(int(now) + 100_000) == config.max_interval


def test_config_from_env_requires_the_hub_variables(monkeypatch):
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="JUPYTERHUB_API_URL"):
        AgentConfig.from_env("/tmp/x")


def test_agent_process_serves_files_and_exits_cleanly_on_sigterm(tmp_path):
    """The real command, against a small HTTP server standing in for the hub."""
    body = json.dumps({"files": [{"name": "eos-token", "content": "oauth2:a.b.c:iam/userinfo",
                                  "expires_at": int(time.time()) + 3600}], "expires_at": int(time.time()) + 3600})

    class Hub(BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers.get("Authorization") == "token t0k" and "/dlaas/users/maria/credentials" in self.path
            self.send_response(200 if ok else 403)
            self.end_headers()
            self.wfile.write(body.encode() if ok else b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    directory = tmp_path / "tokens"
    env = {"PATH": os.environ["PATH"], "JUPYTERHUB_API_URL": f"http://127.0.0.1:{server.server_port}/hub/api",
           "JUPYTERHUB_API_TOKEN": "t0k", "JUPYTERHUB_USER": "maria"}
    scratch = tmp_path / "scratch" / "maria"
    agent = subprocess.Popen([sys.executable, "-m", "dlaas_hub.ops.cli", "token-agent", "--dir", str(directory),
                              "--make-dir", str(scratch)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (directory / READY_MARKER).exists():
            assert agent.poll() is None and time.monotonic() < deadline, agent.stdout.read().decode()
            time.sleep(0.05)
        assert (directory / "eos-token").read_text() == "oauth2:a.b.c:iam/userinfo"
        assert scratch.is_dir()  # made before the server is marked ready
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=5) == 0
        output = agent.stdout.read().decode()
        assert "Token agent stopped" in output and "t0k" not in output and "a.b.c" not in output
        assert (directory / "eos-token").exists()  # a still-valid file is never removed
    finally:
        if agent.poll() is None:
            agent.kill()
        server.shutdown()


def test_the_agent_needs_no_aiohttp():
    # It runs in the hub's image (aiohttp there, but the agent must not need it).
    code = "import sys; sys.modules['aiohttp'] = None; import dlaas_hub.server.agent, dlaas_hub.ops.cli"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


AFTER_A_ROUND = """
import json, sys
from dlaas_hub.ops.cli import main
sys.argv = ["dlaas-hub", "token-agent", "--once", "--dir", sys.argv[1]]
code = main(sys.argv[1:])
print(json.dumps({"code": code, "held": sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None})}))
"""


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_round_holds_no_event_loop_no_httpx_and_tls_only_for_an_https_hub(hub, tmp_path, scheme):
    # What every user pod pays for: the agent's memory is mostly the modules it loads
    # (benchmarks/token_agent.py measures it); TLS's libraries alone are a third of it.
    hub.answer(body=files(int(time.time()) + 3600))
    url = hub.url if scheme == "http" else hub.url.replace("http:", "https:")
    env = {**os.environ, "JUPYTERHUB_API_URL": url, "JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_USER": USER}
    result = subprocess.run([sys.executable, "-c", AFTER_A_ROUND, str(tmp_path / "tokens")], env=env,
                            capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout.splitlines()[-1])
    held = set(report["held"])
    assert not {"asyncio", "httpx", "httpcore", "anyio", "aiohttp"} & held
    if scheme == "http":
        assert report["code"] == 0 and "ssl" not in held and "http" in held
    else:  # the fake hub speaks plain HTTP: the TLS handshake fails, but TLS was there to try
        assert report["code"] == 1 and "ssl" in held


def test_an_expired_sign_in_is_said_once_and_asked_again_within_a_minute(config, hub, caplog):
    caplog.set_level("INFO")
    hub.answer(body=files(int(time.time()) + 500))
    agent = TokenAgent(config)
    agent.run_once()
    hub.answer(401, {"message": "The user's sign-in has expired"})
    delays = [agent.run_once() for _ in range(4)]
    assert all(config.sign_in_interval / 2 <= d <= config.sign_in_interval for d in delays)
    assert len(set(delays)) > 1  # jittered: a hundred agents do not come back together
    assert caplog.text.count("must sign in to the hub again") == 1
    assert os.path.exists(os.path.join(config.directory, "eos-token"))  # the current files stay
    hub.answer(body=files(int(time.time()) + 500))
    agent.run_once()
    assert "The user signed in again" in caplog.text and not agent.expired


def test_a_hub_that_is_down_is_retried_with_growing_jittered_pauses(config):
    refused_url(config)
    agent = TokenAgent(config)
    delays = [agent.run_once() for _ in range(8)]
    assert all(config.min_interval <= d <= config.max_backoff for d in delays)
    assert max(delays[4:]) > max(delays[:2])  # the ceiling grows with each failure
    assert len(set(delays)) == len(delays)


def test_servers_signed_in_together_do_not_ask_in_the_same_second(config):
    agent = TokenAgent(config)
    expires_at = int(time.time()) + 500  # within the fixture's max_interval (600 s)
    delays = [agent.next_delay(expires_at) for _ in range(50)]
    assert max(delays) - min(delays) > 2  # spread over up to a tenth of the 60 s margin
    assert max(delays) <= 500 - 60 + 6  # never later than that: the tokens are still well valid


def test_a_hub_that_is_down_is_asked_within_a_share_of_the_files_life(config, hub):
    # A doubled backoff of minutes would outlast 40 s tokens: the pause stays under a quarter of their life.
    now = time.time()
    hub.answer(body=files(int(now) + 40))
    agent = TokenAgent(config)
    agent.run_once()
    refused_url(config)
    delays = [agent.run_once() for _ in range(10)]
    assert agent.failures == 10  # the doubling alone would allow up to max_backoff (30 s)
    assert all(config.min_interval <= d <= 0.25 * 40 for d in delays), delays


def test_once_its_files_have_expired_the_agent_asks_every_few_seconds(config, hub, monkeypatch):
    hub.answer(body=files(int(time.time()) + 40))
    agent = TokenAgent(config)
    agent.run_once()
    refused_url(config)
    monkeypatch.setattr(time, "time", lambda: agent.expires_at + 5)
    delays = [agent.run_once() for _ in range(12)]
    assert all(config.min_interval <= d <= 2 * config.min_interval for d in delays), delays
    assert len(set(delays)) > 1  # still jittered: the agents of a hub that returns do not ask in step


def test_too_many_requests_waits_as_the_hub_says(config, hub, caplog):
    hub.answer(429, {"message": "Too many requests"}, {"Retry-After": "17"})
    agent = TokenAgent(config)
    delays = [agent.run_once() for _ in range(5)]
    assert all(17 <= d <= 17 + 0.1 * 17 + 1 for d in delays), delays
    assert "ask less often (429)" in caplog.text
    hub.answer(body=files(int(time.time()) + 500))
    agent.run_once()
    assert agent.retry_after is None and agent.failures == 0
