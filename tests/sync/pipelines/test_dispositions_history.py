"""Dispositions from the CRM's field history: each transition at its own time from run one."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from sandbox.seed import LEAD_MQL, LEAD_OPEN, LEAD_WORKING
from sandbox.world import WorldPerson
from sync.analytics.funnel import funnel_rows, reached_by_person
from sync.analytics.lifecycle import build_histories
from sync.analytics.load import load_dataset
from sync.analytics.sla import SlaTargets, sla_cases
from sync.ledger.models import DispositionRow
from sync.mapping.model import Stage
from sync.pipelines import run_pipeline

PIPELINES = {
    "sf-dispositions": {
        "kind": "dispositions", "source": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
}  # fmt: skip
_TABLE = DispositionRow.__table__  # type: ignore[attr-defined]


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _worked_lead(ws: Any) -> tuple[WorldPerson, str, list[datetime]]:
    """A seeded lead that went Open -> Marketing Qualified -> Working and stayed there, its
    Salesforce id and the times of its two changes."""
    world = ws.sandbox.world
    for person in world.people:
        walk = [(e.old_value, e.new_value, e.changed_at) for e in world.status_events
                if e.object_id == person.id and e.field == "lead_status"]  # fmt: skip
        steps = [(old, new) for old, new, _ in walk]
        if person.crm_kind == "lead" and steps == [(LEAD_OPEN, LEAD_MQL), (LEAD_MQL, LEAD_WORKING)]:
            lead_id = ws.sandbox.store("salesforce").world_ids[person.id]
            return person, lead_id, [at for _, _, at in walk]
    raise AssertionError("the seed has no lead worked after its MQL hand-off")


def _edit(store: Any, lead_id: str, **values: str) -> datetime:
    """Change a lead 20 ms after the previous change (the next run starts after it); returns
    the change's time."""
    at: datetime = store.clock.advance(timedelta(milliseconds=20))
    store.modify("Lead", lead_id, values)
    store.clock.release()
    time.sleep(0.05)
    return at


def _status_rows(ws: Any, lead_id: str) -> list[Any]:
    with ws.engine.connect() as conn:
        return conn.execute(
            select(_TABLE)
            .where(_TABLE.c.object_id == lead_id, _TABLE.c.field == "status")
            .order_by(_TABLE.c.changed_at)
        ).all()


