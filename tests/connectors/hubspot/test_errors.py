"""The HubSpot error table: what each failure means for the engine, and whether it was applied."""

from __future__ import annotations

import json

import pytest
import urllib3
from hubspot.crm.objects.exceptions import ApiException

from connectors.errors import AuthError, RateLimited, RecordRejected, Transient
from connectors.hubspot.errors import Action, OutcomeUnknown, classify, to_error


def _api_error(status: int, body: dict[str, object], **headers: str) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.body = json.dumps(body)
    error.headers = headers
    return error


@pytest.mark.parametrize(
    ("status", "category", "error_type", "applied_unknown"),
    [
        (400, "VALIDATION_ERROR", RecordRejected, False),
        (401, "INVALID_AUTHENTICATION", AuthError, False),
        (403, "MISSING_SCOPES", AuthError, False),
        (409, "CONFLICT", RecordRejected, False),
        (500, "INTERNAL_ERROR", OutcomeUnknown, True),
        (503, "SERVICE_UNAVAILABLE", OutcomeUnknown, True),
    ],
)
def test_statuses_map_to_what_the_engine_does_next(
    status: int, category: str, error_type: type[Exception], applied_unknown: bool
) -> None:
    failure = classify(_api_error(status, {"category": category, "message": "m"}))
    assert failure is not None
    assert failure.applied_unknown is applied_unknown
    error = to_error(failure, "notes batch create")
    assert isinstance(error, error_type)
    assert category in str(error)


def test_a_429_waits_the_interval_the_headers_give() -> None:
    rolling = classify(
        _api_error(
            429,
            {"policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"},
            **{"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
        )
    )
    secondly = classify(_api_error(429, {"policyName": "SECONDLY"}))
    assert rolling is not None
    assert secondly is not None
    assert (rolling.action, rolling.retry_after, rolling.applied_unknown) == (
        Action.WAIT,
        10.0,
        False,
    )
    assert secondly.retry_after == 1.0
    assert isinstance(to_error(rolling, "search"), RateLimited)


def test_a_refused_connection_was_not_sent_but_a_dropped_one_may_have_been_applied() -> None:
    refused = classify(urllib3.exceptions.NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    dropped = classify(urllib3.exceptions.ProtocolError("Connection aborted."))
    assert refused is not None
    assert dropped is not None
    assert refused.applied_unknown is False
    assert dropped.applied_unknown is True
    assert type(to_error(refused, "x")) is Transient
    assert isinstance(to_error(dropped, "x"), OutcomeUnknown)


def test_other_exceptions_are_not_classified() -> None:
    assert classify(ValueError("not ours")) is None
