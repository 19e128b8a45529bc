"""The sandbox fixtures serve the real emulators: writes land in the stores, reset undoes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox import credentials
from sandbox.seed import world_now
from sandbox.server import SandboxServer


def _create_contact(server: SandboxServer, email: str) -> httpx.Response:
    return httpx.post(
        f"{server.hubspot_url}/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        json={"properties": {"email": email, "firstname": "Ada", "lastname": "Byron"}},
        trust_env=False,
    )


def _contact_emails(server: SandboxServer) -> set[str]:
    with server.control() as control:
        contacts = control.state()["hubspot"]["objects"]["contacts"]
    return {c["email"] for c in contacts.values()}


def test_a_write_lands_in_the_store_and_reset_reloads_the_demo_world(
    sandbox: SandboxServer,
) -> None:
    before = _contact_emails(sandbox)
    assert _create_contact(sandbox, "ada@analytical.example").status_code == 201
    assert _contact_emails(sandbox) == before | {"ada@analytical.example"}
    with sandbox.control() as control:
        assert control.counters()["hubspot"] == {"contacts.create": 1}
        control.reset()
        assert control.counters()["hubspot"] == {}
    assert _contact_emails(sandbox) == before


def test_a_dedicated_sandbox_has_its_own_seed_and_faults(
    sandbox_factory: Callable[..., SandboxServer],
) -> None:
    server = sandbox_factory(seed=3, size=30, faults="hubspot:503=1")
    assert server.world is not None
    assert server.world.seed == 3
    assert _create_contact(server, "grace@hopper.example").status_code == 503
    assert "grace@hopper.example" not in _contact_emails(server)
    with server.control() as control:
        assert control.world()["counts"]["people"] == len(server.world.people)


def test_an_unseeded_sandbox_starts_with_empty_crm_stores(
    sandbox_factory: Callable[..., SandboxServer],
) -> None:
    server = sandbox_factory()
    assert _contact_emails(server) == set()
    assert _create_contact(server, "first@customer.example").status_code == 201
    assert _contact_emails(server) == {"first@customer.example"}


def _sf_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


# The objects the world projects into the org (the integration user predates every world).
_WORLD_OBJECTS = ("Account", "Lead", "Contact", "Opportunity", "Campaign", "CampaignMember")


@pytest.mark.parametrize(
    "shift", [timedelta(days=-365), timedelta(days=365)], ids=["a-year-ago", "a-year-ahead"]
)
def test_a_sandbox_on_another_day_stamps_its_world_and_new_writes_on_that_day(
    sandbox_factory: Callable[..., SandboxServer], shift: timedelta
) -> None:
    moment = datetime.now(UTC) + shift
    server = sandbox_factory(seed=3, size=100, now=moment)  # with converted leads
    world = server.world
    assert world is not None
    assert world.now == world_now(moment)
    soon = world.now + timedelta(minutes=5)
    org = server.store("salesforce")
    with org.lock:
        seeded = [
            _sf_time(row["SystemModstamp"])
            for name in _WORLD_OBJECTS
            for row in org.records[name].values()
        ]
    # Even the records the load itself changed (converted leads) are not stamped at the wall
    # clock, which would put them a year away from the world.
    assert max(seeded) <= soon
    lead = org.insert("Lead", {"LastName": "Day", "Company": "Day Labs"})
    answer = _create_contact(server, "day@labs.example")
    assert answer.status_code == 201
    contact_created = datetime.fromisoformat(answer.json()["createdAt"].replace("Z", "+00:00"))
    marketo = server.store("marketo")
    lead_at = marketo.leads[marketo.add_lead({"email": "day@labs.example"})]["createdAt"]
    written = [
        _sf_time(org.get("Lead", lead)["SystemModstamp"]),
        contact_created,
        datetime.fromisoformat(lead_at.replace("Z", "+00:00")),
    ]
    assert all(world.now <= at <= soon for at in written), written
