"""Errors meant for people: how JupyterHub will show them, without a running hub."""

from jupyterhub.utils import format_exception
from tornado import web

from dlaas_hub.errors import as_user_error, login_error, user_error
from dlaas_hub.tokens.http import IAMError


def test_a_user_error_is_headed_by_its_status_and_shown_as_written():
    error = user_error(403, "You may not use the profile 'x': ask for 100% access.")
    assert error.status_code == 403
    assert error.reason == "Forbidden"  # heads JupyterHub's error page instead of the message
    # The spawn form and the REST API show this, where a bare HTTPError shows "HTTP 403: error (...)".
    assert format_exception(error) == ("You may not use the profile 'x': ask for 100% access.", None)
    assert str(error) == "HTTP 403: Forbidden (You may not use the profile 'x': ask for 100% access.)"


def test_a_user_error_may_log_something_else_than_it_shows():
    error = user_error(502, "Sign-in could not be completed.", log_message="token request: HTTP 500 at 50%")
    assert error.get_message() == "token request: HTTP 500 at 50%"
    assert error.jupyterhub_message == "Sign-in could not be completed."


def test_a_login_error_logs_the_cause_and_shows_the_advice():
    error = login_error(IAMError("token request", "HTTP 500 from https://iam/token", status=500, transient=True),
                        issuer="https://iam/")
    assert (error.status_code, error.reason) == (503, "Service Unavailable")
    assert error.get_message() == "token request: HTTP 500 from https://iam/token"
    assert "cannot be reached right now" in error.jupyterhub_message


def test_an_error_without_reason_is_given_the_user_error_form():
    error = web.HTTPError(403, "Not allowed here, 100% sure.")
    assert as_user_error(error) is error
    assert error.reason == "Forbidden"
    assert error.jupyterhub_message == "Not allowed here, 100% sure."


def test_an_error_with_its_own_reason_or_message_is_left_alone():
    timeout = web.HTTPError(500, "took too long", reason="timeout")
    as_user_error(timeout)
    assert timeout.reason == "timeout" and not hasattr(timeout, "jupyterhub_message")
    shown = web.HTTPError(403, "for the log")
    shown.jupyterhub_message = "for the person"
    as_user_error(shown)
    assert shown.reason is None and shown.jupyterhub_message == "for the person"


def test_a_users_mistake_is_one_warning_line_without_traceback():
    import logging

    from dlaas_hub.errors import UserMistakeFilter, user_mistake

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("test-user-mistake")
    log.propagate = False
    log.addHandler(Keep())
    log.addFilter(UserMistakeFilter())

    def refused_start(error):
        # What JupyterHub logs for a failed start, from the handler that asked for it, and the form.
        log.error(f"Error starting alice's server: {error}")
        log.warning(f"Error starting server alice: {error}", exc_info=True)  # outside an except block
        try:
            raise error
        except web.HTTPError:
            log.error("Failed to spawn single-user server with form", exc_info=True)

    error = user_mistake(403, "You may not use the profile 'x'.")
    assert error.jupyterhub_message == error.log_message == "You may not use the profile 'x'."
    refused_start(error)
    log.error("Error starting bob's server: HTTP 500: something else")
    refused_start(user_mistake(403, "You may not use the profile 'x'."))  # the same mistake, again
    shown = "Error starting alice's server: HTTP 403: Forbidden (You may not use the profile 'x'.)"
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", shown), ("ERROR", "Error starting bob's server: HTTP 500: something else"), ("WARNING", shown)]
    assert records[0].exc_info is None
