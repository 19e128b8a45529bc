"""Field history: LeadHistory and OpportunityFieldHistory read as status changes at their times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from connectors.base import Cursor, ReasonChange, StatusChange
from connectors.errors import ClosedloopError
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.history import HISTORY_STREAM
from sandbox.salesforce_store import SalesforceStore
from sandbox.server import SandboxServer

Make = Callable[..., SalesforceConnector]


def _pull(
    connector: SalesforceConnector, cursor: Cursor, until: datetime
) -> tuple[list[Any], Cursor]:
    found: list[Any] = []
    for page in connector.pull_changes(HISTORY_STREAM, cursor, until):
        found.extend(page.records)
        cursor = page.cursor
    return found, cursor


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _open_lead(store: SalesforceStore) -> dict[str, Any]:
    return next(
        r for r in store.records["Lead"].values()
        if r.get("Status") == "Open - Not Contacted" and not r.get("IsConverted")
    )  # fmt: skip


def test_the_seeded_history_holds_every_lead_status_and_deal_stage_change_of_the_world(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    world = sandbox_readonly.world
    assert world is not None
    ids = sandbox_readonly.store("salesforce").world_ids

    changes, _ = _pull(make_connector(), Cursor(), world.now)

    def lead_of(person_id: str) -> str:
        return ids.get(f"{person_id}#lead") or ids[person_id]

    expected = {
        (lead_of(e.object_id), "status", e.old_value, e.new_value, _ms(e.changed_at))
        for e in world.status_events
        if e.field == "lead_status"
    } | {
        (ids[e.object_id], "stage", e.old_value, e.new_value, _ms(e.changed_at))
        for e in world.status_events
        if e.field == "stage" and e.old_value is not None
    }
    got = {(c.object_id, c.field, c.old_value, c.new_value, c.changed_at) for c in changes}
    assert got == expected
    assert len(changes) == len(expected)
    assert [c.changed_at for c in changes] == sorted(c.changed_at for c in changes)


def test_changes_come_once_with_old_values_times_reasons_and_the_new_owner_id(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector(lead_reason_fields=("Disqualified_Reason__c",))
    _, cursor = _pull(connector, Cursor(), store.clock.now())
    lead = _open_lead(store)
    rep = next(i for i in store.records["User"] if i not in (lead["OwnerId"], store.user_id))
    t1 = store.clock.advance(timedelta(minutes=1))
    store.modify("Lead", lead["Id"], {"Status": "Working - Contacted", "OwnerId": rep})
    t2 = store.clock.advance(timedelta(minutes=1))
    store.modify("Lead", lead["Id"], {"Status": "Disqualified", "Disqualified_Reason__c": "Budget"})
    until = store.clock.advance(timedelta(seconds=1))

    changes, cursor = _pull(connector, cursor, until)
    again, _ = _pull(connector, cursor, until + timedelta(seconds=1))

    statuses = [c for c in changes if isinstance(c, StatusChange)]
    assert [(c.field, c.old_value, c.new_value, c.changed_at) for c in statuses] == [
        ("status", "Open - Not Contacted", "Working - Contacted", _ms(t1)),
        ("owner_id", lead["OwnerId"], rep, _ms(t1)),
        ("status", "Working - Contacted", "Disqualified", _ms(t2)),
    ]
    # The reason comes as written, at its own time: the pipeline gives it to the decision.
    assert [c for c in changes if isinstance(c, ReasonChange)] == [
        ReasonChange(connector.name, "lead", lead["Id"], "Disqualified_Reason__c", "Budget",
                     _ms(t2)),
    ]  # fmt: skip
    assert {c.object_id for c in changes} == {lead["Id"]}
    assert {c.email for c in statuses} == {lead["Email"]}
    assert again == []


def test_the_seeded_history_holds_each_reason_in_the_field_of_its_decision(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    world = sandbox_readonly.world
    assert world is not None
    ids = sandbox_readonly.store("salesforce").world_ids
    connector = make_connector(lead_reason_fields=("Disqualified_Reason__c", "Recycle_Reason__c"))

    changes, _ = _pull(connector, Cursor(), world.now)

    fields = {"Disqualified": "Disqualified_Reason__c", "Recycled": "Recycle_Reason__c"}
    expected = {
        (ids[e.object_id], fields[e.new_value], e.reason, _ms(e.changed_at))
        for e in world.status_events
        if e.field == "lead_status" and e.reason is not None
    }
    got = {(c.object_id, c.field, c.value, c.changed_at) for c in changes
           if isinstance(c, ReasonChange)}  # fmt: skip
    assert got == expected
    assert {f for _, f, _, _ in got} == set(fields.values())  # recycles give theirs too


def test_a_history_row_that_commits_late_inside_the_lag_window_is_still_read(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector(reread_lag_seconds=300)
    lead = _open_lead(store)
    late_at = store.clock.advance(timedelta(minutes=1))
    store.clock.advance(timedelta(minutes=1))
    store.modify("Lead", lead["Id"], {"Status": "Working - Contacted"})
    _, cursor = _pull(connector, Cursor(), store.clock.now())
    stamp = late_at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    with store.lock:  # a transaction that began a minute ago commits now
        store.record_history("Lead", lead["Id"], "Status", "Working - Contacted",
                             "Marketing Qualified", created=stamp)  # fmt: skip

    changes, _ = _pull(connector, cursor, store.clock.advance(timedelta(seconds=1)))

    assert [(c.old_value, c.new_value) for c in changes] == [
        ("Working - Contacted", "Marketing Qualified")
    ]


def test_history_objects_are_read_only_through_the_api(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    client = make_connector().client
    lead = _open_lead(sandbox.store("salesforce"))
    objects = {o["name"]: o for o in client.call("GET", "sobjects")["sobjects"]}

    with pytest.raises(ClosedloopError, match="cannot be inserted or updated: Lead History"):
        client.call(
            "POST", "sobjects/LeadHistory",
            json={"LeadId": lead["Id"], "Field": "Status", "NewValue": "Working - Contacted"},
        )  # fmt: skip

    assert objects["LeadHistory"]["queryable"]
    assert not objects["LeadHistory"]["createable"]
    assert not objects["OpportunityFieldHistory"]["updateable"]


def test_check_reports_lead_status_history_and_how_to_turn_tracking_on(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    on = {r.name: r for r in make_connector().check()}
    with store.lock:
        store.records["LeadHistory"].clear()
    off = {r.name: r for r in make_connector().check()}

    assert on["lead status history"].ok
    # No rows: tracking is off, or on in an org with no changes yet; say so without failing.
    assert off["lead status history"].ok
    assert "no Lead Status changes yet" in off["lead status history"].detail
    assert "Set History Tracking" in off["lead status history"].remedy
