"""A login's id_token, access token and exchanged tokens all belong to that login and one subject."""

import logging
import time

import pytest
from tornado import web

from dlaas_hub.auth.idtoken import at_hash, nonce_for

from ..fakeiam import NONCE_SEED, FakeHandler
from ..tokens.test_renewal import StoredUser, expire
from .build import make

# DLaaSAuthenticator refuses to start without an auth_state encryption key.
pytestmark = pytest.mark.usefixtures("crypt_key")


@pytest.fixture
async def auth(iam):
    a = make(refresh_margin=300, refresh_backoff=0.2)
    yield a
    await a.iam_client.aclose()


async def refused(auth, handler=None) -> web.HTTPError:
    with pytest.raises(web.HTTPError) as info:
        await auth.authenticate(handler or FakeHandler())
    assert info.value.status_code == 403
    return info.value


def answer_with_id_token(iam, **claims):
    """The provider's code-exchange answer carries an id_token with these claims instead."""
    original = iam.token.side_effect

    def token(request):
        response = original(request)
        if b"authorization_code" in request.content:
            body = response.json()
            body["id_token"] = iam.id_token(**claims)
            return type(response)(200, json=body)
        return response

    iam.token.mock(side_effect=token)


async def test_an_id_token_from_another_login_is_refused(iam, auth, caplog):
    # The provider's answer (or an attacker altering it) carries a genuine id_token of another login.
    answer_with_id_token(iam, sub="sub-of-someone-else", preferred_username="alice",
                         nonce=nonce_for("another-browsers-seed"), at_hash=None)
    with caplog.at_level(logging.WARNING):
        error = await refused(auth)
    assert "Sign-in could not be completed" in error.jupyterhub_message and "try again" in error.jupyterhub_message
    assert "nonce" in caplog.text and "another-browsers-seed" not in caplog.text
    assert iam.userinfo.call_count == 0


async def test_an_id_token_without_nonce_is_refused(iam, auth, caplog):
    answer_with_id_token(iam, nonce=None, at_hash=at_hash(iam.access_token, "RS256"))
    with caplog.at_level(logging.WARNING):
        await refused(auth)
    assert "nonce is missing" in caplog.text


async def test_a_login_whose_state_holds_no_nonce_is_refused(iam, auth, caplog):
    with caplog.at_level(logging.WARNING):
        await refused(auth, FakeHandler(nonce_seed=None))
    assert "holds no nonce" in caplog.text


async def test_the_nonce_is_checked_against_the_browsers_own_state(iam, auth):
    # The id_token's nonce is the FakeIAM's seed; this browser's state holds another one.
    await refused(auth, FakeHandler(nonce_seed="seed-of-this-browser"))


async def test_an_at_hash_of_another_access_token_is_refused(iam, auth, caplog):
    answer_with_id_token(iam, nonce=nonce_for(NONCE_SEED), at_hash=at_hash("another-access-token", "RS256"))
    with caplog.at_level(logging.WARNING):
        await refused(auth)
    assert "at_hash" in caplog.text


async def test_an_id_token_without_at_hash_is_accepted_with_its_nonce(iam, auth):
    answer_with_id_token(iam, nonce=nonce_for(NONCE_SEED), at_hash=None)
    model = await auth.authenticate(FakeHandler())
    assert model["name"] == "mariaska"


async def test_a_jwt_access_token_about_another_subject_is_refused(iam, auth, caplog):
    now = int(time.time())
    iam.access_token = iam.sign({"iss": iam.issuer, "sub": "sub-of-someone-else", "aud": "x",
                                 "iat": now, "exp": now + 3600})
    with caplog.at_level(logging.WARNING):
        await refused(auth)
    assert "access token does not belong to the id_token" in caplog.text


async def test_exchanged_tokens_about_another_subject_refuse_the_login(iam, auth, caplog):
    iam.exchange_sub = "sub-of-someone-else"
    with caplog.at_level(logging.WARNING):
        error = await refused(auth)
    assert error.dlaas_outcome == "subject_mismatch"
    assert "not that subject's: it is about another subject" in caplog.text


async def test_exchanged_tokens_from_another_issuer_refuse_the_login(iam, auth, caplog):
    iam.exchange_iss = "https://elsewhere.example/"
    with caplog.at_level(logging.WARNING):
        await refused(auth)
    assert "issued by another provider" in caplog.text


@pytest.fixture
async def user(iam, auth):
    model = await auth.authenticate(FakeHandler())
    return StoredUser(model["name"], model["auth_state"])


def assert_only_the_expiry_recorded(user, before):
    """No token of the other subject is kept: the stored state gains only the sign-in-again mark."""
    after = dict(user.state)
    assert "another subject" in after.pop("login_expired")["reason"]
    assert after == before and user.saves == 1


async def test_a_refreshed_access_token_about_another_subject_ends_the_login(iam, auth, user, caplog):
    now = int(time.time())
    iam.refresh_extra = {"access_token": iam.sign({"iss": iam.issuer, "sub": "sub-of-someone-else",
                                                   "iat": now, "exp": now + 3600})}
    expire(user, "eos", "rucio", access=True)
    before = dict(user.state)
    with caplog.at_level(logging.WARNING):
        assert await auth.refresh_credentials(user) is False
    assert_only_the_expiry_recorded(user, before)
    assert "refreshed access_token is not about IAM subject 'sub-123'" in caplog.text


async def test_a_refreshed_id_token_about_another_subject_ends_the_login(iam, auth, user, caplog):
    iam.refresh_extra = {"id_token": iam.id_token(sub="sub-of-someone-else")}
    expire(user, "eos", access=True)
    before = dict(user.state)
    with caplog.at_level(logging.WARNING):
        assert await auth.refresh_credentials(user) is False
    assert_only_the_expiry_recorded(user, before)
    assert "refreshed id_token is not about IAM subject" in caplog.text


async def test_a_re_exchanged_token_about_another_subject_ends_the_login(iam, auth, user, caplog):
    iam.exchange_sub = "sub-of-someone-else"
    expire(user, "rucio")
    before = dict(user.state)
    with caplog.at_level(logging.WARNING):
        assert await auth.refresh_credentials(user) is False
    assert_only_the_expiry_recorded(user, before)
    assert "rucio token is not about IAM subject" in caplog.text


async def test_renewal_of_the_same_subject_is_stored(iam, auth, user):
    expire(user, "eos", "rucio", access=True)
    assert await auth.refresh_credentials(user) is True
    assert user.saves == 1
