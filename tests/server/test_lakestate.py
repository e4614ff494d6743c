"""The data lake's state the token agent records for JupyterLab, and the server's answer."""

import json

from dlaas_hub.server import labstate, lakestate

NOW = 10_000


def status(**errors):
    tokens = [{"target": "eos", "state": "valid", "expires_at": NOW + 900, "last_renewal": NOW - 300,
               "last_error": None, "access_token": "NEVER-COPIED"},
              {"target": "rucio", "state": "valid", "expires_at": NOW + 2000, "last_renewal": NOW - 300,
               "last_error": None}]
    for t in tokens:
        if t["target"] in errors:
            t["last_error"] = {"error": "temporarily_unavailable", "reason": "", "at": errors[t["target"]]}
    return {"tokens": tokens, "sign_in_needed": None}


def test_fresh_tokens_are_ok_and_no_token_is_copied():
    state = lakestate.after_fetch(status(), NOW)
    assert state["renewal"] == "ok" and state["since"] is None
    assert [t["target"] for t in state["tokens"]] == ["eos", "rucio"]
    assert "NEVER-COPIED" not in json.dumps(state)


def test_an_error_after_the_last_renewal_is_a_failing_renewal_since_then():
    state = lakestate.after_fetch(status(eos=NOW - 60), NOW)
    assert (state["renewal"], state["since"]) == ("failing", NOW - 60)
    # An error the next renewal overcame is history, not a failure.
    assert lakestate.after_fetch(status(eos=NOW - 400), NOW)["renewal"] == "ok"


def test_the_hub_saying_sign_in_needed_or_401_is_sign_in_expired():
    said = {**status(), "sign_in_needed": {"at": NOW - 5, "reason": "invalid_grant"}}
    assert lakestate.after_fetch(said, NOW)["renewal"] == "sign_in_expired"
    first = lakestate.after_sign_in_expired(lakestate.after_fetch(status(), NOW), NOW)
    again = lakestate.after_sign_in_expired(first, NOW + 600)
    assert again["since"] == NOW and again["tokens"] == first["tokens"]


def test_an_unreachable_hub_is_failing_since_the_first_failed_round():
    first = lakestate.after_failure(lakestate.after_fetch(status(), NOW), NOW, "the hub could not be reached")
    later = lakestate.after_failure(first, NOW + 30, "the hub could not be reached")
    assert (later["renewal"], later["since"]) == ("failing", NOW)
    assert lakestate.after_fetch(status(), NOW + 60)["renewal"] == "ok"  # recovered


def test_the_server_answers_the_record_with_the_link_back_to_the_lab(tmp_path):
    path = tmp_path / lakestate.STATE_FILE
    env = {lakestate.STATE_ENV: str(path), "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_SERVICE_PREFIX": "/user/maria/"}
    assert labstate.read_state(env)["renewal"] == "unknown"  # before the agent's first round
    path.write_text(json.dumps(lakestate.after_fetch(status(), NOW)))
    answer = labstate.read_state(env)
    assert answer["renewal"] == "ok"
    assert answer["sign_in_url"] == "/hub/dlaas/sign-in-again?next=%2Fuser%2Fmaria%2Flab"


def test_a_server_without_token_files_says_off():
    # Started by another spawner, or a hub without exchange targets: the status bar shows nothing.
    assert labstate.read_state({"JUPYTERHUB_SERVICE_PREFIX": "/user/maria/"})["renewal"] == "off"
