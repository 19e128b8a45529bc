"""What to do about every Marketo error: one table from error code / HTTP status to an action.

Marketo answers most failures with HTTP 200 and ``{"success": false, "errors": [{"code": "606",
...}]}``; real HTTP errors (5xx, 401, 404, 414) also happen. ``ERROR_ACTIONS`` and
``HTTP_ACTIONS`` are the whole policy; ``MarketoClient`` executes it and ``exception_for``
builds the closedloop error for the actions that end a call. Codes not listed fall back to
``Action.FAIL`` (a Fatal naming the code) rather than a guess.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
    "ERROR_ACTIONS",
    "HTTP_ACTIONS",
    "Action",
    "Rule",
    "exception_for",
    "rule_for_code",
    "rule_for_status",
]


class Action(enum.Enum):
    """What the client does next."""

    REFRESH_TOKEN = "renew the token and repeat the call (a few times at most)"  # noqa: S105
    WAIT_WINDOW = "wait until the 20 s call window frees, then repeat"
    WAIT_CONCURRENCY = "wait for a concurrent call to finish, then repeat"
    DAILY_QUOTA = "stop until the daily quota resets (midnight US Central)"
    BUSY = "stop for a while (bulk export queue or quota)"
    RETRY = "Transient: retry with backoff if the call is safe to repeat"
    AUTH = "AuthError: stop the pipeline"
    CONFIG = "ConfigError: stop and fix the configuration"
    REJECT = "RecordRejected: dead-letter the record(s), continue"
    EMPTY = "no data: an empty result, not an error"
    FAIL = "Fatal: unknown failure"


@dataclass(frozen=True)
class Rule:
    """An action and the remedy a human reads in the error message."""

    action: Action
    remedy: str = ""


# Codes and meanings: https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes
ERROR_ACTIONS: dict[str, Rule] = {
    # Renewed and repeated by MarketoAuth; a call that still gets 601/602 after its renewals
    # fails with this remedy.
    "601": Rule(
        Action.REFRESH_TOKEN,
        "every renewed access token was refused as invalid: check that the API-only user is "
        "active and its LaunchPoint service still exists (Admin > LaunchPoint)",
    ),
    "602": Rule(
        Action.REFRESH_TOKEN,
        "every renewed access token was refused as expired: check the LaunchPoint service, "
        "then run again",
    ),
    "603": Rule(
        Action.AUTH,
        "access denied: give the API-only user's role the Read-Only/Read-Write Lead and "
        "Activity permissions, and check the IP allowlist (Admin > Web Services)",
    ),
    "604": Rule(Action.RETRY, "Marketo timed out the request"),
    "605": Rule(Action.CONFIG, "HTTP method not supported: a closedloop bug, please report it"),
    "606": Rule(Action.WAIT_WINDOW, "more than 100 calls in 20 s on this instance"),
    "607": Rule(Action.DAILY_QUOTA, "the instance's daily API quota is used up"),
    "608": Rule(Action.RETRY, "the API is temporarily unavailable"),
    "609": Rule(Action.REJECT, "Marketo could not parse the JSON body"),
    "610": Rule(Action.CONFIG, "resource not found: check base_url (the REST endpoint's host)"),
    "611": Rule(Action.RETRY, "Marketo system error"),
    "612": Rule(Action.CONFIG, "invalid content type: a closedloop bug, please report it"),
    "613": Rule(Action.CONFIG, "invalid multipart request: a closedloop bug, please report it"),
    "614": Rule(Action.CONFIG, "invalid subscription: base_url points at another instance"),
    "615": Rule(Action.WAIT_CONCURRENCY, "more than 10 concurrent calls on this instance"),
    "616": Rule(Action.CONFIG, "the subscription type does not allow API access"),
    "701": Rule(Action.REJECT, "a required value was blank"),
    "702": Rule(Action.EMPTY, "no data found"),
    "703": Rule(Action.CONFIG, "the feature is not enabled on this subscription"),
    "704": Rule(Action.CONFIG, "invalid date format"),
    "709": Rule(Action.REJECT, "Marketo business rule violation"),
    "710": Rule(Action.CONFIG, "parent folder not found"),
    "711": Rule(Action.CONFIG, "incompatible folder type"),
    "713": Rule(Action.RETRY, "a Marketo resource was temporarily unavailable"),
    "1001": Rule(Action.REJECT, "invalid value"),
    "1002": Rule(Action.REJECT, "a required parameter is missing"),
    # 1003 means "this request is not allowed as asked": too many activity types, a smart list
    # where a static list is needed, a date range over 31 days, a list of 10,000+ leads.
    "1003": Rule(Action.CONFIG, "invalid request: check the activity types, list id and dates"),
    "1004": Rule(Action.REJECT, "lead not found"),
    "1005": Rule(Action.REJECT, "lead already exists"),
    "1006": Rule(Action.CONFIG, "field not found: check the field's REST API name"),
    "1007": Rule(Action.REJECT, "several leads match"),
    "1008": Rule(Action.REJECT, "no access to the lead's partition"),
    "1011": Rule(Action.CONFIG, "that lead field cannot be searched on (filterType)"),
    "1013": Rule(Action.CONFIG, "object not found: check the static list or program id"),
    # "Too many jobs in queue" and "Job already queued" clear in minutes; "Export daily quota
    # exceeded" (500 MB a day) only at midnight US Central, which the client waits for.
    "1029": Rule(Action.BUSY, "bulk export queue full or daily export quota (500 MB) used up"),
    "1035": Rule(Action.CONFIG, "unsupported filter type"),
}

HTTP_ACTIONS: dict[int, Rule] = {
    401: Rule(Action.AUTH, "check client_id and client_secret of the API-only user"),
    403: Rule(Action.AUTH, "check the API-only user's permissions and the IP allowlist"),
    404: Rule(Action.CONFIG, "check base_url (the REST endpoint without /rest)"),
    413: Rule(Action.REJECT, "request body too large"),
    414: Rule(Action.CONFIG, "URL too long: a closedloop bug (batch too large), please report it"),
    429: Rule(Action.WAIT_WINDOW, "too many requests"),
    500: Rule(Action.RETRY, "Marketo server error"),
    502: Rule(Action.RETRY, "bad gateway"),
    503: Rule(Action.RETRY, "service unavailable"),
    504: Rule(Action.RETRY, "gateway timeout"),
}

# Seconds to stop for when the bulk export queue is full (jobs take minutes).
BUSY_RETRY_AFTER_S = 300.0


def rule_for_code(code: str) -> Rule:
    """The rule for a Marketo error code (FAIL for codes the table does not know)."""
    return ERROR_ACTIONS.get(code, Rule(Action.FAIL, "unknown Marketo error code"))


def rule_for_status(status: int) -> Rule | None:
    """The rule for a non-2xx HTTP status, or None for a success status."""
    if 200 <= status < 300:
        return None
    if status in HTTP_ACTIONS:
        return HTTP_ACTIONS[status]
    if status >= 500:
        return Rule(Action.RETRY, "Marketo server error")
    return Rule(Action.FAIL, "unexpected HTTP status")


def exception_for(rule: Rule, what: str, detail: str) -> ClosedloopError:
    """The closedloop error ending a call under ``rule`` (``what``: the call; ``detail``: why)."""
    message = f"Marketo {what} failed: {detail}"
    if rule.remedy:
        message += f" ({rule.remedy})"
    match rule.action:
        case Action.AUTH | Action.REFRESH_TOKEN:
            return AuthError(message)
        case Action.CONFIG:
            return ConfigError(message)
        case Action.REJECT:
            return RecordRejected(message, code=detail.split(" ", 1)[0])
        case Action.RETRY:
            return Transient(message)
        case Action.BUSY:
            return RateLimited(message, retry_after=BUSY_RETRY_AFTER_S)
        case Action.WAIT_WINDOW | Action.WAIT_CONCURRENCY:
            return RateLimited(message, retry_after=20.0)
        case _:
            return Fatal(message)
