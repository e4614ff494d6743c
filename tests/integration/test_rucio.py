"""The data lake's Rucio for real: the development Rucio server trusts the development IAM, and a
server started by the hub reaches it with nothing but what the spawner wrote."""

import configparser
import os
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dlaas_hub.dev import rucioserver

from . import rucio_fixtures
from .conftest import browser_login
from .rucio_fixtures import rucio_cli
from .test_spawn import server_environ, start, stop

pytestmark = pytest.mark.integration
rucio, hub = rucio_fixtures.rucio, rucio_fixtures.hub


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
