"""The facts a user sees of their data-lake tokens, never the tokens."""

import json

from dlaas_hub.tokens.exchange import ExchangeTarget
from dlaas_hub.tokens.status import token_status

from ..spawner_fixtures import auth_state

TARGETS = [ExchangeTarget("eos", "eos-eulake", "openid"), ExchangeTarget("rucio", "rucio", "openid", required=False)]


def test_each_target_with_expiry_renewal_and_error_and_no_token():
    state = auth_state(exchange_errors={"rucio": {"error": "invalid_scope", "reason": "refused", "at": 1_700_000_100}})
    state["exchanged"]["eos"]["obtained_at"] = 1_700_000_000
    del state["exchanged"]["rucio"]
    status = token_status(state, TARGETS, now=1_999_999_000)
    assert [s["target"] for s in status] == ["eos", "rucio"]
    eos, rucio = status
    assert eos["state"] == "valid" and eos["expires_at"] == 2_000_000_000 and eos["expires_in"] == 1000
    assert eos["audience"] == "eos-eulake" and eos["last_renewal"] == 1_700_000_000 and eos["last_error"] is None
    assert rucio["state"] == "missing" and rucio["audience"] == "rucio" and rucio["required"] is False
    assert rucio["last_error"] == {"error": "invalid_scope", "reason": "refused", "at": 1_700_000_100}
    text = json.dumps(status)
    for value in (state["access_token"], state["refresh_token"], state["exchanged"]["eos"]["access_token"]):
        assert value not in text


def test_expired_and_unconfigured_targets_are_shown():
    state = auth_state()
    status = token_status(state, TARGETS[:1], now=2_100_000_000)
    assert [(s["target"], s["state"]) for s in status] == [("eos", "expired"), ("rucio", "expired")]


def test_no_auth_state_means_every_target_missing():
    assert [s["state"] for s in token_status(None, TARGETS)] == ["missing", "missing"]
