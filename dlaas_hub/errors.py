"""Turning provider failures into pages a scientist can read and act on.

JupyterHub shows ``jupyterhub_message`` on its error page; the ``log_message`` goes to the hub's
log. Both are built from :class:`~dlaas_hub.http.IAMError` fields that never hold a token.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from http.client import responses

from tornado import web
from traitlets import TraitError

from .tokens.exchange import ExchangeError
from .tokens.http import IAMError


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
    elif error.error:
        # A refusal in the provider's own words (Keycloak: not_allowed "Offline tokens not allowed for
        # the user or client"): the same sign-in would be refused again.
        status = status or 502
        said = ": ".join(filter(None, (error.error, error.description)))
        message = (f"The identity provider refused this sign-in ({said}). Signing in again will not change "
                   "that: please tell your hub administrator, who will find this refusal in the hub's log.")
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


# The users' mistakes raised lately, and whether the log has shown each yet: JupyterHub logs one
# failed start up to three times. The filter knows JupyterHub's lines by the message (JupyterHub
# 5.5's REST API answers with the log message, so it must stay the user's text).
_RECENT_MISTAKES: OrderedDict[str, bool] = OrderedDict()


def user_mistake(status: int, message: str) -> web.HTTPError:
    """A :func:`user_error` that the hub's log shows as one warning line, without a traceback."""
    _remember_mistake(message)
    return user_error(status, message)


class FormNotice(Exception):
    """Raised where JupyterHub would act on a request it should show the form for instead.

    Its message is written for the user: JupyterHub's spawn page shows it above the form with a
    200 status (it is no error of theirs), and the hub's log shows one warning line.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message
        _remember_mistake(message)


def _remember_mistake(message: str) -> None:
    _RECENT_MISTAKES[message] = False
    _RECENT_MISTAKES.move_to_end(message)
    while len(_RECENT_MISTAKES) > 64:
        _RECENT_MISTAKES.popitem(last=False)


def _mistake_in(text: str) -> str | None:
    return next((message for message in list(_RECENT_MISTAKES) if message in text), None)


class UserMistakeFilter(logging.Filter):
    """JupyterHub logs a refused start as an error, again from the handler that asked for it, and
    from the form with a traceback. For a user's mistake (a profile they may not use) that is noise
    at the wrong level: the first line becomes a warning without traceback, the others are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = _mistake_in(str(record.msg)) or (_mistake_in(str(exc)) if exc is not None else None)
        if message is None:
            return True
        if _RECENT_MISTAKES.get(message):
            return False  # shown already
        _RECENT_MISTAKES[message] = True
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


_MISTAKES = UserMistakeFilter()


def install_user_mistake_filter(logger: logging.Logger) -> None:
    """On ``logger`` and on tornado's application logger, where JupyterHub's ``User`` logs."""
    for each in (logger, logging.getLogger("tornado.application")):
        if _MISTAKES not in each.filters:
            each.addFilter(_MISTAKES)
