"""The development IAM behaves like INDIGO IAM where dlaas-hub depends on it."""

import base64
import hashlib
import re
import secrets
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dlaas_hub.dev import devservices
from dlaas_hub.ops.cli import main

from .conftest import CLIENT_ID, PASSWORDS

pytestmark = pytest.mark.integration

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="module")
def redirect_uri(ports):
    return f"http://127.0.0.1:{ports['hub']}/hub/oauth_callback"


def authorize(iam_url, redirect_uri, username, *, pkce=True, scope="openid profile email offline_access wlcg.groups"):
    """Run the authorization request and login form; return the callback's query parameters."""
    verifier = secrets.token_urlsafe(32)
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri,
              "scope": scope, "state": "st"}
    if pkce:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params.update(code_challenge=challenge, code_challenge_method="S256")
    with httpx.Client(timeout=30) as client:
        response = client.get(urljoin(iam_url, "auth"), params=params)
        while response.status_code in (302, 303):
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(redirect_uri):
                return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, verifier
            response = client.get(location)
        action = re.search(r'action="([^"]+)"', response.text)
        assert action, response.text
        response = client.post(urljoin(str(response.url), action.group(1)),
                               data={"username": username, "password": PASSWORDS[username]})
        while response.status_code in (302, 303):
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(redirect_uri):
                return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, verifier
            response = client.get(location)
    raise AssertionError(f"no redirect to the client: {response.status_code}")


def token_request(iam_url, client_secret, **data):
    return httpx.post(urljoin(iam_url, "token"), data=data, auth=(CLIENT_ID, client_secret), timeout=30)


@pytest.fixture(scope="module")
def tokens(dev_iam, redirect_uri, client_secret):
    query, verifier = authorize(dev_iam, redirect_uri, "MariaSKA")
    response = token_request(dev_iam, client_secret, grant_type="authorization_code", code=query["code"],
                             redirect_uri=redirect_uri, code_verifier=verifier)
    assert response.status_code == 200, response.text
    return response.json()


