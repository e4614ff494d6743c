"""The data lake's Rucio for real: the development Rucio server trusts the development IAM, and a
server started by the hub reaches it with nothing but what the spawner wrote."""

import configparser
import os
import subprocess
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dlaas_hub.dev import devservices, rucioserver

from .conftest import browser_login, start_hub
from .test_spawn import server_environ, start, stop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rucio(dev_iam, tmp_path_factory):
    try:
        rucioserver.rucio_bin("gunicorn")
    except devservices.ServiceError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    workdir = tmp_path_factory.mktemp("rucio")
    server = rucioserver.start_rucio(workdir, devservices.free_port(), issuer=dev_iam)
    datalake = tmp_path_factory.mktemp("datalake")
    spec = rucioserver.demo_spec(eos_dir=datalake / "eos_eulake_1", scratch_dir=datalake / "scratch",
                                 other_site_dir=datalake / "desy")
    server.bootstrap(spec)
    server.datalake = datalake
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(dev_iam, rucio, ports, client_secret, tmp_path_factory):
    overrides = {
        "DLaaSLocalSpawner.rucio_host": rucio.url, "DLaaSLocalSpawner.rucio_auth_host": rucio.url,
        "DLaaSLocalSpawner.rucio_oidc_issuer": rucioserver.IDP_NAME,
        "DLaaSLocalSpawner.datalake_mounts": [
            {"name": "eos", "host_path": str(rucio.datalake / "eos_eulake_1"), "mount_path": "/eos/eulake_1",
             "read_only": True},
            {"name": "scratch", "host_path": str(rucio.datalake / "scratch"), "mount_path": "/scratch",
             "read_only": False}],
    }
    hub = start_hub(tmp_path_factory.mktemp("hub"), hub_port=ports["hub"], iam_url=dev_iam,
                    client_secret=client_secret, overrides=overrides)
    yield hub
    devservices.stop(hub.proc)


def rucio_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """The real rucio client, run as a terminal of the user's server would: that server's environment."""
    return subprocess.run([rucioserver.rucio_bin("rucio"), *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_rucio_accepts_the_exchanged_token_from_inside_the_server(hub, rucio):
    browser_login(hub, "MariaSKA")
    server = start(hub, "mariaska", "ska-sdc1")
    env = server_environ(server)
    whoami = rucio_cli(env, "whoami")
    assert whoami.returncode == 0, whoami.stderr + rucio.log()[-3000:]
    assert "mariaska" in whoami.stdout

    rses = rucio_cli(env, "rse", "list")
    assert rses.returncode == 0, rses.stderr
    assert {"EULAKE-1", "JUPYTER-SCRATCHDISK", "DESY-DCACHE"} <= set(rses.stdout.split())

    replicas = rucio_cli(env, "replica", "list", "file", "--pfns", "ska_sdc1:sdc1.image.b1.fits")
    assert replicas.returncode == 0, replicas.stderr
    [pfn] = [line for line in replicas.stdout.split() if line.startswith("file://")]
    path = urlsplit(pfn).path
    assert path.startswith("/eos/eulake_1/ska_sdc1/")
    local = rucio.datalake / "eos_eulake_1" / os.path.relpath(path, "/eos/eulake_1")
    assert local.read_text().startswith("SIMPLE = T / SDC1 b1")
    stop(hub, "mariaska")


def test_rucio_refuses_tokens_for_another_audience_or_issuer(hub, rucio):
    browser_login(hub, "MariaSKA")
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    rucio_token = state["exchanged"]["rucio"]["access_token"]

    def whoami(token):
        return httpx.get(f"{rucio.url}/accounts/whoami", headers={"X-Rucio-Auth-Token": token},
                         follow_redirects=True)

    assert whoami(rucio_token).json()["account"] == "mariaska"
    assert whoami(state["exchanged"]["eos"]["access_token"]).status_code == 401  # audience eos-eulake
    # The same claims, signed by a provider Rucio does not trust
    claims = jwt.decode(rucio_token, options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for issuer in (claims["iss"], "https://iam.elsewhere.example/"):
        forged = jwt.encode({**claims, "iss": issuer}, key, algorithm="RS256",
                            headers={"kid": jwt.get_unverified_header(rucio_token)["kid"]})
        assert whoami(forged).status_code == 401


def test_a_refused_token_gets_rucios_sign_in_not_a_server_error(hub, rucio, tmp_path):
    # rucio.cfg's oidc_issuer names the IAM's entry in the server's idpsecrets: when the server refuses
    # the token, the client's next step (/auth/oidc) is understood and refused in words. With the
    # issuer's URL there, the server fails with a KeyError (HTTP 500).
    browser_login(hub, "MariaSKA")
    server = start(hub, "mariaska", "minimal")
    env = server_environ(server)
    state = hub.api("GET", "/users/mariaska").json()["auth_state"]
    cfg = configparser.ConfigParser()
    cfg.read(env["RUCIO_CONFIG"])
    assert cfg["client"]["oidc_issuer"] == rucioserver.IDP_NAME
    refused = tmp_path / "refused-token"
    refused.write_text(state["exchanged"]["eos"]["access_token"])
    cfg["client"]["auth_token_file_path"] = str(refused)
    cfg["client"]["account"] = "mariaska"  # her Rucio account (the demo maps names in lower case)

    def whoami(issuer):
        cfg["client"]["oidc_issuer"] = issuer
        with (tmp_path / "rucio.cfg").open("w") as f:
            cfg.write(f)
        result = rucio_cli({**env, "RUCIO_CONFIG": str(tmp_path / "rucio.cfg")}, "whoami")
        return result.stdout + result.stderr

    output = whoami(rucioserver.IDP_NAME)
    # Rucio's own sign-in starts: a URL to open (which a scientist never needs while the hub's token works)
    assert "Please use your internet browser" in output and "/auth/oidc_redirect?" in output, output
    assert "Internal Server Error" not in output and "KeyError" not in output

    def auth_oidc(issuer):  # the request the client makes next, as it makes it
        return httpx.get(f"{rucio.url}/auth/oidc", headers={
            "X-Rucio-Account": "mariaska", "X-Rucio-Client-Authorize-Issuer": issuer,
            "X-Rucio-Client-Authorize-Scope": "openid profile", "X-Rucio-Client-Authorize-Audience": "rucio",
            "X-Rucio-Client-Authorize-Polling": "False", "X-Rucio-Client-Authorize-Refresh-Lifetime": "None"})

    answer = auth_oidc(rucioserver.IDP_NAME)
    assert answer.status_code == 200 and answer.headers["X-Rucio-OIDC-Auth-URL"], answer.text
    assert auth_oidc(hub.iam_url).status_code == 500  # the issuer's URL, as rucio.cfg used to say
    stop(hub, "mariaska")
