"""What a JWT says of itself (tokens/claims.py): expiry and subject, read from the payload alone."""

import jwt
import pytest

from dlaas_hub.tokens import claims
from dlaas_hub.tokens.claims import jwt_expiry, subject_mismatch

ISS = "https://iam.example/"


def token(**payload) -> str:
    return jwt.encode({"sub": "sub-1", "iss": ISS, "exp": 2_000_000_000, **payload}, "k" * 32, algorithm="HS256")


def test_expiry_and_subject_are_read_from_the_token():
    t = token(exp=1_900_000_000)
    assert jwt_expiry(t) == 1_900_000_000
    assert subject_mismatch(t, "sub-1", "https://iam.example") is None
    assert "another subject" in subject_mismatch(t, "sub-2", ISS)
    assert "another provider" in subject_mismatch(t, "sub-1", "https://other.example/")


@pytest.mark.parametrize("opaque", ["", "not-a-jwt", "a.b.c", None])
def test_an_opaque_token_says_nothing(opaque):
    assert jwt_expiry(opaque) is None and subject_mismatch(opaque, "sub-1", ISS) is None


@pytest.mark.parametrize("exp", ["soon", True, None])
def test_an_expiry_that_is_not_a_number_is_none(exp):
    assert jwt_expiry(token(exp=exp)) is None


@pytest.mark.parametrize("odd", ["a.W10.c", "a.bm90IGpzb24.c", "a.!!!!.c", "a.e30.c.d.e", "a.\u00e9.c"])
def test_a_payload_that_is_not_a_json_object_says_nothing(odd):  # a list, not JSON, not base64, a JWE, not ASCII
    assert jwt_expiry(odd) is None and subject_mismatch(odd, "sub-1", ISS) is None


def test_the_claims_are_those_pyjwt_reads():
    t = token(aud=["a", "b"], scope="openid storage.read:/eos", nested={"x": [1, 2]})
    assert claims._unverified_claims(t) == jwt.decode(t, options={"verify_signature": False})
