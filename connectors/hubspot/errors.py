"""What to do about every HubSpot failure: one table from HTTP status to an action.

The SDK raises ``ApiException`` (one class per generated package, all sharing ``status`` and
``body``) for non-2xx answers, and lets urllib3 errors escape raw. ``classify`` turns either into
a ``Failure`` (the action, whether the request may have been applied, and a message built from
HubSpot's ``category``/``message`` fields, never from request payloads or headers);
``HubSpotClient`` executes the action and ``to_error`` builds the closedloop error.

Whether a failed request was applied matters for the non-idempotent batch create: a 4xx answer
(429 included) means HubSpot applied nothing; a 5xx, a read timeout or a connection dropped after
the request was sent leaves the outcome unknown; a refused connection means nothing was sent.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import urllib3

from connectors.errors import (
    AuthError,
    ClosedloopError,
    ConfigError,
    Fatal,
    RateLimited,
    RecordRejected,
    Transient,
)

__all__ = [
    "HTTP_ACTIONS",
    "Action",
    "Failure",
    "OutcomeUnknown",
    "classify",
    "is_api_exception",
    "to_error",
]


class Action(enum.Enum):
    """What the client does next."""

    REFRESH = "refresh the OAuth token, then repeat the call once"
    WAIT = "wait for the rate-limit interval, then repeat (nothing was applied)"
    RETRY = "Transient: repeat with backoff if the call is safe to repeat"
    AUTH = "AuthError: stop the pipeline"
    CONFIG = "ConfigError: stop and fix the configuration"
    REJECT = "RecordRejected: dead-letter the record(s), continue"
    FAIL = "Fatal: unknown failure"


@dataclass(frozen=True)
class Rule:
    """An action and the remedy a human reads in the error message."""

    action: Action
    remedy: str = ""


HTTP_ACTIONS: dict[int, Rule] = {
    400: Rule(Action.REJECT, "HubSpot refused the values"),
    401: Rule(
        Action.REFRESH,
        "check the private app's access token (Settings > Integrations > Private Apps) or the "
        "OAuth app's client id, secret and refresh token",
    ),
    403: Rule(
        Action.AUTH,
        "give the app the scopes closedloop needs (crm.objects.contacts/companies/deals read and "
        "write, crm.schemas.*.read/write for properties, content and forms for marketing)",
    ),
    404: Rule(Action.REJECT, "the record does not exist"),
    409: Rule(Action.REJECT, "a unique value is already used"),
    413: Rule(Action.REJECT, "request body too large"),
    414: Rule(Action.CONFIG, "URL too long: a closedloop bug, please report it"),
    415: Rule(Action.CONFIG, "unsupported media type: a closedloop bug, please report it"),
    429: Rule(Action.WAIT, "too many requests"),
}


class OutcomeUnknown(Transient):
    """The request may or may not have been applied (5xx, timeout after sending, dropped link)."""


@dataclass(frozen=True)
class Failure:
    """A classified failure: the action, whether HubSpot may have applied it, and the details."""

    action: Action
    status: int
    category: str
    message: str
    remedy: str = ""
    applied_unknown: bool = False
    policy: str = ""
    retry_after: float | None = None


def is_api_exception(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the SDK's ApiException classes (each package has its own)."""
    return type(exc).__module__.startswith("hubspot.") and hasattr(exc, "status")


def _body(exc: BaseException) -> dict[str, Any]:
    raw = getattr(exc, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _header(exc: BaseException, name: str) -> str | None:
    headers = getattr(exc, "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def classify(exc: BaseException) -> Failure | None:
    """The failure ``exc`` stands for, or None when it is not an SDK or urllib3 error."""
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return _transport(exc)
    if not is_api_exception(exc):
        return None
    status = int(getattr(exc, "status", 0) or 0)
    body = _body(exc)
    category = str(body.get("category") or body.get("errorType") or body.get("status") or "")
    message = str(body.get("message") or getattr(exc, "reason", "") or "no message")
    if status == 0:
        # The SDK wraps TLS failures into a status-0 ApiException.
        return Failure(Action.RETRY, 0, "SSL_ERROR", "TLS handshake failed", applied_unknown=False)
    if status >= 500:
        return Failure(
            Action.RETRY, status, category or "SERVER_ERROR", message, "HubSpot server error",
            applied_unknown=True,
        )  # fmt: skip
    rule = HTTP_ACTIONS.get(status, Rule(Action.FAIL, "unexpected HTTP status"))
    policy = str(body.get("policyName") or "")
    retry_after = None
    if status == 429:
        interval = _header(exc, "X-HubSpot-RateLimit-Interval-Milliseconds")
        if policy == "SECONDLY":
            retry_after = 1.0
        elif interval and interval.isdigit():
            retry_after = int(interval) / 1000
    return Failure(rule.action, status, category, message, rule.remedy, False, policy, retry_after)


def _transport(exc: urllib3.exceptions.HTTPError) -> Failure:
    name = type(exc).__name__
    # Connect failures happen before a byte of the request is sent: nothing can be applied.
    unsent = isinstance(
        exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        unsent = isinstance(
            exc.reason,
            urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError,
        )
        name = type(exc.reason).__name__
    where = _where(exc)
    message = f"{name} talking to HubSpot at {where}"
    if unsent:
        message = f"cannot connect to HubSpot at {where}"
    return Failure(
        Action.RETRY, 0, name, message, UNREACHABLE_REMEDY, applied_unknown=not unsent,
    )  # fmt: skip


UNREACHABLE_REMEDY = (
    "check the connection's host setting and that this machine can reach it; for the local "
    "sandbox, is `closedloop sandbox serve` running?"
)


def _where(exc: BaseException) -> str:
    """``host:port`` of the connection a urllib3 error is about (``?`` when it names none)."""
    for holder in (exc, getattr(exc, "reason", None)):
        # NewConnectionError names its connection ``conn`` (its ``pool`` is deprecated).
        connect = isinstance(holder, urllib3.exceptions.NewConnectionError)
        for attribute in ("conn",) if connect else ("pool",):
            target = getattr(holder, attribute, None)
            host = getattr(target, "host", None)
            if host:
                port = getattr(target, "port", None)
                return f"{host}:{port}" if port else str(host)
    return "?"


def to_error(failure: Failure, what: str) -> ClosedloopError:
    """The closedloop error that ends call ``what`` (e.g. ``notes batch create``)."""
    detail = f"{failure.status} {failure.category}".strip() if failure.status else failure.category
    message = f"HubSpot {what} failed: {detail}: {failure.message}"
    if failure.remedy:
        message += f" ({failure.remedy})"
    match failure.action:
        case Action.AUTH | Action.REFRESH:
            return AuthError(message)
        case Action.CONFIG:
            return ConfigError(message)
        case Action.REJECT:
            return RecordRejected(message, code=failure.category or str(failure.status))
        case Action.RETRY:
            return OutcomeUnknown(message) if failure.applied_unknown else Transient(message)
        case Action.WAIT:
            return RateLimited(message, retry_after=failure.retry_after or 10.0)
        case _:
            return Fatal(message)
