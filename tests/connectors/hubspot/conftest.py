"""Fixtures for the HubSpot connector tests: the sandbox portal and connectors pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings
from connectors.ratelimit import ManualClock
from sandbox import credentials
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer

KEY = "closedloop_touch_key"
ENGAGEMENTS = ("notes", "tasks", "emails", "meetings", "calls")


def settings_for(server: SandboxServer, **overrides: Any) -> HubSpotSettings:
    """Settings of a private-app connection to the sandbox portal (plus ``overrides``)."""
    values: dict[str, Any] = {
        "host": server.hubspot_url,
        "auth": {"method": "private_app", "access_token": credentials.HUBSPOT_TOKEN},
        "burst_limit_per_10s": 190,
        "search_per_second": 5,
        "initial_lookback_days": 365,
    }
    values.update(overrides)
    return HubSpotSettings.model_validate(values)


def add_closedloop_properties(store: HubSpotStore) -> None:
    """What ``check hubspot --fix`` creates, put straight into the portal (fast test setup)."""
    with store.lock:
        for object_type in ENGAGEMENTS:
            for name in (KEY, "closedloop_source", "closedloop_campaign", "closedloop_kind"):
                if name in store.data.properties[object_type]:
                    continue
                store.data.create_property(
                    object_type,
                    {
                        "name": name,
                        "label": name,
                        "type": "string",
                        "fieldType": "text",
                        "groupName": "closedloop",
                    },
                )
        for name in ("closedloop_lead_source", "closedloop_disqualified_reason"):
            if name in store.data.properties["contacts"]:
                continue
            store.data.create_property(
                "contacts",
                {"name": name, "label": name, "type": "string", "fieldType": "text",
                 "groupName": "closedloop"},
            )  # fmt: skip


def _portal(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    store: HubSpotStore = sandbox.store("hubspot")
    add_closedloop_properties(store)
    names = ("rate_limit_max", "oauth_rate_limit_max", "search_per_second", "daily_limit")
    saved = {name: getattr(store, name) for name in names}
    store.rate_limit_max = store.oauth_rate_limit_max = store.search_per_second = 100_000
    yield sandbox
    for name, value in saved.items():
        setattr(store, name, value)


@pytest.fixture
def portal(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The demo sandbox, reset, with closedloop's custom properties in the HubSpot portal.

    The portal's burst limit is lifted: tests run on a ``ManualClock`` whose waits pass at once,
    so they would otherwise run into the sandbox's real 10-second window. Tests of the limits
    set them back on the store.
    """
    yield from _portal(sandbox)


@pytest.fixture
def portal_readonly(sandbox_readonly: SandboxServer) -> Iterator[SandboxServer]:
    """Like ``portal`` without reloading the world: for tests that write nothing."""
    yield from _portal(sandbox_readonly)


@pytest.fixture
def clock() -> ManualClock:
    """A clock whose waits pass at once (rate-limit waits are recorded, not slept)."""
    return ManualClock()


def _factory(
    server: SandboxServer, clock: ManualClock
) -> Iterator[Callable[..., HubSpotConnector]]:
    built: list[HubSpotConnector] = []

    def make(**overrides: Any) -> HubSpotConnector:
        connector = HubSpotConnector("hubspot", settings_for(server, **overrides), clock=clock)
        built.append(connector)
        return connector

    yield make
    for connector in built:
        connector.close()


@pytest.fixture
def connect(portal: SandboxServer, clock: ManualClock) -> Iterator[Callable[..., HubSpotConnector]]:
    """Build connectors on the portal (settings overrides as keyword arguments)."""
    yield from _factory(portal, clock)


@pytest.fixture
def reader(
    portal_readonly: SandboxServer, clock: ManualClock
) -> Iterator[Callable[..., HubSpotConnector]]:
    """Build connectors on the read-only portal (for tests that write nothing)."""
    yield from _factory(portal_readonly, clock)


def keys_in_portal(server: SandboxServer, object_type: str = "notes") -> list[str]:
    """Every touch key held by the portal's engagements of ``object_type`` (duplicates kept)."""
    store: HubSpotStore = server.store("hubspot")
    with store.lock:
        return [
            r.properties[KEY]
            for r in store.data.objects[object_type].values()
            if KEY in r.properties
        ]


def known_contacts(server: SandboxServer, count: int) -> list[tuple[str, str]]:
    """(email, contact id) of ``count`` contacts the portal holds."""
    store: HubSpotStore = server.store("hubspot")
    with store.lock:
        rows = [
            (r.properties["email"], r.id)
            for r in store.data.objects["contacts"].values()
            if r.properties.get("email")
        ]
    return rows[:count]
