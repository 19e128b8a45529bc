"""`closedloop sla writeback`: breached people flagged in the CRM, flags cleared once stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import yaml
from sqlmodel import select
from typer.testing import CliRunner

from sync.analytics.sla import SlaCase, SlaStatus
from sync.cli import check_cmd, sla_cmd
from sync.ledger import DeadLetterRow, DispositionRow, ledger_session
from sync.ledger.models import PersonRow
from sync.ledger.types import utcnow
from sync.pipelines.runner import run_pipeline
from sync.writeback.sla import breaches_now
from tests.connectors.salesforce.test_flags import AT, FLAG, flag_fields  # noqa: F401 - fixture
from tests.sync.writeback.conftest import Workspace

Make = Callable[..., Workspace]
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _case(person: str, at: datetime, status: SlaStatus) -> SlaCase:
    return SlaCase(person, at, "005A", None, None, 4 * HOUR, None, status)


def test_only_a_breach_in_the_latest_hand_off_within_the_window_flags_a_person() -> None:
    cases = [
        _case("crm:a", T0, SlaStatus.OVERDUE),  # still unanswered past the target
        _case("crm:b", T0, SlaStatus.BREACHED),  # answered late...
        _case("crm:b", T0 + 48 * HOUR, SlaStatus.MET),  # ...then handed off again and met
        _case("crm:c", T0 - 60 * 24 * HOUR, SlaStatus.BREACHED),  # too long ago
        _case("crm:d", T0, SlaStatus.WAITING),
    ]
    assert breaches_now(cases, since=T0 - 30 * 24 * HOUR) == {"crm:a": T0 + 4 * HOUR}


def _handoff(
    ws: Workspace, crm: str, person: str, at: datetime, answered: timedelta | None
) -> None:
    with ledger_session(ws.engine) as session:
        kind = session.exec(
            select(PersonRow.kind).where(PersonRow.crm == crm, PersonRow.external_id == person)
        ).one()
        rows = [(at, "MQL")] + ([(at + answered, "Working")] if answered is not None else [])
        for changed_at, stage in rows:
            session.add(
                DispositionRow(
                    crm=crm, object_type=kind, object_id=person, field="Status",
                    new_value=stage, lifecycle_stage=stage, changed_at=changed_at,
                )
            )  # fmt: skip


def _people(ws: Workspace, crm: str, kind: str, count: int) -> list[PersonRow]:
    with ledger_session(ws.engine) as session:
        rows = session.exec(
            select(PersonRow)
            .where(PersonRow.crm == crm, PersonRow.kind == kind, PersonRow.deleted == False)  # noqa: E712
            .order_by(PersonRow.external_id)
        ).all()
        session.expunge_all()
    return list(rows)[:count]


def _run(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(sla_cmd.app, ["writeback", *args, "--config", str(ws.config.path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_hubspot_contacts_are_flagged_and_stale_flags_cleared(workspace: Make) -> None:
    ws = workspace(analytics={"crms": ["hubspot"], "sla": {"default": "4h"}, "writeback": {}})
    assert run_pipeline(ws.config, "hubspot-reconcile", ws.engine).ok
    CliRunner().invoke(check_cmd.app, ["hubspot", "--fix", "--config", str(ws.config.path)])
    now = utcnow()
    late, quick, old, stale = (p.external_id for p in _people(ws, "hubspot", "contact", 4))
    _handoff(ws, "hubspot", late, now - 48 * HOUR, None)  # unanswered: overdue
    _handoff(ws, "hubspot", quick, now - 48 * HOUR, HOUR)  # answered within 4h
    _handoff(ws, "hubspot", old, now - 90 * 24 * HOUR, None)  # outside the 30-day window
    store = ws.sandbox.store("hubspot")
    with store.lock:  # flagged by hand (or by an earlier run) but not breaching now
        store.data.objects["contacts"][stale].properties["closedloop_sla_breached"] = "true"

    output = _run(ws)

    with store.lock:
        contacts = store.data.objects["contacts"]
        flagged = {
            i for i, r in contacts.items() if r.properties.get("closedloop_sla_breached") == "true"
        }
        at = contacts[late].properties.get("closedloop_sla_breached_at")
    assert flagged == {late}
    assert at is not None
    assert at.startswith((now - 44 * HOUR).strftime("%Y-%m-%dT%H:%M"))
    assert "flagged 1" in output
    assert "cleared 1" in output
    assert "changed 0 record(s)" in _run(ws)


def test_salesforce_flags_the_contact_a_breached_lead_was_converted_to(
    workspace: Make,
    flag_fields: None,  # noqa: F811 - the fixture
) -> None:
    ws = workspace(analytics={"crms": ["salesforce"], "sla": {"default": "4h"}, "writeback": {}})
    assert run_pipeline(ws.config, "salesforce-reconcile", ws.engine).ok
    now = utcnow()
    lead = next(p for p in _people(ws, "salesforce", "lead", 400) if not p.converted)
    converted = next(
        p
        for p in _people(ws, "salesforce", "lead", 400)
        if p.converted and p.converted_contact_external_id
    )
    _handoff(ws, "salesforce", lead.external_id, now - 30 * HOUR, None)
    _handoff(ws, "salesforce", converted.external_id, now - 30 * HOUR, 10 * HOUR)  # answered late

    dry = _run(ws, "--dry-run")
    assert "would change 2 record(s)" in dry
    _run(ws)

    store = ws.sandbox.store("salesforce")
    flagged = {
        r["Id"]
        for sobject in ("Lead", "Contact")
        for r in store.records[sobject].values()
        if r.get(FLAG)
    }
    assert flagged == {lead.external_id, converted.converted_contact_external_id}
    assert store.records["Lead"][lead.external_id][AT] is not None
    assert "changed 0 record(s)" in _run(ws)


def test_sla_writeback_without_its_section_stops_with_what_to_add(workspace: Make) -> None:
    ws = workspace()
    result = CliRunner().invoke(sla_cmd.app, ["writeback", "--config", str(ws.config.path)])
    assert result.exit_code != 0
    assert "analytics.writeback" in str(result.exception)


def test_a_flag_on_a_lead_another_process_keeps_locked_is_written_by_the_next_run_not_dead(
    workspace: Make,
    flag_fields: None,  # noqa: F811 - the fixture
) -> None:
    ws = workspace(analytics={"crms": ["salesforce"], "sla": {"default": "4h"}, "writeback": {}})
    data = yaml.safe_load(ws.config.path.read_text(encoding="utf-8"))
    data["connections"]["salesforce"]["lock_retry_backoff_s"] = 0
    ws.config.path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert run_pipeline(ws.config, "salesforce-reconcile", ws.engine).ok
    lead, other = [p for p in _people(ws, "salesforce", "lead", 400) if not p.converted][:2]
    for person in (lead, other):
        _handoff(ws, "salesforce", person.external_id, utcnow() - 30 * HOUR, None)
    store = ws.sandbox.store("salesforce")
    store.hold_locks([lead.external_id])

    first = " ".join(_run(ws).split())

    assert "(flagged 2, retimed 0, cleared 0, unchanged 0), 1 locked by another process" in first
    assert store.records["Lead"][other.external_id][FLAG] is True
    with ledger_session(ws.engine) as session:
        assert session.exec(select(DeadLetterRow)).all() == []
    store.release_locks()
    assert "changed 1 record(s) (flagged 1, retimed 0, cleared 0, unchanged 1);" in _run(ws)
    assert store.records["Lead"][lead.external_id][FLAG] is True


def test_a_lead_converted_after_the_last_pull_is_flagged_on_its_contact_without_dead_letters(
    workspace: Make,
    flag_fields: None,  # noqa: F811 - the fixture
) -> None:
    """The ledger still holds the person as an open Lead; in Salesforce a rep converted it."""
    ws = workspace(analytics={"crms": ["salesforce"], "sla": {"default": "4h"}, "writeback": {}})
    assert run_pipeline(ws.config, "salesforce-reconcile", ws.engine).ok
    lead = next(p for p in _people(ws, "salesforce", "lead", 400) if not p.converted)
    _handoff(ws, "salesforce", lead.external_id, utcnow() - 30 * HOUR, None)
    store = ws.sandbox.store("salesforce")
    contact = store.convert_lead(lead.external_id)

    output = _run(ws)

    assert store.records["Contact"][contact][FLAG] is True
    assert store.records["Lead"][lead.external_id].get(FLAG) is not True
    assert "refused" not in output
    with ledger_session(ws.engine) as session:
        assert session.exec(select(DeadLetterRow)).all() == []
    assert "changed 0 record(s)" in _run(ws)
