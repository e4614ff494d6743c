"""What a JWT says of itself (tokens/claims.py): expiry and subject, each token decoded once."""

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


def test_each_token_is_decoded_once_and_the_cache_holds_no_token(monkeypatch):
    decoded = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda t, **kw: decoded.append(t) or real(t, **kw))
    a, b = token(jti="a"), token(jti="b")
    for _ in range(3):
        jwt_expiry(a), subject_mismatch(a, "sub-1", ISS), jwt_expiry(b)
    assert decoded == [a, b]
    assert all(isinstance(k, bytes) and len(k) == 32 for k in claims._claims_by_digest)
    assert not any(t.encode() in k for k in claims._claims_by_digest for t in (a, b))


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(claims, "_REMEMBERED", 4)
    monkeypatch.setattr(claims, "_claims_by_digest", type(claims._claims_by_digest)())
    tokens = [token(jti=str(i)) for i in range(10)]
    for t in tokens:
        jwt_expiry(t)
    assert len(claims._claims_by_digest) == 4
    assert jwt_expiry(tokens[0]) == 2_000_000_000  # forgotten, decoded again
