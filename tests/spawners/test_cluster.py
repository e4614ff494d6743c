"""The token agent's native sidecar needs Kubernetes 1.29+: asked of the API server once, refused in words."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from tornado import web

from dlaas_hub.spawners import kube
from dlaas_hub.spawners.cluster import native_sidecar_problem, parse_version

from .test_kube_spawner import make_spawner


@pytest.mark.parametrize("major,minor,expected", [
    ("1", "29", (1, 29)), ("1", "28+", (1, 28)), ("1", "30-gke.1", (1, 30)), ("", "29", None), ("1", "", None),
])
def test_versions_as_managed_clusters_write_them(major, minor, expected):
    assert parse_version(major, minor) == expected


@pytest.mark.parametrize("minor,refused", [("27", True), ("28+", True), ("29", False), ("33", False), ("x", False)])
def test_native_sidecars_need_1_29(minor, refused):
    problem = native_sidecar_problem("1", minor, f"v1.{minor}.0")
    assert (problem is not None) is refused
    if refused:
        assert f"the cluster runs Kubernetes v1.{minor}.0" in problem
        assert "1.29 or later" in problem and "DLaaSKubeSpawner.token_agent_enabled = False" in problem


@pytest.fixture
def api_server():
    """A stand-in for the API server's /version (no cluster runs here); records every request."""
    seen, answer = [], {"minor": "27"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(("GET", self.path))
            body = json.dumps({"major": "1", "minor": answer["minor"], "gitVersion": f"v1.{answer['minor']}.3",
                               "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "",
                               "compiler": "", "platform": "linux/amd64"}).encode()
            self.send_response(200 if self.path.rstrip("/") == "/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen, answer
    server.shutdown()


@pytest.fixture(autouse=True)
def fresh_answers(monkeypatch):
    monkeypatch.setattr(kube, "_CLUSTER_PROBLEMS", {})


async def test_a_cluster_older_than_1_29_refuses_the_spawn_before_any_pod(api_server, caplog):
    url, seen, _ = api_server
    spawner = make_spawner()
    async with ApiClient(Configuration(host=url)) as client:
        spawner.api = CoreV1Api(client)
        for _ in range(2):
            with pytest.raises(web.HTTPError) as refused:
                await spawner.start()
            assert refused.value.status_code == 503
            assert "its Kubernetes cluster is too old for the token agent" in refused.value.jupyterhub_message
    assert [(m, p.rstrip("/")) for m, p in seen] == [("GET", "/version")]  # asked once, and no pod was ever requested
    assert "DLaaSKubeSpawner: the cluster runs Kubernetes v1.27.3" in caplog.text


async def test_a_recent_cluster_is_asked_once_and_passes(api_server):
    url, seen, answer = api_server
    answer["minor"] = "30+"
    spawner = make_spawner()
    async with ApiClient(Configuration(host=url)) as client:
        spawner.api = CoreV1Api(client)
        await spawner.require_native_sidecars()
        await spawner.require_native_sidecars()
    assert [(m, p.rstrip("/")) for m, p in seen] == [("GET", "/version")]


async def test_an_unanswered_question_does_not_stop_spawns(caplog):
    spawner = make_spawner()
    async with ApiClient(Configuration(host="http://127.0.0.1:1")) as client:
        spawner.api = CoreV1Api(client)
        await spawner.require_native_sidecars()
    assert "Could not read the Kubernetes version of http://127.0.0.1:1" in caplog.text


async def test_no_question_without_a_token_agent_or_when_turned_off(api_server, monkeypatch):
    url, seen, _ = api_server
    started = []

    async def fake_start(self):  # stands in for kubespawner's pod creation, which needs a cluster
        started.append(self)

    monkeypatch.setattr(kube.KubeSpawner, "start", fake_start)
    for settings in ({"token_agent_enabled": False}, {"check_cluster_version": False}):
        spawner = make_spawner(**settings)
        async with ApiClient(Configuration(host=url)) as client:
            spawner.api = CoreV1Api(client)
            await spawner.start()
    assert len(started) == 2 and seen == []
