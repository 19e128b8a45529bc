"""SLA breach flags written back to the CRM (DOMAIN.md section 4: "flag breaches").

A person is flagged while their *latest* hand-off to sales is a breach (answered too late, or
still unanswered past the target: ``sync.analytics.sla``) and that hand-off is younger than
``analytics.writeback.window``. The flag clears when the person is handed off again and that
hand-off is met or still within its target, or when the breached hand-off leaves the window.
The flag time is when the target ran out (hand-off + target).

Salesforce: a custom checkbox (and optional Date/Time) on the Lead, or on the Contact the lead
was converted to (``connectors.salesforce.flags``). HubSpot: a contact property (and optional
datetime property) (``connectors.hubspot.writeback``). Either way the CRM's currently flagged
records are read first and only the difference is written: people flagged by hand or by an
earlier run who no longer breach are cleared too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from sqlmodel import select as sm_select

from connectors.errors import ConfigError
from sync.analytics.settings import parse_duration
from sync.analytics.sla import SlaCase, sla_cases
from sync.ledger.models import PersonRow
from sync.mapping.model import Stage
from sync.writeback.report import WritebackReport, dead_letter
from sync.writeback.settings import SlaWriteback

__all__ = ["PIPELINE", "breaches_now", "flag_targets", "sla_settings", "writeback_sla"]

PIPELINE = "sla-writeback"  # the dead letters' pipeline name


def sla_settings(config: Any) -> SlaWriteback:
    """The ``analytics.writeback`` section; ConfigError when it is absent or disabled."""
    found = getattr(getattr(config, "analytics", None), "writeback", None)
    if not isinstance(found, SlaWriteback) or not found.enabled:
        raise ConfigError(
            "SLA write-back is off: add an analytics.writeback section to closedloop.yaml "
            "(field / time_field for Salesforce, property / time_property for HubSpot; see "
            "the README)"
        )
    return found


def breaches_now(cases: Iterable[SlaCase], since: datetime) -> dict[str, datetime | None]:
    """Person key -> when the SLA ran out, for people whose latest hand-off (at or after
    ``since``) is a breach."""
    latest: dict[str, SlaCase] = {}
    for case in cases:
        seen = latest.get(case.person)
        if seen is None or case.handed_off_at >= seen.handed_off_at:
            latest[case.person] = case
    return {
        person: (case.handed_off_at + case.target if case.target is not None else None)
        for person, case in latest.items()
        if case.is_breach and case.handed_off_at >= since
    }


def flag_targets(
    session: Session, crm: str, breaches: Mapping[str, datetime | None]
) -> dict[tuple[str, str], datetime | None]:
    """The CRM records to flag for ``crm``'s breached people: (sobject, id) -> time.

    A converted lead is flagged on its contact; deleted people are not flagged. HubSpot people
    are contacts (sobject ``Contact``, the id is the contact's record id).
    """
    prefix = f"{crm}:"
    ids = {key[len(prefix) :]: at for key, at in breaches.items() if key.startswith(prefix)}
    if not ids:
        return {}
    rows = {
        r.external_id: r
        for r in session.exec(sm_select(PersonRow).where(PersonRow.crm == crm)).all()
        if r.external_id in ids or r.converted_contact_external_id
    }
    out: dict[tuple[str, str], datetime | None] = {}
    for external_id, at in ids.items():
        row = rows.get(external_id)
        if row is None or row.deleted:
            continue
        if row.kind == "lead" and row.converted:
            if row.converted_contact_external_id:
                out[("Contact", row.converted_contact_external_id)] = at
            continue
        out[("Lead" if row.kind == "lead" else "Contact", external_id)] = at
    return out


def _breaches(
    engine: Engine, config: Any, now: datetime, window: str
) -> dict[str, datetime | None]:
    from sync.report.build import load_for_report, report_inputs

    inputs = report_inputs(config)
    targets = inputs.targets
    if not targets.any:
        raise ConfigError(
            "no SLA target: set analytics.sla.default in closedloop.yaml or lifecycle.sla.MQL "
            "in the dispositions pipeline's mapping"
        )
    dataset = load_for_report(engine, inputs, now)
    cases = sla_cases(  # the flag is about hand-offs: later stages' clocks do not set it
        dataset.events, dataset.people, targets, now, inputs.settings.team_of, stages=(Stage.MQL,)
    )
    return breaches_now(cases, now - parse_duration(window))


def writeback_sla(
    engine: Engine,
    config: Any,
    connectors: Mapping[str, Any],
    *,
    now: datetime,
    dry_run: bool = False,
) -> list[WritebackReport]:
    """Flag breached people and clear the rest on each CRM of ``connectors`` (name -> connector)."""
    settings = sla_settings(config)
    breaches = _breaches(engine, config, now, settings.window)
    reports = []
    for crm, connector in connectors.items():
        kind = config.connections[crm].type
        with Session(engine) as session:
            targets = flag_targets(session, crm, breaches)
        if kind == "salesforce":
            report = _to_salesforce(connector, settings, targets, crm=crm, dry_run=dry_run)
        elif kind == "hubspot":
            report = _to_hubspot(connector, settings, targets, crm=crm, dry_run=dry_run)
        else:
            raise ConfigError(
                f"connection {crm!r} is of type {kind!r}: SLA write-back supports salesforce "
                "and hubspot"
            )
        if not dry_run:
            dead_letter(engine, PIPELINE, report.rejected, {"crm": crm}, deferred=report.deferred)
        reports.append(report)
    return reports


def _to_salesforce(
    connector: Any,
    settings: SlaWriteback,
    targets: Mapping[tuple[str, str], datetime | None],
    *,
    crm: str,
    dry_run: bool,
) -> WritebackReport:
    from connectors.salesforce.flags import FlagWriter

    writer = FlagWriter(connector.client, settings.field, settings.time_field)
    done = writer.sync(targets, dry_run=dry_run)
    plan = done.plan
    report = WritebackReport(
        crm, f"{settings.field} on Lead/Contact", dry_run, records=len(targets)
    )
    report.counts = {
        "flagged": len(plan.set),
        "retimed": len(plan.retime),
        "cleared": len(plan.clear),
        "unchanged": plan.unchanged,
    }
    report.rejected = done.rejected
    report.deferred = done.deferred
    report.read_calls, report.write_calls = done.read_calls, done.write_calls
    return report


def _to_hubspot(
    connector: Any,
    settings: SlaWriteback,
    targets: Mapping[tuple[str, str], datetime | None],
    *,
    crm: str,
    dry_run: bool,
) -> WritebackReport:
    from connectors.hubspot.writeback import PropertyWriter

    wanted = {record_id: at for (_, record_id), at in targets.items()}
    writer = PropertyWriter(connector.client, "contacts")
    done = writer.sync_flag(wanted, settings.property, settings.time_property, dry_run=dry_run)
    report = WritebackReport(crm, f"{settings.property} on contacts", dry_run, records=len(wanted))
    report.counts = {**done.counts, "unchanged": done.unchanged}
    report.rejected = done.rejected
    report.read_calls, report.write_calls = done.read_calls, done.write_calls
    return report
