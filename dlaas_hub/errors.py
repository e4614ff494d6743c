"""Turning provider failures into pages a scientist can read and act on.

JupyterHub shows ``jupyterhub_message`` on its error page; the ``log_message`` goes to the hub's
log. Both are built from :class:`~dlaas_hub.http.IAMError` fields that never hold a token.
"""

from __future__ import annotations

import logging
from http.client import responses

from tornado import web
from traitlets import TraitError

from .exchange import ExchangeError
from .http import IAMError


class ConfigError(TraitError):
    """A setting of the hub's configuration is missing or wrong; the message names it."""


def user_error(status: int, message: str, *, log_message: str | None = None) -> web.HTTPError:
    """An HTTP error whose ``message`` is written for the person who made the request.

    JupyterHub heads its error page with the error's reason, or with the message itself when there
    is none, and then shows the message again below; its spawn form shows ``str(error)``
    ("HTTP 403: error (...)", once it has set the reason of a failed start to "error"). With the
    standard phrase as the reason and the message as ``jupyterhub_message``, the heading reads
    "403 : Forbidden", the message appears once, and the form and the REST API show it as written.
    ``log_message`` (the message when not given) is what the hub's log shows.
    """
    # tornado escapes the % of a log message given without arguments itself.
    exc = web.HTTPError(status, log_message if log_message is not None else message, reason=responses.get(status))
    exc.jupyterhub_message = message
    return exc


def as_user_error(error: web.HTTPError) -> web.HTTPError:
    """Give an error raised without a reason (as oauthenticator's refusals are) the user_error form."""
    if error.reason is None and getattr(error, "jupyterhub_message", None) is None:
        error.reason = responses.get(error.status_code)
        error.jupyterhub_message = error.get_message()
    return error


def login_error(error: IAMError, *, issuer: str, status: int | None = None) -> web.HTTPError:
    if isinstance(error, ExchangeError):
        status, message = _exchange_message(error)
    elif error.transient:
        status = status or 503
        message = (f"The identity provider ({issuer}) cannot be reached right now. "
                   "Please try signing in again in a few minutes; if this persists, tell your hub administrator.")
    elif error.error == "invalid_grant":
        status = status or 403
        message = "The identity provider did not accept this sign-in (invalid_grant). Please sign in again."
    else:
        status = status or 502
        message = (f"Sign-in could not be completed: {error.reason}. "
                   "Please try again; if this persists, tell your hub administrator.")
    return user_error(status, message, log_message=str(error))


def _exchange_message(error: ExchangeError) -> tuple[int, str]:
    target = error.target
    if error.transient:
        return 503, (
            f"Sign-in could not be completed: the identity provider did not issue your "
            f"'{target.name}' storage token in time. Please try again in a few minutes; if this persists, "
            "tell your hub administrator."
        )
    cause = error.error or error.reason
    return 403, (
        f"Sign-in could not be completed: the identity provider refused your '{target.name}' storage "
        f"token ({cause}). Please ask your hub administrator to check that the hub's IAM client may "
        f"exchange tokens for audience '{target.audience}' with scope '{target.scope}'."
    )


#: Starts the log message of an error that is the user's mistake (a profile they may not use).
USER_MISTAKE = "Not started, the user's choice: "


def user_mistake(status: int, message: str, log_message: str) -> web.HTTPError:
    """A :func:`user_error` that the hub's log shows as one warning line, without a traceback."""
    return user_error(status, message, log_message=USER_MISTAKE + log_message)


class UserMistakeFilter(logging.Filter):
    """JupyterHub logs every failed start as an error, and the form's with a traceback as well.

    For a user's mistake that is noise at the wrong level: its line becomes a warning, and the
    form handler's repetition with the traceback is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and USER_MISTAKE in str(getattr(exc, "log_message", "")):
            return False  # the same failure, logged once already when the start was refused
        if record.levelno >= logging.ERROR and USER_MISTAKE in str(record.msg):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_MISTAKES = UserMistakeFilter()


def install_user_mistake_filter(logger: logging.Logger) -> None:
    """On ``logger`` and on tornado's application logger, where JupyterHub's ``User`` logs."""
    for each in (logger, logging.getLogger("tornado.application")):
        if _MISTAKES not in each.filters:
            each.addFilter(_MISTAKES)