def test_discovery_is_iam_like(dev_iam):
    doc = httpx.get(urljoin(dev_iam, ".well-known/openid-configuration")).json()
    assert doc["issuer"].endswith("/")
    assert EXCHANGE in doc["grant_types_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"groups", "wlcg.groups", "preferred_username", "email"} <= set(doc["claims_supported"])


def test_pkce_is_required(dev_iam, redirect_uri):
    query, _ = authorize(dev_iam, redirect_uri, "alice", pkce=False)
    assert query["error"] == "invalid_request"
    assert "PKCE" in query["error_description"]


def test_code_flow_gives_refresh_token_and_claims(dev_iam, tokens):
    assert tokens["refresh_token"] and tokens["id_token"]
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == "MariaSKA"
    assert claims["wlcg.groups"] == ["/escape", "/escape/ska"]
    assert claims["groups"] == ["escape", "escape/ska"]
    info = httpx.get(urljoin(dev_iam, "me"), headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["email"] == "maria@ska.example" and info["sub"] == claims["sub"]


def test_refresh_token_grant(dev_iam, tokens, client_secret):
    response = token_request(dev_iam, client_secret, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert response.status_code == 200
    assert response.json()["access_token"] != tokens["access_token"]


def test_ending_a_users_sign_ins_makes_their_refresh_fail_and_spares_others(dev_iam, redirect_uri, client_secret):
    def sign_in(username):
        query, verifier = authorize(dev_iam, redirect_uri, username)
        return token_request(dev_iam, client_secret, grant_type="authorization_code", code=query["code"],
                             redirect_uri=redirect_uri, code_verifier=verifier).json()["refresh_token"]

    hers, his = sign_in("MariaSKA"), sign_in("alice")
    control = urljoin(dev_iam, "_dev/control")
    assert httpx.post(control, json={"end_sign_ins_of": "nobody"}).status_code == 404
    ended = httpx.post(control, json={"end_sign_ins_of": "MariaSKA"}).json()["refresh_tokens_ended"]
    assert ended >= 1
    refused = token_request(dev_iam, client_secret, grant_type="refresh_token", refresh_token=hers)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert token_request(dev_iam, client_secret, grant_type="refresh_token", refresh_token=his).status_code == 200


def test_exchange_gives_audience_restricted_jwt(dev_iam, tokens, client_secret):
    response = token_request(dev_iam, client_secret, grant_type=EXCHANGE, subject_token=tokens["access_token"],
                             subject_token_type=ACCESS, audience="eos-eulake", scope="openid storage.read:/eos")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS and body["scope"] == "openid storage.read:/eos"
    jwks = jwt.PyJWKClient(urljoin(dev_iam, "jwks"))
    claims = jwt.decode(body["access_token"], key=jwks.get_signing_key_from_jwt(body["access_token"]).key,
                        algorithms=["RS256"], audience="eos-eulake", issuer=dev_iam)
    assert claims["act"] == {"sub": CLIENT_ID}
    assert claims["exp"] - time.time() == pytest.approx(body["expires_in"], abs=5)


def exchange(iam_url, client_secret, subject_token, scope="openid profile wlcg.groups storage.read:/eos"):
    response = token_request(iam_url, client_secret, grant_type=EXCHANGE, subject_token=subject_token,
                             subject_token_type=ACCESS, audience="eos-eulake", scope=scope)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def userinfo(iam_url, token):
    return httpx.get(urljoin(iam_url, "me"), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_userinfo_answers_an_exchanged_token_as_iam_does(dev_iam, tokens, client_secret):
    # EOS checks an `oauth2:<jwt>:<userinfo>` token by asking userinfo; IAM answers whatever the audience.
    info = userinfo(dev_iam, exchange(dev_iam, client_secret, tokens["access_token"]))
    assert info.status_code == 200, info.text
    body = info.json()
    assert body["preferred_username"] == "MariaSKA"
    assert body["sub"] == jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"]
    assert body["wlcg.groups"] == ["/escape", "/escape/ska"]
    assert "email" not in body  # only what the token's scopes release


def test_userinfo_refuses_an_exchanged_token_without_openid(dev_iam, tokens, client_secret):
    info = userinfo(dev_iam, exchange(dev_iam, client_secret, tokens["access_token"], scope="storage.read:/eos"))
    assert info.status_code == 403
    assert 'error="insufficient_scope"' in info.headers["www-authenticate"]


def test_userinfo_refuses_a_token_signed_by_another_key(dev_iam, tokens, client_secret):
    genuine = exchange(dev_iam, client_secret, tokens["access_token"])
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forged = jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                        algorithm="RS256", headers={"kid": header["kid"], "typ": "at+jwt"})
    info = userinfo(dev_iam, forged)
    assert info.status_code == 401 and 'error="invalid_token"' in info.headers["www-authenticate"]
    assert userinfo(dev_iam, genuine).status_code == 200


def test_userinfo_refuses_an_expired_exchanged_token(ports, client_secret, redirect_uri, tmp_path):
    port = devservices.free_port()
    iam = devservices.start_dev_iam(port, redirect_uris=[redirect_uri], client_id=CLIENT_ID,
                                    client_secret=client_secret, extra_args=["--exchange-token-ttl=5"])
    try:
        iam_url = f"http://127.0.0.1:{port}/"
        query, verifier = authorize(iam_url, redirect_uri, "alice")
        sign_in = token_request(iam_url, client_secret, grant_type="authorization_code", code=query["code"],
                                redirect_uri=redirect_uri, code_verifier=verifier).json()
        token = exchange(iam_url, client_secret, sign_in["access_token"])
        # A few seconds of life (exp is in whole seconds): answered while valid even on a busy machine.
        assert userinfo(iam_url, token).status_code == 200
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        time.sleep(max(0.0, expires + 1.1 - time.time()))
        info = userinfo(iam_url, token)
        assert info.status_code == 401 and "expired" in info.json()["error_description"]
    finally:
        devservices.stop(iam)


@pytest.mark.parametrize("data,error", [
    ({"audience": "rucio"}, "invalid_request"),  # no scope
    ({"audience": "rucio", "scope": "openid offline_access"}, "invalid_scope"),
    ({"audience": "rucio", "scope": "openid admin:everything"}, "invalid_scope"),
    ({"audience": "rucio", "scope": "openid", "subject_token": "not-a-token"}, "invalid_grant"),
    ({"audience": "rucio", "scope": "openid", "subject_token_type": "urn:x"}, "invalid_request"),
])
def test_exchange_refusals_are_iam_like(dev_iam, tokens, client_secret, data, error):
    request = {"grant_type": EXCHANGE, "subject_token": tokens["access_token"], "subject_token_type": ACCESS, **data}
    response = token_request(dev_iam, client_secret, **request)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_exchange_needs_client_authentication(dev_iam, tokens):
    response = token_request(dev_iam, "wrong-secret", grant_type=EXCHANGE, subject_token=tokens["access_token"],
                             subject_token_type=ACCESS, audience="rucio", scope="openid")
    assert response.status_code == 401


def test_fault_switches(dev_iam):
    control = urljoin(dev_iam, "_dev/control")
    discovery = urljoin(dev_iam, ".well-known/openid-configuration")
    try:
        httpx.post(control, json={"fail_mode": "500", "fail_paths": ["/.well-known"]})
        assert httpx.get(discovery).status_code == 500
        assert httpx.get(urljoin(dev_iam, "jwks")).status_code == 200  # other paths unaffected
        httpx.post(control, json={"fail_mode": "hang", "fail_paths": []})
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(discovery, timeout=0.5)
        httpx.post(control, json={"fail_mode": "none", "delay_ms": 300})
        started = time.monotonic()
        assert httpx.get(discovery).status_code == 200
        assert time.monotonic() - started >= 0.3
    finally:
        httpx.post(control, json={"fail_mode": "none", "fail_paths": [], "delay_ms": 0})
    stats = httpx.get(control).json()["stats"]
    assert stats["grants"].get(EXCHANGE, 0) >= 1


def test_the_readmes_node_requirement_is_one_the_providers_library_supports():
    # The README asks for Node.js 20 or newer: oidc-provider must accept the Node it runs on here
    # without its "Unsupported runtime" warning (version 9 asks for 22; 8 supports 18 LTS and later).
    import subprocess

    from dlaas_hub.dev import devservices

    result = subprocess.run([devservices.node(), "--input-type=module", "-e", "import 'oidc-provider'"],
                            cwd=devservices.REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unsupported runtime" not in result.stderr + result.stdout
    readme = (devservices.REPO_ROOT / "README.md").read_text()
    assert "Node.js 20+" in readme


def test_check_config_online_finds_the_development_iams_grants(dev_iam, tmp_path, capsys):
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"c.JupyterHub.authenticator_class = 'dlaas'\nc.DLaaSAuthenticator.oidc_issuer = {dev_iam!r}\n"
                      "c.DLaaSAuthenticator.client_id = 'x'\nc.DLaaSAuthenticator.client_secret = 's'\n"
                      "c.DLaaSAuthenticator.exchange_targets = {'eos': {'audience': 'eos', 'scope': 'openid'}}\n"
                      f"c.CryptKeeper.keys = ['{'a' * 64}']\n")
    assert main(["check-config", str(config), "--online"]) == 0, capsys.readouterr().out
