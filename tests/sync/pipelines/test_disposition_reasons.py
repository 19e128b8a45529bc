"""Why sales said no, through the dispositions pipeline against the sandbox: each
disqualification and recycle keeps the reason the rep gave, in Salesforce and HubSpot, also when
the rep filled the reason in after the status (the rule in ``sync.pipelines.dispositions``)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from sandbox.seed import LEAD_WORKING
from sync.ledger.models import DispositionRow
from sync.pipelines import run_pipeline

SALESFORCE = {
    "sf-dispositions": {
        "kind": "dispositions", "source": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
}  # fmt: skip
HUBSPOT = {
    "hs-dispositions": {
        "kind": "dispositions", "source": "hubspot", "mapping": "mappings/marketo-hubspot.yaml",
    },
}  # fmt: skip
_TABLE = DispositionRow.__table__  # type: ignore[attr-defined]
_OUTCOMES = ("Disqualified", "Recycled")


def _decisions(ws: Any, crm: str, field: str = "status") -> dict[tuple[str, str], str | None]:
    """(object id, new value) -> reason of every disqualification and recycle in the ledger."""
    with ws.engine.connect() as conn:
        rows = conn.execute(
            select(_TABLE.c.object_id, _TABLE.c.new_value, _TABLE.c.reason).where(
                _TABLE.c.crm == crm,
                _TABLE.c.field == field,
                _TABLE.c.lifecycle_stage.in_(_OUTCOMES),
            )
        ).all()
    return {(r.object_id, r.new_value): r.reason for r in rows}


def _seeded_reasons(ws: Any, ids: dict[str, str], values: dict[str, str]) -> set[tuple[str, ...]]:
    """(CRM id, CRM status, reason) of each decision the seed world made with a reason, for the
    world people ``ids`` maps to CRM records."""
    return {
        (ids[e.object_id], values[e.new_value], e.reason)
        for e in ws.sandbox.world.status_events
        if e.field == "lead_status" and e.reason is not None and e.object_id in ids
    }


# -- the seeded worlds: every decision the reps gave a reason for keeps it -------------------


def test_every_seeded_salesforce_disqualification_and_recycle_keeps_its_reason(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(SALESFORCE)
    store = ws.sandbox.store("salesforce")

    run = run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)

    assert run.state == "succeeded", run.error
    decided = _decisions(ws, "salesforce")
    expected = _seeded_reasons(ws, store.world_ids, {v: v for v in _OUTCOMES})
    assert {(i, v, r) for (i, v), r in decided.items()} == expected
    # Recycles too: their reasons are in Recycle_Reason__c, the field the mapping names for them.
    assert {v for _, v, _ in expected} == set(_OUTCOMES)
    assert run.count("reasons") == len(expected)


def test_every_seeded_hubspot_disqualification_and_recycle_keeps_its_reason(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(HUBSPOT)
    store = ws.sandbox.store("hubspot")
    world = ws.sandbox.world
    ids = {p.id: store.contact_ids[p.id] for p in world.people
           if p.duplicate_of is None and p.id in store.contact_ids}  # fmt: skip

    run = run_pipeline(ws.config, "hs-dispositions", ws.engine, clock=store.clock.now)

    assert run.state == "succeeded", run.error
    statuses = {"Disqualified": "UNQUALIFIED", "Recycled": "BAD_TIMING"}
    expected = _seeded_reasons(ws, ids, statuses)
    decided = _decisions(ws, "hubspot")
    assert {(i, v, r) for (i, v), r in decided.items()} == expected
    assert {v for _, v, _ in expected} == set(statuses.values())
    # The lifecycle stage a disqualification moves to ("other") carries the same reason.
    disqualified = {i: r for i, v, r in expected if v == "UNQUALIFIED"}
    stages = _decisions(ws, "hubspot", "lifecycle_stage")
    assert {i: r for (i, _), r in stages.items() if i in disqualified} == disqualified


# -- a reason filled in after the status ---------------------------------------------------


def _working_leads(store: Any, count: int) -> list[str]:
    """Ids of leads a rep is working, with no reason filled in yet."""
    return [
        i for i, r in store.records["Lead"].items()
        if r.get("Status") == LEAD_WORKING and not r.get("IsConverted")
        and not r.get("Disqualified_Reason__c") and not r.get("Recycle_Reason__c")
    ][:count]  # fmt: skip


def _sf_edit(store: Any, lead_id: str, at: datetime, **values: str) -> datetime:
    """Save a lead at ``at`` as a rep does in the UI; the org clock runs on afterwards."""
    store.clock.set(at)
    store.modify("Lead", lead_id, values)
    store.clock.release()
    return at


def _reason(ws: Any, crm: str, object_id: str, new_value: str) -> str | None:
    return _decisions(ws, crm)[(object_id, new_value)]


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def test_a_salesforce_reason_filled_in_the_next_day_reaches_the_stored_disqualification(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(SALESFORCE)
    store = ws.sandbox.store("salesforce")
    run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)
    [lead] = _working_leads(store, 1)
    decided = _sf_edit(store, lead, store.clock.now() + timedelta(minutes=1), Status="Disqualified")
    first = run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)
    assert first.count("dispositions") == 1
    assert _reason(ws, "salesforce", lead, "Disqualified") is None

    _sf_edit(store, lead, decided + timedelta(days=1), Disqualified_Reason__c="No budget")
    second = run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)

    assert second.state == "succeeded", second.error
    assert _reason(ws, "salesforce", lead, "Disqualified") == "No budget"
    assert second.count("dispositions") == 0  # the transition was not recorded again
    assert second.count("reasons") == 1


def test_a_salesforce_reason_saved_just_before_the_status_in_the_same_second_is_its_reason(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(SALESFORCE)
    store = ws.sandbox.store("salesforce")
    run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)
    [lead] = _working_leads(store, 1)
    second = (store.clock.now() + timedelta(seconds=2)).replace(microsecond=0)
    _sf_edit(store, lead, second + timedelta(milliseconds=100), Recycle_Reason__c="No response")
    _sf_edit(store, lead, second + timedelta(milliseconds=600), Status="Recycled")

    run = run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)

    assert run.state == "succeeded", run.error
    assert _reason(ws, "salesforce", lead, "Recycled") == "No response"


def test_a_reason_too_late_after_the_next_status_or_of_the_other_decision_explains_nothing(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(SALESFORCE)
    store = ws.sandbox.store("salesforce")
    run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)
    late, reopened, other, in_time = _working_leads(store, 4)
    t0 = store.clock.now() + timedelta(minutes=1)
    for n, lead in enumerate((late, reopened, other, in_time)):
        _sf_edit(store, lead, t0 + timedelta(seconds=n), Status="Disqualified")
    _sf_edit(store, reopened, t0 + timedelta(minutes=1), Status=LEAD_WORKING)
    _sf_edit(store, reopened, t0 + timedelta(minutes=2), Disqualified_Reason__c="No budget")
    _sf_edit(store, other, t0 + timedelta(minutes=3), Recycle_Reason__c="No response")
    run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)
    _sf_edit(store, in_time, t0 + timedelta(days=6), Disqualified_Reason__c="Competitor")
    _sf_edit(store, late, t0 + timedelta(days=8), Disqualified_Reason__c="Competitor")

    run = run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)

    assert run.state == "succeeded", run.error
    assert _reason(ws, "salesforce", late, "Disqualified") is None  # beyond the 7 days
    assert _reason(ws, "salesforce", reopened, "Disqualified") is None  # after it was reopened
    assert _reason(ws, "salesforce", other, "Disqualified") is None  # a recycle's reason field
    assert _reason(ws, "salesforce", in_time, "Disqualified") == "Competitor"


def test_a_reason_field_without_history_tracking_still_reaches_the_decision_by_polling(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(SALESFORCE)
    store = ws.sandbox.store("salesforce")
    store.history_tracked["Lead"].pop("Disqualified_Reason__c")
    run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)
    [lead] = _working_leads(store, 1)
    decided = _sf_edit(store, lead, store.clock.now() + timedelta(minutes=1), Status="Disqualified")
    run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)

    _sf_edit(store, lead, decided + timedelta(hours=3), Disqualified_Reason__c="Bad data")
    run = run_pipeline(ws.config, "sf-dispositions", ws.engine, clock=store.clock.now)

    assert run.state == "succeeded", run.error
    assert _reason(ws, "salesforce", lead, "Disqualified") == "Bad data"


def _working_contact(store: Any) -> str:
    with store.lock:
        return next(
            i for i, r in store.data.objects["contacts"].items()
            if r.properties.get("hs_lead_status") == "IN_PROGRESS"
            and not r.properties.get("closedloop_disqualified_reason")
            and not r.properties.get("closedloop_recycle_reason")
        )  # fmt: skip


def _hs_edit(store: Any, contact_id: str, at: datetime, **properties: str) -> datetime:
    """Edit a contact at ``at`` as a rep does in HubSpot; the portal clock runs on afterwards."""
    store.clock.set(at)
    with store.lock:
        store.data.batch_update(
            "contacts", {"inputs": [{"id": contact_id, "properties": properties}]}
        )
    store.clock.set(at, frozen=False)
    time.sleep(0.01)
    return at


def test_a_hubspot_reason_filled_in_the_next_day_reaches_the_stored_disqualification(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(HUBSPOT)
    store = ws.sandbox.store("hubspot")
    run_pipeline(ws.config, "hs-dispositions", ws.engine, clock=store.clock.now)
    contact = _working_contact(store)
    decided = _hs_edit(
        store, contact, store.clock.now() + timedelta(minutes=1), hs_lead_status="UNQUALIFIED"
    )
    first = run_pipeline(ws.config, "hs-dispositions", ws.engine, clock=store.clock.now)
    assert first.state == "succeeded", first.error
    assert _reason(ws, "hubspot", contact, "UNQUALIFIED") is None

    _hs_edit(store, contact, decided + timedelta(days=1), closedloop_disqualified_reason="No need")
    second = run_pipeline(ws.config, "hs-dispositions", ws.engine, clock=store.clock.now)

    assert second.state == "succeeded", second.error
    assert _reason(ws, "hubspot", contact, "UNQUALIFIED") == "No need"
    assert second.count("dispositions") == 0
    assert second.count("reasons") == 1


def test_a_hubspot_reason_set_just_before_the_status_in_the_same_second_is_its_reason(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(HUBSPOT)
    store = ws.sandbox.store("hubspot")
    run_pipeline(ws.config, "hs-dispositions", ws.engine, clock=store.clock.now)
    contact = _working_contact(store)
    second = (store.clock.now() + timedelta(seconds=2)).replace(microsecond=0)
    _hs_edit(store, contact, second + timedelta(milliseconds=100),
             closedloop_recycle_reason="Timing: next fiscal year")  # fmt: skip
    recycled = _hs_edit(
        store, contact, second + timedelta(milliseconds=600), hs_lead_status="BAD_TIMING"
    )

    run = run_pipeline(ws.config, "hs-dispositions", ws.engine, clock=store.clock.now)

    assert run.state == "succeeded", run.error
    with ws.engine.connect() as conn:
        row = conn.execute(
            select(_TABLE.c.changed_at, _TABLE.c.reason).where(
                _TABLE.c.object_id == contact, _TABLE.c.new_value == "BAD_TIMING"
            )
        ).one()
    assert (row.changed_at, row.reason) == (_ms(recycled), "Timing: next fiscal year")
