"""Fixtures for the Marketo tests: a respx-mocked instance, a manual clock, the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from starlette.applications import Starlette

from connectors.marketo.settings import MarketoSettings
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from sandbox.pytest_plugin import DEMO_SEED
from sandbox.server import SandboxServer

BASE = "https://123-abc-456.mktorest.com"
SECRET = "very-secret-client-secret"
NOW = datetime(2026, 7, 1, 15, 0, tzinfo=UTC)

STANDARD_TYPES: list[dict[str, Any]] = [
    {"id": 1, "name": "Visit Webpage", "primaryAttribute": {"name": "Webpage ID"}},
    {"id": 2, "name": "Fill Out Form", "primaryAttribute": {"name": "Webform ID"}},
    {"id": 3, "name": "Click Link", "primaryAttribute": {"name": "Link ID"}},
    {"id": 6, "name": "Send Email", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 7, "name": "Email Delivered", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 8, "name": "Email Bounced", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 9, "name": "Unsubscribe Email", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 10, "name": "Open Email", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 11, "name": "Click Email", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 12, "name": "New Lead", "primaryAttribute": {"name": "Lead ID"}},
    {"id": 22, "name": "Change Score", "primaryAttribute": {"name": "Score"}},
    {"id": 24, "name": "Add to List", "primaryAttribute": {"name": "List ID"}},
    {"id": 27, "name": "Email Bounced Soft", "primaryAttribute": {"name": "Mailing ID"}},
    {"id": 104, "name": "Change Status in Progression", "primaryAttribute": {"name": "Program"}},
]


def ok(result: Any = None, **extra: Any) -> httpx.Response:
    """A successful Marketo answer."""
    body: dict[str, Any] = {"requestId": "r#1", "success": True, "errors": [], "warnings": []}
    if result is not None:
        body["result"] = result
    body.update(extra)
    return httpx.Response(200, json=body)


def fail(code: str, message: str = "failure") -> httpx.Response:
    """A Marketo failure: HTTP 200 with success false and one error."""
    return httpx.Response(
        200,
        json={
            "requestId": "r#2",
            "success": False,
            "errors": [{"code": code, "message": message}],
            "warnings": [],
        },
    )


def token(value: str = "tok-1", expires_in: int = 3600) -> httpx.Response:
    """An identity answer."""
    return httpx.Response(
        200,
        json={
            "access_token": value,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": "api@example.com",
        },
    )


def activity(n: int, type_id: int, when: str, lead: int = 1, **fields: Any) -> dict[str, Any]:
    """A REST activity record."""
    record: dict[str, Any] = {
        "id": n,
        "marketoGUID": f"guid-{n}",
        "leadId": lead,
        "activityDate": when,
        "activityTypeId": type_id,
        "primaryAttributeValueId": 100 + n,
        "primaryAttributeValue": f"asset {n}",
        "attributes": [],
    }
    record.update(fields)
    return record


def make_settings(**overrides: Any) -> MarketoSettings:
    """Settings for the mocked instance."""
    values: dict[str, Any] = {
        "base_url": BASE,
        "client_id": "client-1",
        "client_secret": SECRET,
        "max_attempts": 3,
    }
    values.update(overrides)
    return MarketoSettings.model_validate(values)


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the code under test waits."""
    return ManualClock(NOW)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The mocked Marketo instance; identity answers a fresh token by default."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/identity/oauth/token", name="token").mock(return_value=token())
        router.get("/rest/v1/activities/types.json", name="types").mock(
            return_value=ok(STANDARD_TYPES)
        )
        yield router


@pytest.fixture
def source(clock: ManualClock, api: respx.MockRouter) -> Iterator[MarketoSource]:
    """A Marketo connector against the mocked instance."""
    with MarketoSource("marketo", make_settings(), clock=clock) as connector:
        yield connector


@pytest.fixture(scope="session")
def marketo_sandbox_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SandboxServer]:
    """A sandbox serving only the real Marketo emulator (the demo world) for the session.

    The other two vendors get empty apps: resetting then reloads the Marketo store alone,
    several times faster than a full sandbox reset, which keeps the end-to-end tests quick.
    """
    from sandbox.marketo import build_app

    builders = {
        "marketo": build_app,
        "salesforce": lambda _state: Starlette(),
        "hubspot": lambda _state: Starlette(),
    }
    server = SandboxServer(
        seed=DEMO_SEED, size="demo", builders=builders, tls_dir=tmp_path_factory.mktemp("tls")
    )
    with server:
        yield server


@pytest.fixture
def sandbox(marketo_sandbox_session: SandboxServer) -> SandboxServer:
    """The session's Marketo sandbox, reset: demo world reloaded, counters zero, no faults."""
    marketo_sandbox_session.reset()
    return marketo_sandbox_session
