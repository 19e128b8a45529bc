"""Dispositions and reconcile against the Salesforce sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from sync.ledger import (
    AccountRow,
    CampaignCostRow,
    CampaignRow,
    ContactRoleRow,
    DispositionRow,
    OpportunityRow,
)
from sync.pipelines import run_pipeline

DISPOSITIONS = {
    "sf-dispositions": {
        "kind": "dispositions", "source": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
    "sf-reconcile": {"kind": "reconcile", "source": "salesforce"},
}  # fmt: skip


def _count(engine: Any, model: Any, *where: Any) -> int:
    table = model.__table__
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_a_status_change_appends_one_translated_disposition_and_rereads_add_none(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(DISPOSITIONS)
    first = run_pipeline(ws.config, "sf-dispositions", ws.engine)
    assert first.state == "succeeded", first.error
    before = _count(ws.engine, DispositionRow)
    assert before > 0
    store = ws.sandbox.store("salesforce")
    lead_id, lead = next(
        (i, r) for i, r in store.records["Lead"].items()
        if r.get("Status") == "Open - Not Contacted" and not r.get("IsConverted")
    )  # fmt: skip
    store.modify("Lead", lead_id, {"Status": "Working - Contacted"})

    second = run_pipeline(ws.config, "sf-dispositions", ws.engine)
    third = run_pipeline(ws.config, "sf-dispositions", ws.engine)

    assert second.count("dispositions") == 1
    assert third.count("dispositions") == 0
    table = DispositionRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.object_id == lead_id).order_by(table.c.changed_at)
        ).all()
    change = rows[-1]
    assert (change.field, change.old_value, change.new_value) == (
        "status", "Open - Not Contacted", "Working - Contacted",
    )  # fmt: skip
    assert change.lifecycle_stage == "SAL"
    assert change.email == lead["Email"].lower()
    assert _count(ws.engine, DispositionRow) == before + 1


def test_reconcile_copies_the_crm_graph_into_the_ledger(workspace_factory: Any) -> None:
    ws = workspace_factory(DISPOSITIONS)

    summary = run_pipeline(ws.config, "sf-reconcile", ws.engine)

    assert summary.state == "succeeded", summary.error
    counts = ws.sandbox.store("salesforce").dump()["counts"]
    assert _count(ws.engine, AccountRow) == counts["Account"]
    assert _count(ws.engine, OpportunityRow) == counts["Opportunity"]
    assert _count(ws.engine, ContactRoleRow) == counts["OpportunityContactRole"]
    assert _count(ws.engine, CampaignRow) == counts["Campaign"]
    costs = CampaignCostRow.__table__  # type: ignore[attr-defined]
    assert _count(ws.engine, CampaignCostRow, costs.c.origin == "crm") > 0
    again = run_pipeline(ws.config, "sf-reconcile", ws.engine)
    assert again.count("accounts") == 0
    assert _count(ws.engine, AccountRow) == counts["Account"]


def test_the_mappings_reason_field_is_pulled_even_when_the_connection_does_not_name_it(
    workspace_factory: Any,
) -> None:
    import yaml

    from sync.config import load_config

    ws = workspace_factory(DISPOSITIONS)
    path = ws.config.path
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["connections"]["salesforce"].pop("lead_reason_fields", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    summary = run_pipeline(load_config(path), "sf-dispositions", ws.engine)

    assert summary.state == "succeeded", summary.error
    table = DispositionRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        reasons = (
            conn.execute(
                select(table.c.reason).where(
                    table.c.crm == "salesforce", table.c.new_value == "Disqualified"
                )
            )
            .scalars()
            .all()
        )
    assert reasons
    assert all(reasons)  # every disqualification carries Disqualified_Reason__c
