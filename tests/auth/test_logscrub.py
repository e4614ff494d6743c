"""No authorization code, state or token reaches a log line, whatever logger writes it."""

import io
import logging

import pytest

from dlaas_hub.auth import logscrub


@pytest.fixture
def hub_log():
    """A logger with a handler, as JupyterHub's app log has, and the scrub filter installed."""
    stream = io.StringIO()
    logger = logging.getLogger("test-hub")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    child = logging.getLogger("test-hub.tornado.general")  # records that only propagate to it
    logscrub.install(logger)
    yield logger, child, stream
    logger.removeHandler(handler)


def test_tornado_style_refusal_line_loses_code_and_state(hub_log):
    logger, child, stream = hub_log
    child.warning("%d %s: %s", 403, "GET /hub/oauth_callback?code=SECRETCODE123&state=eyJzdGF0ZSI6MX0 "
                  "(127.0.0.1)", "refused")
    line = stream.getvalue()
    assert "SECRETCODE123" not in line and "eyJzdGF0ZSI6MX0" not in line
    assert "code=[secret]" in line and "state=[secret]" in line and "403 GET /hub/oauth_callback" in line


@pytest.mark.parametrize("secret_text", [
    "/hub/api/users?token=0123456789abcdef0123456789abcdef",
    "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    "refresh_token=opaque-refresh-value-1234&x=1",
    "id_token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    "Authorization: token 0123456789abcdef0123456789abcdef",
    # Each with one of what a secret needs only (no "=", no "eyJ", no "token"), for the quick test.
    "AUTHORIZATION: BEARER abcdefghijklmnopqrstuvwxyz0123",
    "the answer carried eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    # A secret parameter inside another's value, and in capitals.
    "302 GET /hub/login?next=/hub/api/x?token=0123456789abcdef0123456789abcdef",
    "POST body ACCESS_TOKEN=opaque-refresh-value-1234 (x)",
    "redirect?a=b&Refresh_Token=opaque-refresh-value-1234",
])
def test_tokens_in_any_form_are_redacted(hub_log, secret_text):
    logger, _, stream = hub_log
    logger.debug("request: %s", secret_text)
    assert "[secret]" in stream.getvalue()
    for piece in ("0123456789abcdef0123456789abcdef", "eyJzdWIiOiJ4In0", "opaque-refresh-value-1234",
                  "abcdefghijklmnopqrstuvwxyz0123"):
        assert piece not in stream.getvalue()


def test_a_line_break_in_a_value_cannot_forge_a_line(hub_log):
    logger, child, stream = hub_log
    child.info("user %s logged in", "eve\n[I 2026-11-26 JupyterHub] admin logged in")
    assert stream.getvalue().count("\n") == 1
    assert "eve\\n[I" in stream.getvalue()


def test_ordinary_lines_are_left_alone(hub_log):
    logger, _, stream = hub_log
    logger.info("Token exchange for target %s failed for user %s", "eos", "alice")
    assert stream.getvalue() == "Token exchange for target eos failed for user alice\n"


def test_tracebacks_keep_their_lines(hub_log):
    logger, _, stream = hub_log
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed at code=abc")
    out = stream.getvalue()
    assert "Traceback" in out and "code=[secret]" in out and out.count("\n") > 2


def test_the_authorization_requests_nonce_is_scrubbed(hub_log):
    logger, _, stream = hub_log
    logger.info("302 GET /hub/oauth_login -> https://iam.example/authorize?client_id=hub&nonce=N0nceValue42&scope=openid")
    line = stream.getvalue()
    assert "N0nceValue42" not in line and "nonce=[secret]&scope=openid" in line
