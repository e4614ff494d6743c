"""Prometheus metrics of dlaas-hub, in JupyterHub's own registry (served on ``/hub/metrics``).

Labels carry outcomes, kinds and the operator's target names only: never a user name or a token.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LOGINS = Counter(
    "dlaas_logins", "Sign-ins through DLaaSAuthenticator, by outcome "
    "(accepted, not_in_group, name_refused, subject_mismatch, provider_unavailable, refused, error).", ["outcome"])
TOKEN_REQUESTS = Counter(
    "dlaas_token_requests", "Token exchanges and refreshes at the provider, by kind, target and outcome "
    "(ok, or the OAuth error code, or unavailable).", ["kind", "target", "outcome"])
TOKEN_REQUEST_SECONDS = Histogram(
    "dlaas_token_request_duration_seconds", "Time of one token exchange or refresh at the provider.",
    ["kind", "target"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RENEWALS_SKIPPED = Counter(
    "dlaas_renewals_skipped_fresh", "Renewal checks that found every token fresh and made no request.")
CREDENTIALS_SERVED = Counter(
    "dlaas_credentials_served", "Answers of the credentials endpoint to token agents, by outcome "
    "(served, forbidden, not_found, login_expired, rate_limited: refused with 429 for asking too often).", ["outcome"])

IAM_QUEUE_LENGTH = Gauge(
    "dlaas_iam_queue_length", "Requests to the provider waiting for a slot "
    "(DLaaSAuthenticator.iam_concurrency_limit), by priority (login, renewal).", ["priority"])
IAM_IN_FLIGHT = Gauge("dlaas_iam_requests_in_flight", "Requests to the provider in flight.")
IAM_QUEUE_WAIT_SECONDS = Histogram(
    "dlaas_iam_queue_wait_seconds", "Time a request to the provider waited for a slot, by priority.",
    ["priority"], buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


# Each request to the provider changes the queue twice: its labelled series are looked up once here,
# not under prometheus_client's lock at every change.
_QUEUE_LENGTH = {priority: IAM_QUEUE_LENGTH.labels(priority) for priority in ("login", "renewal")}
_QUEUE_WAIT = {priority: IAM_QUEUE_WAIT_SECONDS.labels(priority) for priority in ("login", "renewal")}


def observe_queue(limiter) -> None:
    for priority, gauge in _QUEUE_LENGTH.items():
        gauge.set(limiter.queued(priority))
    IAM_IN_FLIGHT.set(limiter.in_flight)


def observe_queue_wait(priority: str, seconds: float) -> None:
    (_QUEUE_WAIT.get(priority) or IAM_QUEUE_WAIT_SECONDS.labels(priority)).observe(seconds)


def outcome_of(result) -> str:
    """``ok`` for a token, else the OAuth error code, ``unavailable`` for transient failures, ``failed``."""
    if not isinstance(result, BaseException):
        return "ok"
    if getattr(result, "transient", False):
        return "unavailable"
    error = getattr(result, "error", None)
    # OAuth error codes are a short fixed vocabulary; anything else would grow the label set.
    return error if isinstance(error, str) and error.replace("_", "").isalpha() and len(error) <= 40 else "failed"


def observe_token_request(kind: str, target: str, result, seconds: float) -> None:
    TOKEN_REQUESTS.labels(kind, target, outcome_of(result)).inc()
    TOKEN_REQUEST_SECONDS.labels(kind, target).observe(seconds)