def test_a_first_run_records_each_status_a_lead_went_through_at_its_seeded_time(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(PIPELINES)
    person, lead_id, (mql_at, worked_at) = _worked_lead(ws)

    first = run_pipeline(ws.config, "sf-dispositions", ws.engine)
    second = run_pipeline(ws.config, "sf-dispositions", ws.engine)

    assert first.state == "succeeded", first.error
    rows = _status_rows(ws, lead_id)
    assert [(r.old_value, r.new_value, r.changed_at) for r in rows] == [
        (None, LEAD_OPEN, _ms(person.created_at)),
        (LEAD_OPEN, LEAD_MQL, _ms(mql_at)),
        (LEAD_MQL, LEAD_WORKING, _ms(worked_at)),
    ]
    assert [r.lifecycle_stage for r in rows] == ["Inquiry", "MQL", "SAL"]
    assert second.state == "succeeded", second.error
    assert second.count("dispositions") == 0
    assert len(_status_rows(ws, lead_id)) == 3


def test_the_sla_of_a_lead_is_the_gap_between_its_hand_off_and_its_first_sales_action(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(PIPELINES)
    _, lead_id, (mql_at, worked_at) = _worked_lead(ws)
    run = run_pipeline(ws.config, "sf-dispositions", ws.engine)
    assert run.state == "succeeded", run.error
    now = ws.sandbox.world.now

    data = load_dataset(ws.engine, now)
    cases = sla_cases(data.events, data.people, SlaTargets(default=timedelta(hours=24)), now)

    mine = [c for c in cases if c.person == f"salesforce:{lead_id}"]
    assert len(mine) == 1
    assert mine[0].handed_off_at == _ms(mql_at)
    assert mine[0].response == _ms(worked_at) - _ms(mql_at)
    answered = [c for c in cases if c.response is not None]
    assert len(answered) > 10  # from the first run on, not after weeks of polling


def test_a_change_seen_by_history_and_by_polling_is_recorded_once(workspace_factory: Any) -> None:
    ws = workspace_factory(PIPELINES)
    run_pipeline(ws.config, "sf-dispositions", ws.engine)
    store = ws.sandbox.store("salesforce")
    lead_id = next(
        i for i, r in store.records["Lead"].items()
        if r.get("Status") == LEAD_OPEN and not r.get("IsConverted")
    )  # fmt: skip
    _edit(store, lead_id, Status=LEAD_MQL)
    worked_at = _edit(store, lead_id, Status=LEAD_WORKING)
    _edit(store, lead_id, Description="called twice")  # a later, unrelated edit

    second = run_pipeline(ws.config, "sf-dispositions", ws.engine)

    rows = _status_rows(ws, lead_id)
    assert second.count("dispositions") == 2
    assert [(r.old_value, r.new_value) for r in rows[-2:]] == [
        (LEAD_OPEN, LEAD_MQL),
        (LEAD_MQL, LEAD_WORKING),
    ]
    assert rows[-1].changed_at == _ms(worked_at)


def test_without_field_history_polling_still_records_the_current_status(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(PIPELINES)
    store = ws.sandbox.store("salesforce")
    store.history_tracked.pop("Lead")
    run_pipeline(ws.config, "sf-dispositions", ws.engine)
    lead_id = next(
        i for i, r in store.records["Lead"].items()
        if r.get("Status") == LEAD_OPEN and not r.get("IsConverted")
    )  # fmt: skip
    _edit(store, lead_id, Status=LEAD_WORKING)

    second = run_pipeline(ws.config, "sf-dispositions", ws.engine)

    assert second.count("dispositions") == 1
    assert [(r.old_value, r.new_value) for r in _status_rows(ws, lead_id)][-1] == (
        LEAD_OPEN, LEAD_WORKING,
    )  # fmt: skip


def test_a_hubspot_contacts_lead_status_walk_is_recorded_from_property_history(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory({"hs-dispositions": {
        "kind": "dispositions", "source": "hubspot", "mapping": "mappings/marketo-hubspot.yaml",
    }})  # fmt: skip
    person, _, (mql_at, worked_at) = _worked_lead(ws)
    contact_id = ws.sandbox.store("hubspot").contact_ids[person.id]

    first = run_pipeline(ws.config, "hs-dispositions", ws.engine)
    second = run_pipeline(ws.config, "hs-dispositions", ws.engine)

    assert first.state == "succeeded", first.error
    rows = _status_rows(ws, contact_id)
    assert [(r.old_value, r.new_value, r.changed_at) for r in rows] == [
        (None, "NEW", _ms(person.created_at)),
        ("NEW", "OPEN", _ms(mql_at)),
        ("OPEN", "IN_PROGRESS", _ms(worked_at)),
    ]
    assert second.count("dispositions") == 0


def _set_lifecycle_stage(store: Any, contact_id: str, value: str) -> datetime:
    """Change a contact's lifecycle stage 20 ms after the previous change; returns its time."""
    at: datetime = store.clock.advance(0.02)
    with store.lock:
        store.data.batch_update(
            "contacts", {"inputs": [{"id": contact_id, "properties": {"lifecyclestage": value}}]}
        )
    store.clock.set(at, frozen=False)
    time.sleep(0.05)
    return at


def test_a_hubspot_contacts_lifecycle_stage_walk_carries_the_shared_stages(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory({"hs-dispositions": {
        "kind": "dispositions", "source": "hubspot", "mapping": "mappings/marketo-hubspot.yaml",
    }})  # fmt: skip
    store = ws.sandbox.store("hubspot")
    contact_id, contact = next(
        (i, r) for i, r in store.data.objects["contacts"].items()
        if r.properties.get("lifecyclestage") == "lead" and not r.history
    )  # fmt: skip
    mql_at = _set_lifecycle_stage(store, contact_id, "marketingqualifiedlead")
    won_at = _set_lifecycle_stage(store, contact_id, "customer")

    run = run_pipeline(ws.config, "hs-dispositions", ws.engine)

    assert run.state == "succeeded", run.error
    with ws.engine.connect() as conn:
        rows = conn.execute(
            select(_TABLE)
            .where(_TABLE.c.object_id == contact_id, _TABLE.c.field == "lifecycle_stage")
            .order_by(_TABLE.c.changed_at)
        ).all()
    assert [(r.old_value, r.new_value, r.changed_at, r.lifecycle_stage) for r in rows] == [
        (None, "lead", _ms(contact.created), "Inquiry"),
        ("lead", "marketingqualifiedlead", _ms(mql_at), "MQL"),
        ("marketingqualifiedlead", "customer", _ms(won_at), "Customer"),
    ]
    # Its lead status still goes through the lead status values.
    with ws.engine.connect() as conn:
        status = conn.execute(
            select(_TABLE.c.new_value, _TABLE.c.lifecycle_stage).where(
                _TABLE.c.object_id == contact_id, _TABLE.c.field == "status"
            )
        ).all()
    assert [tuple(s) for s in status] == [("NEW", "Inquiry")]

    data = load_dataset(ws.engine, ws.sandbox.world.now)
    person = f"hubspot:{contact_id}"
    reached = reached_by_person([person], build_histories(data.events))
    (row,) = funnel_rows({"all": [person]}, reached)
    counts = {s.stage: s.count for s in row.steps}
    assert counts[Stage.MQL] == 1
    assert counts[Stage.CUSTOMER] == 1
