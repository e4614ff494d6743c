"""Hub accounts: acceptable names, and each account bound to one IAM subject."""

import logging

import pytest
from tornado import web

from dlaas_hub.auth.identity import DEFAULT_USERNAME_PATTERN, Subject, bound_subject, name_matches
from dlaas_hub.display import shown

from ..fakeiam import ISSUER, FakeHandler
from .build import make

pytestmark = pytest.mark.usefixtures("crypt_key")

HOSTILE_NAMES = ["a b", "alice;rm", "eve\nINFO forged line", "eve\r\n", "\x1b[31mred", "émile", "-rf", "x" * 300,
                 "alice\n", "", "../etc", "a/b"]


# -- pure rules ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_default_pattern_refuses_hostile_names(name):
    assert not name_matches(DEFAULT_USERNAME_PATTERN, name)


@pytest.mark.parametrize("name", ["alice", "mariaska", "j.doe@cern.ch", "a-b_c", "x" * 64])
def test_default_pattern_accepts_ordinary_names(name):
    assert name_matches(DEFAULT_USERNAME_PATTERN, name)


def test_shown_names_are_one_printable_line():
    text = shown("eve\nINFO forged \x1b[31m" + "x" * 100)
    assert text.isascii() and text.isprintable() and len(text) <= 64


def test_subject_compares_issuers_modulo_slash():
    assert Subject("s", "https://iam.example/") == Subject("s", "https://iam.example")
    assert Subject("s", "https://iam.example/") != Subject("t", "https://iam.example/")
    assert Subject("s", "https://iam.example/") != Subject("s", "https://other.example/")


def test_bound_subject_from_record_or_from_older_claims():
    assert bound_subject({"subject": {"sub": "a", "iss": "https://i/"}}, issuer="https://x") == Subject("a", "https://i")
    assert bound_subject({"oauth_user": {"sub": "b"}}, issuer="https://x/") == Subject("b", "https://x")
    assert bound_subject({}, issuer="https://x") is None
    assert bound_subject(None, issuer="https://x") is None


# -- the authenticator enforces them ------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE_NAMES[:-3])
def test_validate_username_enforces_the_default_pattern(name):
    # JupyterHub compiles username_pattern only when it changes: the default must be enforced too.
    assert not make().validate_username(name)


def test_a_broken_username_pattern_is_a_config_error():
    with pytest.raises(Exception, match="DLaaSAuthenticator.username_pattern"):
        make(username_pattern="([a-z")


@pytest.mark.parametrize("name", ["eve\nINFO forged line", "a b", "-rf", "x" * 300, "\u212aate"])
async def test_refused_name_gets_a_page_saying_so(iam, caplog, name):
    iam.user["preferred_username"] = name
    with pytest.raises(web.HTTPError) as info:
        await make().authenticate(FakeHandler())
    assert info.value.status_code == 403
    assert "not acceptable as a hub user name" in info.value.jupyterhub_message
    assert "group" not in info.value.jupyterhub_message
    assert "forged line" not in "\n".join(r.getMessage().split("\\n")[0] for r in caplog.records)
    assert all("\n" not in r.getMessage() for r in caplog.records)


async def test_empty_name_is_a_clear_403(iam):
    iam.user["preferred_username"] = ""
    with pytest.raises(web.HTTPError) as info:
        await make().authenticate(FakeHandler())
    assert info.value.status_code == 403
    assert "no user name" in info.value.jupyterhub_message


class HubUser:
    """An existing hub account as the callback handler finds it."""

    def __init__(self, auth_state, encrypted=True):
        self.auth_state = auth_state
        self.encrypted_auth_state = b"..." if encrypted else None

    async def get_auth_state(self):
        return self.auth_state


class Handler(FakeHandler):
    def __init__(self, users):
        super().__init__()
        self.users = users

    def find_user(self, name):
        return self.users.get(name)


ALICE = {"subject": {"sub": "alice-sub", "iss": ISSUER}, "oauth_user": {"sub": "alice-sub"}}


@pytest.mark.parametrize("their_name", ["ALICE", "Alice"])
async def test_a_name_folding_onto_an_account_does_not_take_it_over(iam, caplog, their_name):
    iam.user.update({"preferred_username": their_name, "sub": "mallory-sub"})
    with pytest.raises(web.HTTPError) as info:
        await make().authenticate(Handler({"alice": HubUser(ALICE)}))
    assert info.value.status_code == 403
    assert "belongs to another identity" in info.value.jupyterhub_message
    assert any(r.levelno == logging.WARNING and "subject_rebinds" in r.getMessage() for r in caplog.records)
    assert "mallory-sub" in caplog.text and "alice-sub" in caplog.text


async def test_kelvin_sign_cannot_claim_a_name(iam):
    iam.user.update({"preferred_username": "\u212aate", "sub": "mallory-sub"})  # KELVIN SIGN + "ate"
    with pytest.raises(web.HTTPError) as info:
        await make().authenticate(Handler({}))
    assert "not acceptable" in info.value.jupyterhub_message


async def test_the_owner_signs_in_and_the_binding_is_kept(iam):
    iam.user.update({"preferred_username": "alice", "sub": "alice-sub"})
    model = await make().authenticate(Handler({"alice": HubUser(ALICE)}))
    assert model["auth_state"]["subject"] == {"sub": "alice-sub", "iss": ISSUER.rstrip("/")}


async def test_first_login_binds_the_account(iam):
    iam.user.update({"preferred_username": "alice", "sub": "alice-sub"})
    model = await make().authenticate(Handler({}))
    assert model["auth_state"]["subject"]["sub"] == "alice-sub"
    # an account an admin created (no auth_state yet) is bound by its first login, too
    model = await make().authenticate(Handler({"alice": HubUser(None, encrypted=False)}))
    assert model["auth_state"]["subject"]["sub"] == "alice-sub"


async def test_accounts_from_before_the_binding_are_bound_by_their_stored_sub(iam):
    iam.user.update({"preferred_username": "alice", "sub": "mallory-sub"})
    with pytest.raises(web.HTTPError):
        await make().authenticate(Handler({"alice": HubUser({"oauth_user": {"sub": "alice-sub"}})}))


async def test_unreadable_auth_state_does_not_let_anyone_in(iam, caplog):
    iam.user.update({"preferred_username": "alice", "sub": "mallory-sub"})
    with pytest.raises(web.HTTPError):
        await make().authenticate(Handler({"alice": HubUser(None, encrypted=True)}))
    assert "JUPYTERHUB_CRYPT_KEY" in caplog.text


async def test_operator_rebinds_an_account_on_purpose(iam, caplog):
    iam.user.update({"preferred_username": "alice", "sub": "alice-new-sub"})
    auth = make(subject_rebinds={"alice": "alice-new-sub"})
    model = await auth.authenticate(Handler({"alice": HubUser(ALICE)}))
    assert model["auth_state"]["subject"]["sub"] == "alice-new-sub"
    assert "re-bound" in caplog.text
    # the entry names one subject: anyone else is still refused
    iam.user.update({"sub": "mallory-sub"})
    with pytest.raises(web.HTTPError):
        await auth.authenticate(Handler({"alice": HubUser(model["auth_state"])}))
