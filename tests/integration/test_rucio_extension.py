"""The Rucio JupyterLab extension in a server started by the hub, against the real Rucio server, with
nothing but the configuration and token file the spawner wrote. The server runs in .venv-singleuser,
which stands for a profile's image (JupyterLab, rucio-jupyterlab, the Rucio client)."""

import json
import os
import time

import httpx
import pytest

from dlaas_hub.dev import devservices

from . import rucio_fixtures
from .conftest import browser_login
from .rucio_fixtures import as_root
from .test_spawn import start

pytestmark = pytest.mark.integration
rucio, hub = rucio_fixtures.rucio, rucio_fixtures.hub
SINGLEUSER = devservices.REPO_ROOT / ".venv-singleuser" / "bin" / "jupyterhub-singleuser"
SINGLEUSER_COMMAND = [str(SINGLEUSER)]
HUB_OVERRIDES = {"DLaaSLocalSpawner.rucio_instance": {
    "name": "escape", "display_name": "ESCAPE", "destination_rse": "EULAKE-1", "rse_mount_path": "/eos/eulake_1",
    # EULAKE-1's PFNs are file://localhost/eos/eulake_1/<path>: drop its 2 leading segments before
    # putting the path under rse_mount_path.
    "path_begins_at": 2}}


@pytest.fixture(scope="module")
def lab(hub):
    if not SINGLEUSER.exists():
        message = f"{SINGLEUSER} is missing: ./scripts/test installs it (requirements/singleuser.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
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
