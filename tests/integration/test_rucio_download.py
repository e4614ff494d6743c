"""Download mode for real: the Rucio JupyterLab extension's "Make Available" fetches a data-lake file
from the storage standing in for EOS (XRootD, root://, the EOS audience only) into the user's
downloads, in a server of the download-mode profile started by the hub. Rucio's own download client
presents its Rucio token to the storage, which refuses it; dlaas_hub.server.rucio_download presents
the EOS token to EOS instead, the renewed one at each download."""

import asyncio
import base64
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from . import rucio_fixtures
from .conftest import SINGLEUSER_BIN, browser_login, require_singleuser
from .test_rucio_extension import attach_in_a_kernel
from .test_spawn import server_environ, start

pytestmark = pytest.mark.integration
storage, rucio, hub = rucio_fixtures.storage, rucio_fixtures.rucio, rucio_fixtures.hub
STORAGE = True  # EULAKE-1's files are the ones XRootD serves; EULAKE-1 has its root:// protocol
SINGLEUSER_COMMAND = [str(SINGLEUSER_BIN / "jupyterhub-singleuser")]
DID = "ska_sdc1:sdc1.image.b2.fits"


@pytest.fixture(scope="module")
def server(hub):
    require_singleuser()
    browser_login(hub, "MariaSKA")
    return start(hub, "mariaska", "root-xcache")  # the profile whose Rucio extension is in download mode


@pytest.fixture(scope="module")
def lab(hub, server):
    token = hub.api("POST", "/users/mariaska/tokens", json={"note": "download", "scopes": ["access:servers!user"]})
    client = httpx.Client(base_url=f"{hub.url}/user/mariaska/rucio-jupyterlab/", timeout=60,
                          headers={"Authorization": f"token {token.json()['token']}"})
    yield client
    client.close()


def content_of(rucio, did: str) -> str:
    name = did.split(":")[1]
    return next(rucio.eos_dir.rglob(name)).read_text()


DOWNLOAD = """
import json, logging, sys, tempfile
logging.basicConfig(level=logging.DEBUG)
from rucio.client.downloadclient import DownloadClient
from dlaas_hub.server.rucio_download import eos_token_for_eos
dest = tempfile.mkdtemp()
try:
    if sys.argv[2] == "eos":
        with eos_token_for_eos():
            DownloadClient().download_dids([{"did": sys.argv[1], "base_dir": dest}])
    else:
        DownloadClient().download_dids([{"did": sys.argv[1], "base_dir": dest}])
except Exception as e:
    print(json.dumps({"error": type(e).__name__}))
else:
    import pathlib
    print(json.dumps({"files": {p.name: p.read_text() for p in pathlib.Path(dest).rglob("*") if p.is_file()}}))
"""


def download_in_server(env: dict, did: str, token: str) -> tuple[dict, str]:
    """Rucio's download client run in the server's environment, as a terminal or the extension would."""
    env = {**env, "XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "30"}
    result = subprocess.run([str(SINGLEUSER_BIN / "python"), "-c", DOWNLOAD, did, token], env=env, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_rucio_alone_presents_its_own_token_and_the_storage_refuses_it(server, rucio):
    """Why download mode needs the EOS token: the file protocol's path is not mounted here, and root://
    gets the Rucio token, which EOS refuses."""
    outcome, log = download_in_server(server_environ(server), "ska_sdc1:sdc1.image.b5.fits", "rucio")
    assert outcome == {"error": "NoFilesDownloaded"}, outcome
    # The storage's refusal reaches Rucio as xrdcp's exit code 54, which it reports as a missing source.
    assert "Using PFN: root://" in log and "Source file not found" in log, log[-3000:]


def test_with_the_eos_token_rucio_downloads_from_the_storage(server, rucio):
    outcome, log = download_in_server(server_environ(server), "ska_sdc1:sdc1.image.b5.fits", "eos")
    assert outcome == {"files": {"sdc1.image.b5.fits": content_of(rucio, "ska_sdc1:sdc1.image.b5.fits")}}, log[-3000:]
    token = Path(server_environ(server)["DLAAS_EOS_TOKEN_FILE"]).read_text().strip()
    assert token not in log


def details(lab, did, timeout=90):
    """The extension's view of a DID's files, polled until the download settles."""
    deadline = time.monotonic() + timeout
    while True:
        files = lab.get("did", params={"namespace": "escape", "did": did, "poll": "1"}).json()
        statuses = {f.get("status") for f in files} if isinstance(files, list) else set()
        if statuses & {"OK", "FAILED"} or time.monotonic() > deadline:
            return files
        time.sleep(1)


def test_make_available_downloads_the_file_through_xrootd(lab, server, rucio, storage):
    answer = lab.post("did/make-available", params={"namespace": "escape"}, json={"did": DID})
    assert answer.status_code == 200, answer.text
    files = details(lab, DID)
    assert [f["status"] for f in files] == ["OK"], files
    path = Path(files[0]["path"])
    folder = base64.b32encode(DID.encode()).decode().lower().replace("=", "")
    home = Path(server_environ(server)["HOME"])
    assert path.is_relative_to(home / "rucio" / "escape" / "downloads" / folder), path
    assert path.read_text() == content_of(rucio, DID)
    # "Add to Notebook": the downloaded file's path arrives in a kernel's variable.
    attached = asyncio.run(attach_in_a_kernel(lab, DID, "b2", files))
    assert json.loads(attached) == [str(path)], attached
