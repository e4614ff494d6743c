import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dlaas_hub.auth.idtoken import IDTokenError, JWKSCache, at_hash, new_nonce_seed, nonce_for, verify_id_token
from dlaas_hub.tokens.hubclient import make_client

from ..fakeiam import CLIENT_ID, ec_key, public_jwk, rsa_key

ALGS = ["RS256", "ES256"]


@pytest.fixture
async def jwks(iam):
    async with make_client() as client:
        yield JWKSCache(client, f"{iam.base}/jwks", min_refetch_interval=30)


async def verify(token, jwks, iam, **kw):
    kw.setdefault("algorithms", ALGS)
    return await verify_id_token(token, jwks=jwks, issuer=iam.issuer, audience=CLIENT_ID, **kw)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token_gives_claims(iam, jwks):
    claims = await verify(iam.id_token(), jwks, iam)
    assert claims["sub"] == "sub-123"
    assert claims["preferred_username"] == "MariaSKA"


async def test_issuer_compared_modulo_trailing_slash(iam, jwks):
    token = iam.id_token(iss=iam.issuer.rstrip("/"))
    assert (await verify(token, jwks, iam))["sub"] == "sub-123"


async def test_forged_signature_is_refused(iam, jwks):
    forged = iam.sign({"iss": iam.issuer, "sub": "admin", "aud": CLIENT_ID, "iat": int(time.time()),
                       "exp": int(time.time()) + 600}, key=rsa_key())
    with pytest.raises(IDTokenError, match="signature"):
        await verify(forged, jwks, iam)


async def test_unsigned_alg_none_is_refused(iam, jwks):
    now = int(time.time())
    token = b64({"alg": "none", "kid": iam.kid}) + "." + b64(
        {"iss": iam.issuer, "sub": "x", "aud": CLIENT_ID, "iat": now, "exp": now + 60}) + "."
    with pytest.raises(IDTokenError, match="algorithm 'none'"):
        await verify(token, jwks, iam)


async def test_hmac_signed_with_the_public_key_is_refused(iam, jwks):
    public_pem = iam.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    payload = {"iss": iam.issuer, "sub": "x", "aud": CLIENT_ID, "iat": now, "exp": now + 60}
    # PyJWT refuses to do this itself; build the token by hand as an attacker would.
    import hashlib
    import hmac
    signing_input = b64({"alg": "HS256", "kid": iam.kid}) + "." + b64(payload)
    sig = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    token = signing_input + "." + sig.rstrip(b"=").decode()
    with pytest.raises(IDTokenError, match="HS256"):
        await verify(token, jwks, iam, algorithms=ALGS + ["HS256"])


async def test_expired_token_is_refused(iam, jwks):
    now = int(time.time())
    with pytest.raises(IDTokenError, match="expired"):
        await verify(iam.id_token(iat=now - 1000, exp=now - 300), jwks, iam, leeway=60)


async def test_small_clock_skew_is_tolerated(iam, jwks):
    now = int(time.time())
    assert await verify(iam.id_token(iat=now - 700, exp=now - 30), jwks, iam, leeway=60)


async def test_wrong_issuer_is_refused(iam, jwks):
    with pytest.raises(IDTokenError, match="another provider"):
        await verify(iam.id_token(iss="https://evil.example/"), jwks, iam)


async def test_wrong_audience_is_refused(iam, jwks):
    with pytest.raises(IDTokenError, match="another client"):
        await verify(iam.id_token(aud="other-client"), jwks, iam)


async def test_several_audiences_need_azp(iam, jwks):
    with pytest.raises(IDTokenError, match="azp"):
        await verify(iam.id_token(aud=[CLIENT_ID, "other"]), jwks, iam)
    assert await verify(iam.id_token(aud=[CLIENT_ID, "other"], azp=CLIENT_ID), jwks, iam)


async def test_missing_required_claims_are_refused(iam, jwks):
    with pytest.raises(IDTokenError, match="invalid"):
        await verify(iam.id_token(sub=None), jwks, iam)


async def test_nonce_checked_when_sent(iam, jwks):
    assert await verify(iam.id_token(nonce="n1"), jwks, iam, nonce="n1")
    with pytest.raises(IDTokenError, match="nonce"):
        await verify(iam.id_token(nonce="n1"), jwks, iam, nonce="n2")


async def test_unknown_kid_refetches_jwks_once_for_rotation(iam, jwks):
    assert await verify(iam.id_token(), jwks, iam)
    assert iam.jwks.call_count == 1
    new_key = rsa_key()
    iam.jwks_keys = [public_jwk(new_key, "key-2")]
    iam.key, iam.kid = new_key, "key-2"
    assert await verify(iam.id_token(), jwks, iam)
    assert iam.jwks.call_count == 2


