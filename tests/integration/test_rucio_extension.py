"""The Rucio JupyterLab extension in a server started by the hub, against the real Rucio server, with
nothing but the configuration and token file the spawner wrote. The server runs in .venv-singleuser,
which stands for a profile's image (JupyterLab, rucio-jupyterlab, the Rucio client)."""

import asyncio
import json
import os
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from . import rucio_fixtures
from .conftest import SINGLEUSER_BIN, browser_login, require_singleuser
from .rucio_fixtures import as_root
from .test_spawn import start

pytestmark = pytest.mark.integration
rucio, hub = rucio_fixtures.rucio, rucio_fixtures.hub
SINGLEUSER_COMMAND = [str(SINGLEUSER_BIN / "jupyterhub-singleuser")]
HUB_OVERRIDES = {"DLaaSLocalSpawner.rucio_instance": {
    "name": "escape", "display_name": "ESCAPE", "destination_rse": "EULAKE-1", "rse_mount_path": "/eos/eulake_1",
    # EULAKE-1's PFNs are file://localhost/eos/eulake_1/<path>: drop its 2 leading segments before
    # putting the path under rse_mount_path.
    "path_begins_at": 2}}


@pytest.fixture(scope="module")
def lab(hub):
    require_singleuser()
    browser_login(hub, "MariaSKA")
    start(hub, "mariaska", "minimal")  # replica mode: files are made available on EULAKE-1
    token = hub.api("POST", "/users/mariaska/tokens", json={"note": "extension", "scopes": ["access:servers!user"]})
    client = httpx.Client(base_url=f"{hub.url}/user/mariaska/rucio-jupyterlab/", timeout=60,
                          headers={"Authorization": f"token {token.json()['token']}"})
    yield client
    client.close()


def test_the_extension_knows_the_hubs_rucio_instance(lab):
    instances = lab.get("instances").json()
    assert [i["name"] for i in instances["instances"]] == ["escape"]


def details(lab, did, wanted, timeout=30):
    """The extension's view of a DID's files (it fetches in the background: poll until settled)."""
    deadline = time.monotonic() + timeout
    while True:
        files = lab.get("did", params={"namespace": "escape", "did": did, "poll": "1"}).json()
        statuses = {f.get("status") for f in files} if isinstance(files, list) else set()
        if statuses == {wanted} or time.monotonic() > deadline:
            return files
        time.sleep(1)


def test_available_files_resolve_under_the_data_lake_mount(lab, rucio):
    files = lab.get("files", params={"namespace": "escape", "did": "ska_sdc1:sdc1.images"}).json()
    assert sorted(f["did"] for f in files) == [f"ska_sdc1:sdc1.image.{b}.fits" for b in ("b1", "b2", "b5")], files
    files = details(lab, "ska_sdc1:sdc1.images", "OK")
    assert {f["status"] for f in files} == {"OK"}, files
    for entry in files:
        assert entry["path"].startswith("/eos/eulake_1/ska_sdc1/"), entry
        local = rucio.datalake / "eos_eulake_1" / os.path.relpath(entry["path"], "/eos/eulake_1")
        assert local.read_text().startswith("SIMPLE = T"), entry  # the file the path names is there


def test_make_available_creates_a_rule_that_stays_replicating(lab, rucio):
    did = "escape_demo:gw.strain.2026"
    before = details(lab, did, "NOT_AVAILABLE")
    assert {f["status"] for f in before} == {"NOT_AVAILABLE"}, before
    made = lab.post("did/make-available", params={"namespace": "escape"}, json={"did": did})
    assert made.status_code == 200, made.text
    # Rucio holds the user's rule to EULAKE-1; no transfer service runs here, so it stays replicating
    rules = as_root(rucio, "import json\nprint(json.dumps([{k: str(r[k]) for k in ('account', 'rse_expression', "
                           "'state')} for r in client.list_did_rules('escape_demo', 'gw.strain.2026')]))")
    assert {"account": "mariaska", "rse_expression": "EULAKE-1", "state": "REPLICATING"} in json.loads(rules)
    after = details(lab, did, "REPLICATING")
    assert {f["status"] for f in after} == {"REPLICATING"}, after


class Kernel:
    """A kernel of the user's server, spoken to over its websocket as JupyterLab does (protocol 5.3)."""

    def __init__(self, ws):
        self.ws, self.session = ws, uuid.uuid4().hex

    async def send(self, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "mariaska", "session": self.session, "msg_type": msg_type,
                       "version": "5.3", "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}))
        return msg_id

    async def run(self, code: str, timeout: float = 60) -> str:
        """Execute ``code``; its printed output (an error's traceback says what went wrong)."""
        msg_id = await self.send("execute_request", {"code": code, "silent": False, "store_history": False,
                                                     "user_expressions": {}, "allow_stdin": False})
        output, deadline = "", time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(self.ws.read_message(), max(0.1, deadline - time.monotonic()))
            assert message is not None, "the kernel's websocket closed"
            msg = json.loads(message)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                output += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                output += "\n".join(msg["content"]["traceback"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return output


async def attach_in_a_kernel(lab, did: str, variable: str, files: list[dict]) -> str:
    """What "Add to Notebook" does: open the extension's comm in a new kernel, ask it to inject the DID's
    files into ``variable``, then read the variable back."""
    kernel = lab.post("../api/kernels", json={"name": "python3"}).json()
    try:
        url = str(lab.base_url).replace("http", "ws", 1) + f"../api/kernels/{kernel['id']}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers=dict(lab.headers)))
        k = Kernel(ws)
        await k.run("pass")  # the kernel is up, its extensions loaded
        comm_id = uuid.uuid4().hex
        await k.send("comm_open", {"comm_id": comm_id, "target_name": "rucio-jupyterlab:kernel", "data": {}})
        await k.send("comm_msg", {"comm_id": comm_id, "data": {"action": "inject", "dids": [
            {"type": "collection", "variableName": variable, "didAvailable": True,
             "files": [{"path": f["path"], "pfn": f.get("pfn")} for f in files]}]}})
        output = await k.run(f"import json\nprint(json.dumps([str(item) for item in {variable}]))")
        ws.close()
        return output
    finally:
        lab.delete(f"../api/kernels/{kernel['id']}")


def test_add_to_notebook_puts_the_dids_paths_into_a_kernels_variable(lab):
    files = details(lab, "ska_sdc1:sdc1.images", "OK")
    output = asyncio.run(attach_in_a_kernel(lab, "ska_sdc1:sdc1.images", "sdc1_images", files))
    assert "NameError" not in output, output  # the kernel side was not loaded: nothing defined the variable
    assert sorted(json.loads(output)) == sorted(f["path"] for f in files), output
    assert all(p.startswith("/eos/eulake_1/ska_sdc1/") for p in json.loads(output))


def test_the_servers_jupyterhub_matches_the_hubs(hub, lab):
    """The server environment standing for a profile's image carries the hub's JupyterHub (the demo's is
    6.1): no "version ... != jupyterhub-singleuser version ... redirect loops!" at each start."""
    import jupyterhub

    if not jupyterhub.__version__.startswith("6.1."):
        pytest.skip(f"this leg's hub is JupyterHub {jupyterhub.__version__}; the server environment has 6.1")
    assert "!= jupyterhub-singleuser version" not in hub.log()
