"""The EOS half for real: XRootD with the SciTokens plugin standing in for EOS, trusting the development
IAM; a real hub, a user's server and its token agent. The storage takes the server's EOS token (and its
renewal) over root:// and https://, from the server's own environment; it refuses the Rucio token, an
expired token and one signed by another key; Rucio, in the same environment, keeps its own token."""

import json
import os
import ssl
import subprocess
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dlaas_hub.dev import devservices
from dlaas_hub.server.files import EOS_TOKEN_ENV

from . import rucio_fixtures
from .conftest import browser_login
from .rucio_fixtures import rucio_cli
from .test_spawn import server_environ, start, stop

pytestmark = pytest.mark.integration
storage, rucio, hub = rucio_fixtures.storage, rucio_fixtures.rucio, rucio_fixtures.hub
STORAGE = True  # EULAKE-1's files are the ones XRootD serves
DEV_IAM_ARGS = ["--exchange-token-ttl=30"]
HUB_OVERRIDES = {"DLaaSAuthenticator.refresh_margin": 12, "DLaaSLocalSpawner.token_agent_margin": 8}
SKEW = 60
SINGLEUSER_PYTHON = devservices.REPO_ROOT / ".venv-singleuser" / "bin" / "python"


@pytest.fixture(scope="module")
def eulake_file(rucio):
    """A file of the demo's dataset on EULAKE-1: its path in the namespace and its content."""
    listed = rucio_fixtures.as_root(rucio, "import json\nprint(json.dumps([r['pfns'] for r in client.list_replicas("
                                    "[{'scope': 'ska_sdc1', 'name': 'sdc1.image.b1.fits'}], schemes=['file'], "
                                    "rse_expression='EULAKE-1')]))")
    pfn = next(iter(json.loads(listed)[0]))
    path = pfn.split("localhost", 1)[1]
    local = rucio.eos_dir / os.path.relpath(path, "/eos/eulake_1")
    return path, local.read_text()


@pytest.fixture(scope="module")
def server_env(hub):
    browser_login(hub, "MariaSKA")
    server = start(hub, "mariaska", "ska-sdc1")
    yield server_environ(server)
    stop(hub, "mariaska")


def storage_tool(env, *args, token_file=None):
    """A storage tool run as in the server's terminal; with ``token_file``, the documented line's discovery."""
    env = {**env, "XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "30"}
    env.pop("BEARER_TOKEN_FILE", None)
    if token_file:
        env["BEARER_TOKEN_FILE"] = token_file
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_xrdcp_reads_a_data_lake_file_with_the_servers_eos_token(server_env, eulake_file, storage):
    path, content = eulake_file
    env = server_env
    assert env["EOS_MGM_URL"] == storage.root_url and env["X509_CERT_DIR"] == str(storage.tls.cert_dir)
    token_file = env[EOS_TOKEN_ENV]
    assert oct(os.stat(token_file).st_mode & 0o777) == "0o600"
    read = storage_tool(env, "xrdcp", "-f", f"{env['EOS_MGM_URL']}/{path}", "-", token_file=token_file)
    assert read.returncode == 0, read.stderr + storage.log_path.read_text()[-2000:]
    assert read.stdout == content
    # Without a token, or with the Rucio token, the storage says no.
    assert storage_tool(env, "xrdcp", "-f", f"{env['EOS_MGM_URL']}/{path}", "-").returncode != 0
    rucio_token = os.path.join(os.path.dirname(token_file), "rucio-token")
    refused = storage_tool(env, "xrdcp", "-f", f"{env['EOS_MGM_URL']}/{path}", "-", token_file=rucio_token)
    assert refused.returncode != 0 and "permission denied" in refused.stderr.lower(), refused.stderr


def test_xrootd_from_python_reads_it_in_the_servers_environment(server_env, eulake_file):
    if not SINGLEUSER_PYTHON.exists():
        pytest.skip(f"{SINGLEUSER_PYTHON} is missing: ./scripts/test installs it (requirements/singleuser.txt)")
    path, content = eulake_file
    code = ("import os, sys\nos.environ['BEARER_TOKEN_FILE'] = os.environ['DLAAS_EOS_TOKEN_FILE']\n"
            "from XRootD import client\nwith client.File() as f:\n"
            "    status, _ = f.open(os.environ['EOS_MGM_URL'] + '/' + sys.argv[1])\n"
            "    assert status.ok, status.message\n    sys.stdout.write(f.read()[1].decode())\n")
    read = storage_tool(server_env, str(SINGLEUSER_PYTHON), "-c", code, path)
    assert read.returncode == 0, read.stderr
    assert read.stdout == content


UPROOT = """
import os, sys
os.environ["BEARER_TOKEN_FILE"] = os.environ["DLAAS_EOS_TOKEN_FILE"]  # the documented line, in a kernel
import fsspec, uproot
url = os.environ["EOS_MGM_URL"] + "/" + sys.argv[1]
with fsspec.open(url, "rb") as f:  # fsspec-xrootd
    assert f.read(4) == b"root"
with uproot.open(url, handler=uproot.source.fsspec.FSSpecSource) as f:
    print(f["events"]["energy"].array(library="np").tolist())
"""


def test_uproot_reads_a_root_file_through_fsspec_xrootd(server_env, storage):
    """A ROOT scientist's read: uproot over root:// through fsspec-xrootd, with the server's EOS token."""
    if not SINGLEUSER_PYTHON.exists():
        pytest.skip(f"{SINGLEUSER_PYTHON} is missing: ./scripts/test installs it (requirements/singleuser.txt)")
    events = storage.data_dir / "demo" / "events.root"
    events.parent.mkdir(exist_ok=True)
    write = subprocess.run([str(SINGLEUSER_PYTHON), "-c", "import sys, numpy, uproot\n"
                            "with uproot.recreate(sys.argv[1]) as f:\n"
                            "    f['events'] = {'energy': numpy.array([1.5, 2.5, 4.0])}\n", str(events)],
                           capture_output=True, text=True, timeout=120)
    assert write.returncode == 0, write.stderr
    events.chmod(0o644)
    read = storage_tool(server_env, str(SINGLEUSER_PYTHON), "-c", UPROOT, "/eos/eulake_1/demo/events.root")
    assert read.returncode == 0, read.stderr[-3000:]
    assert read.stdout.strip() == "[1.5, 2.5, 4.0]"
    # The same read with the Rucio token is refused by the storage.
    rucio_token = os.path.join(os.path.dirname(server_env[EOS_TOKEN_ENV]), "rucio-token")
    refused = storage_tool({**server_env, EOS_TOKEN_ENV: rucio_token}, str(SINGLEUSER_PYTHON), "-c", UPROOT,
                           "/eos/eulake_1/demo/events.root")
    assert refused.returncode != 0 and "[1.5" not in refused.stdout
    assert "permission denied" in refused.stderr.lower(), refused.stderr[-2000:]


def test_https_reads_it_with_the_bearer_token(server_env, eulake_file, storage):
    path, content = eulake_file
    token = open(server_env[EOS_TOKEN_ENV]).read()
    url = f"{storage.https_url}{path}"
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"},
                       verify=ssl.create_default_context(cafile=str(storage.tls.ca)))
    assert answer.status_code == 200 and answer.text == content
    curl = storage_tool(server_env, "curl", "-sS", "--fail", "--capath", server_env["X509_CERT_DIR"], "-H",
                        f"Authorization: Bearer {token}", url)
    assert curl.returncode == 0 and curl.stdout == content, curl.stderr