async def test_unknown_kid_is_refused_and_refetch_is_rate_limited(iam, jwks):
    await verify(iam.id_token(), jwks, iam)
    stranger = rsa_key()
    for _ in range(5):
        token = iam.sign({"iss": iam.issuer, "sub": "x", "aud": CLIENT_ID, "iat": int(time.time()),
                          "exp": int(time.time()) + 60}, key=stranger, kid="unknown")
        with pytest.raises(IDTokenError, match="does not publish"):
            await verify(token, jwks, iam)
    assert iam.jwks.call_count == 2  # one refetch for the first unknown kid, then none within the interval


async def test_token_without_kid_is_refused(iam, jwks):
    token = jwt.encode({"sub": "x"}, iam.key, algorithm="RS256")
    with pytest.raises(IDTokenError, match="kid"):
        await verify(token, jwks, iam)


async def test_key_type_must_fit_algorithm(iam, jwks):
    key = ec_key()
    token = iam.sign({"iss": iam.issuer, "sub": "x", "aud": CLIENT_ID, "iat": int(time.time()),
                      "exp": int(time.time()) + 60}, key=key, alg="ES256")  # names the RSA key's kid
    with pytest.raises(IDTokenError, match="type does not fit"):
        await verify(token, jwks, iam)


async def test_ec_keys_work(iam, jwks):
    key = ec_key()
    iam.jwks_keys.append(public_jwk(key, "ec-1", "ES256"))
    token = iam.sign({"iss": iam.issuer, "sub": "sub-ec", "aud": CLIENT_ID, "iat": int(time.time()),
                      "exp": int(time.time()) + 60}, key=key, kid="ec-1", alg="ES256")
    assert (await verify(token, jwks, iam))["sub"] == "sub-ec"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", None])
async def test_malformed_tokens_are_refused(iam, jwks, token):
    with pytest.raises(IDTokenError):
        await verify(token, jwks, iam)


# A list, not ASCII, not base64url, not JSON.
@pytest.mark.parametrize("header", ["WzFd", "\u00e9", "e30!", "bm90IGpzb24"])
async def test_a_header_that_is_not_a_json_object_is_refused_as_malformed(iam, jwks, header):
    with pytest.raises(IDTokenError, match="not a well-formed JWT"):
        await verify(f"{header}.e30.c2ln", jwks, iam)


async def test_a_well_formed_header_on_a_broken_token_is_refused_by_the_verification(iam, jwks):
    with pytest.raises(IDTokenError, match="invalid"):
        await verify(b64({"alg": "RS256", "kid": iam.kid}) + ".!!!.c2ln", jwks, iam)


async def test_errors_never_contain_the_token(iam, jwks):
    token = iam.id_token(aud="other-client")
    with pytest.raises(IDTokenError) as info:
        await verify(token, jwks, iam)
    assert token not in str(info.value)
    assert token.split(".")[1][:20] not in str(info.value)


async def test_jwks_without_keys_is_an_error(iam, jwks):
    iam.jwks.mock(return_value=httpx.Response(200, json={"nope": []}))
    with pytest.raises(IDTokenError, match="no key list"):
        await verify(iam.id_token(), jwks, iam)


def test_at_hash_is_the_left_half_of_the_hash_as_openid_connect_core_computes_it():
    # The example of OpenID Connect Core, appendix A.3 (RS256).
    assert at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"
    assert len(at_hash("token", "ES384")) == 32 and len(at_hash("token", "PS512")) == 43


def test_nonce_is_a_hash_of_the_seed_never_the_seed():
    seed = new_nonce_seed()
    assert nonce_for(seed) == nonce_for(seed) != seed
    assert nonce_for(new_nonce_seed()) != nonce_for(seed)


async def test_at_hash_checked_against_the_access_token_when_present(iam, jwks):
    token = iam.id_token(at_hash=at_hash("the-access-token", "RS256"))
    assert await verify(token, jwks, iam, access_token="the-access-token")
    with pytest.raises(IDTokenError, match="at_hash"):
        await verify(token, jwks, iam, access_token="another-access-token")
    assert await verify(iam.id_token(), jwks, iam, access_token="any")  # no at_hash: nothing to compare


async def test_a_missing_nonce_is_refused_when_one_is_expected(iam, jwks):
    with pytest.raises(IDTokenError, match="nonce is missing"):
        await verify(iam.id_token(), jwks, iam, nonce="n1")
    with pytest.raises(IDTokenError, match="nonce"):
        await verify(iam.id_token(nonce=["n1"]), jwks, iam, nonce="n1")
