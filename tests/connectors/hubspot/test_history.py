"""Property history: contacts' and deals' status changes at the times HubSpot recorded them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hubspot.crm.objects import BatchReadInputSimplePublicObjectId
from hubspot.crm.objects.exceptions import ApiException

from connectors.base import Cursor, Person, ReasonChange, StatusChange
from connectors.hubspot.connector import HubSpotConnector
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer

Connect = Callable[..., HubSpotConnector]


def _changes(connector: HubSpotConnector, stream: str, cursor: Cursor, until: datetime) -> tuple[
    list[StatusChange], Cursor
]:  # fmt: skip
    found: list[StatusChange] = []
    for page in connector.pull_changes(stream, cursor, until):
        found.extend(page.records)
        cursor = page.cursor
    return found, cursor


def _new_contact(store: HubSpotStore, at: datetime) -> str:
    store.clock.set(at)
    with store.lock:
        _, body = store.data.batch_create(
            "contacts",
            {"inputs": [{"properties": {"email": "ada@history.example.com",
                                        "hs_lead_status": "NEW"}}]},
        )  # fmt: skip
    return str(body["results"][0]["id"])


def _set(store: HubSpotStore, at: datetime, record_id: str, **properties: str) -> None:
    store.clock.set(at)
    with store.lock:
        store.data.batch_update(
            "contacts", {"inputs": [{"id": record_id, "properties": properties}]}
        )


def test_a_contacts_lead_status_changes_come_with_their_own_times_and_old_values(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    assert portal.world is not None
    t0 = portal.world.now + timedelta(days=1)
    t1, t2 = t0 + timedelta(hours=3), t0 + timedelta(hours=5)
    contact = _new_contact(store, t0)
    _set(store, t1, contact, hs_lead_status="OPEN")
    _set(store, t2, contact, hs_lead_status="IN_PROGRESS")
    connector = connect()

    changes, cursor = _changes(connector, "people_history", Cursor(), t2 + timedelta(minutes=1))
    again, _ = _changes(connector, "people_history", cursor, t2 + timedelta(minutes=2))

    status = [(c.old_value, c.new_value, c.changed_at) for c in changes
              if c.object_id == contact and c.field == "status"]  # fmt: skip
    assert status == [(None, "NEW", t0), ("NEW", "OPEN", t1), ("OPEN", "IN_PROGRESS", t2)]
    mine = [c for c in changes if c.object_id == contact]
    assert {c.object_type for c in mine} == {"contact"}
    assert {c.email for c in mine} == {"ada@history.example.com"}
    assert again == []


def test_a_contacts_reason_comes_with_its_own_time_from_history_and_with_the_person(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    assert portal.world is not None
    t0 = portal.world.now + timedelta(days=1)
    t1, t2 = t0 + timedelta(hours=3), t0 + timedelta(days=2)
    contact = _new_contact(store, t0)
    _set(store, t1, contact, hs_lead_status="UNQUALIFIED")
    _set(store, t2, contact, closedloop_disqualified_reason="No budget")  # filled in later
    connector = connect()
    connector.include_reason_fields(["closedloop_disqualified_reason"])
    until = t2 + timedelta(minutes=1)

    history, _ = _changes(connector, "people_history", Cursor(), until)
    people, _ = _changes(connector, "people", Cursor(), until)

    assert [c for c in history if isinstance(c, ReasonChange) and c.object_id == contact] == [
        ReasonChange("hubspot", "contact", contact, "closedloop_disqualified_reason",
                     "No budget", t2),
    ]  # fmt: skip
    [person] = [p for p in people if isinstance(p, Person) and p.external_id == contact]
    assert person.fields["closedloop_disqualified_reason"] == "No budget"


def test_the_seeded_portal_has_the_worlds_deal_stage_walk(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    assert portal_readonly.world is not None
    world = portal_readonly.world
    store: HubSpotStore = portal_readonly.store("hubspot")
    opp = next(o for o in world.opportunities if o.is_won)
    deal_id = store.deal_ids[opp.id]
    walk = [e for e in world.status_events if e.object_id == opp.id]

    changes, _ = _changes(reader(), "opportunity_history", Cursor(), world.now)

    stages = [c for c in changes if c.object_id == deal_id and c.field == "stage"]
    assert len(stages) == len(walk)
    assert stages[0].old_value is None
    assert stages[-1].new_value == "closedwon"
    assert [c.changed_at for c in stages[1:]] == [
        e.changed_at.replace(microsecond=e.changed_at.microsecond // 1000 * 1000) for e in walk[1:]
    ]


def test_history_reads_take_fifty_records_a_call_as_hubspot_allows(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    assert portal_readonly.world is not None
    connector = reader()
    changes, _ = _changes(connector, "people_history", Cursor(), portal_readonly.world.now)

    contacts = len(portal_readonly.store("hubspot").data.objects["contacts"])
    assert {c.object_id for c in changes}
    assert connector.client.calls_by["contacts history read"] == -(-contacts // 50)


def test_the_sandbox_refuses_more_than_fifty_history_reads_and_the_sdk_models_read_the_answer(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    store: HubSpotStore = portal_readonly.store("hubspot")
    ids = list(store.data.objects["contacts"])[:51]
    api = reader().client.api("objects_batch")

    def body(count: int) -> BatchReadInputSimplePublicObjectId:
        return BatchReadInputSimplePublicObjectId(
            inputs=[{"id": i} for i in ids[:count]],
            properties=["lifecyclestage"],
            properties_with_history=["lifecyclestage"],
        )

    with pytest.raises(ApiException) as refused:
        api.read("contacts", body(51))
    answer = api.read("contacts", body(50))

    assert refused.value.status == 400
    assert "property histories is 50" in str(refused.value.body)
    first = answer.results[0]
    entries = first.properties_with_history["lifecyclestage"]
    assert entries[0].value == first.properties["lifecyclestage"]
    assert [e.timestamp for e in entries] == sorted((e.timestamp for e in entries), reverse=True)
