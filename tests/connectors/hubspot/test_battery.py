"""The connector test kit against the HubSpot sandbox, through the real hubspot-api-client."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.base import Person, PersonKind, RenderedTouch, Touch, TouchKind
from connectors.hubspot.connector import HubSpotConnector
from connectors.ratelimit import ManualClock
from connectors.testing import KitSpec, connector_battery
from sandbox.server import SandboxServer
from sync.mapping import load_mapping, offline_catalogue
from tests.connectors.hubspot.conftest import keys_in_portal, known_contacts, settings_for

MAPPING = Path(__file__).parents[3] / "mappings" / "marketo-hubspot.yaml"


def rendered_touches(server: SandboxServer, count: int) -> list[RenderedTouch]:
    """Touches rendered by the shipped Marketo -> HubSpot mapping for contacts the portal holds."""
    mapping = load_mapping(MAPPING, offline_catalogue())
    assert server.world is not None
    start = server.world.now - timedelta(days=31) + timedelta(hours=9)  # a month into the past
    touches = []
    contacts = known_contacts(server, 20)
    for i in range(count):
        email, contact_id = contacts[i % len(contacts)]
        kind = TouchKind.FORM_FILL if i % 5 == 0 else TouchKind.EMAIL_CLICK
        touch = Touch(
            source="marketo",
            source_id=f"act-{i}",
            kind=kind,
            occurred_at=start + timedelta(minutes=i),
            email=email,
            campaign="Q4 Launch",
            channel="email",
            asset="Launch e-mail",
        )
        person = Person(
            "hubspot", contact_id, PersonKind.CONTACT, email, first_name="Ada", score=50
        )
        rendered = mapping.render(touch, person)
        assert rendered is not None
        touches.append(rendered)
    return touches


def _count(server: SandboxServer, keys: Sequence[str]) -> dict[str, int]:
    found = keys_in_portal(server, "notes") + keys_in_portal(server, "tasks")
    return {key: found.count(key) for key in keys}


@pytest.fixture
def kit(portal: SandboxServer) -> KitSpec:
    world = portal.world
    assert world is not None
    emails = [e for e, _ in known_contacts(portal, 3)]

    def make() -> HubSpotConnector:
        return HubSpotConnector("hubspot", settings_for(portal), clock=ManualClock())

    def unauthorised() -> HubSpotConnector:
        bad = {"method": "private_app", "access_token": "pat-na1-not-a-real-token"}
        return HubSpotConnector("hubspot", settings_for(portal, auth=bad), clock=ManualClock())

    return KitSpec(
        make=make,
        make_unauthorised=unauthorised,
        until=world.now,
        touches_to_push=lambda: rendered_touches(portal, 12),
        count_written=lambda keys: _count(portal, keys),
        known_emails=emails,
    )


TestHubSpotBattery = connector_battery()