def forged(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": jwt.get_unverified_header(token)["kid"]})


def https_status(storage, path, token):
    context = ssl.create_default_context(cafile=str(storage.tls.ca))
    return httpx.get(f"{storage.https_url}{path}", headers={"Authorization": f"Bearer {token}"},
                     verify=context).status_code


def test_the_storage_refuses_foreign_rucio_and_writing(server_env, eulake_file, storage, hub):
    path, _ = eulake_file
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]["exchanged"]
    eos, rucio_token = state["eos"]["access_token"], state["rucio"]["access_token"]
    assert https_status(storage, path, eos) == 200
    assert https_status(storage, path, rucio_token) == 403  # the Rucio audience
    assert https_status(storage, path, forged(eos)) == 403  # the same claims, signed by another key
    # Writing is refused even with a valid token: EOS is read-only to the notebooks.
    put = httpx.put(f"{storage.https_url}/eos/eulake_1/new-file", content=b"x",
                    headers={"Authorization": f"Bearer {eos}"},
                    verify=ssl.create_default_context(cafile=str(storage.tls.ca)))
    assert put.status_code == 403


def test_after_a_renewal_the_new_token_is_used_and_the_expired_one_refused(server_env, eulake_file, storage):
    path, content = eulake_file
    token_file = server_env[EOS_TOKEN_ENV]
    first = open(token_file).read()
    deadline = time.monotonic() + 60
    while open(token_file).read() == first:
        assert time.monotonic() < deadline, "the agent did not renew the EOS token within 60 s"
        time.sleep(0.5)
    # scitokens-cpp, like most JWT verifiers, allows 60 s of clock skew past `exp`.
    time.sleep(max(0, jwt.decode(first, options={"verify_signature": False})["exp"] + SKEW + 1 - time.time()))
    assert https_status(storage, path, first) == 403  # expired
    read = storage_tool(server_env, "xrdcp", "-f", f"{server_env['EOS_MGM_URL']}/{path}", "-", token_file=token_file)
    assert read.returncode == 0 and read.stdout == content, read.stderr
    eos_file = server_env["OAUTH2_TOKEN"][len("FILE:"):]
    assert open(eos_file).read().split(":")[1] == open(token_file).read()  # eosxd's file holds the same token


def test_rucio_in_the_same_environment_keeps_its_own_token(server_env):
    whoami = rucio_cli(server_env, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert "mariaska" in whoami.stdout and "ACTIVE" in whoami.stdout
    # Why the EOS token is not offered to every tool through BEARER_TOKEN_FILE: rucio-clients reads it
    # first (WLCG discovery, auth_type = oidc) and would send the EOS token to Rucio, which refuses it.
    # (rucio 41's whoami then exits 0 all the same, having printed that it could not authenticate.)
    confused = rucio_cli({**server_env, "BEARER_TOKEN_FILE": server_env[EOS_TOKEN_ENV]}, "whoami")
    assert "Cannot authenticate" in confused.stdout + confused.stderr
    assert "ACTIVE" not in confused.stdout
