"""``closedloop sla``: hand-offs to sales that broke (or are breaking) the follow-up SLA.

Targets come per CRM and stage from each CRM's mapping (``lifecycle.sla``: MQL, SAL ...),
the MQL one overridden by ``analytics.sla`` in closedloop.yaml; hand-offs are read from the
disposition ledger (``sync.analytics.sla`` says what counts as the first sales action).
``breaches`` measures open clocks at ``--as-of`` (default now) on the ledger as it stood
then, exactly as ``closedloop report --as-of`` does, and shows what sales decided about each
hand-off: disqualified or recycled, and why (``sync.analytics.reasons``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from sync.cli.as_of import as_of_help, parse_as_of
from sync.cli.output import FormatOption
from sync.csvout import write_dicts

__all__ = ["app", "breaches_command", "parse_since"]

app = typer.Typer(
    help="Speed of follow-up: SLA breaches of hand-offs to sales.", no_args_is_help=True
)


def parse_since(text: str, now: datetime) -> datetime:
    """``7d`` / ``12h`` (ago), ``2026-10-01`` or a full ISO time, as an aware UTC datetime."""
    from sync.mapping.model import parse_duration

    value = text.strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration such as 7d or 12h, or a date such as 2026-10-01"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _hours(delta: timedelta | None) -> float | None:
    return None if delta is None else round(delta.total_seconds() / 3600, 2)


@app.command("breaches")
def breaches_command(
    *,
    since: Annotated[
        str,
        typer.Option(
            "--since", help="Hand-offs since: a duration before --as-of (7d, 12h) or a date."
        ),
    ] = "30d",
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Only hand-offs sales then disqualified or recycled with this reason (any case; "
            "'(no reason given)' for none).",
            show_default=False,
        ),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help=as_of_help(), show_default=False)
    ] = None,
    fmt: FormatOption = "table",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="closedloop.yaml (default: ./closedloop.yaml if present)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Ledger URL (default: config, env, ./closedloop.db)."),
    ] = None,
) -> None:
    """List hand-offs whose first sales action came too late, or has not come in time, with
    what sales decided about each (disqualified or recycled, and why); and entries into a later
    stage with a target (SAL, SQL ...) that stayed there too long. Each row names its CRM and
    stage."""
    from connectors.errors import ConfigError
    from sync.analytics.reasons import decisions
    from sync.analytics.sla import sla_cases
    from sync.analytics.summary import hand_off_outcomes, histories_of
    from sync.cli.report_cmd import load_optional_config, open_report_ledger
    from sync.ledger.types import utcnow
    from sync.mapping.model import Stage
    from sync.report.build import load_for_report, report_inputs, with_derived_names

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format must be table, csv or json, not {fmt!r}")
    now = parse_as_of(as_of) if as_of is not None else utcnow()
    try:
        start = parse_since(since, now)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    loaded = load_optional_config(config)
    inputs = report_inputs(loaded)
    if not inputs.targets.any:
        raise ConfigError(
            "no SLA target: set analytics.sla.default in closedloop.yaml or lifecycle.sla.MQL "
            "in the dispositions pipeline's mapping"
        )
    engine = open_report_ledger(loaded, database_url)
    try:
        inputs, _derived = with_derived_names(engine, inputs)  # reps named by the CRM's users
        dataset = load_for_report(engine, inputs, now).as_of(now)
    finally:
        engine.dispose()
    names = inputs.settings.rep_names
    cases = [
        c
        for c in sla_cases(
            dataset.events, dataset.people, inputs.targets, now, inputs.settings.team_of
        )
        if c.is_breach and start <= c.handed_off_at
    ]
    histories = histories_of(dataset)
    hand_offs = [c for c in cases if c.stage is Stage.MQL]  # sales' decisions answer hand-offs
    outcomes = hand_off_outcomes(hand_offs, histories, decisions(histories, dataset.people))
    if reason is not None:
        wanted = " ".join(reason.split()).casefold()
        cases = [
            c
            for c in cases
            if c.stage is Stage.MQL
            and (found := outcomes.get((c.person, c.handed_off_at))) is not None
            and found.reason.casefold() == wanted
        ]
    rows: list[dict[str, Any]] = []
    for c in cases:
        decided = outcomes.get((c.person, c.handed_off_at)) if c.stage is Stage.MQL else None
        rows.append(
            {
                "crm": c.crm,
                "stage": str(c.stage),
                "person": c.person,
                "email": dataset.people[c.person].email if c.person in dataset.people else None,
                "rep": names.get(c.rep, c.rep) if c.rep else None,
                "team": c.team,
                "source": c.source,
                "handed_off_at": c.handed_off_at.isoformat(),
                "first_action_at": c.first_action_at.isoformat() if c.first_action_at else None,
                "target_hours": _hours(c.target),
                "late_by_hours": _hours(c.overdue_by(now)),
                "status": str(c.status),
                "outcome": str(decided.outcome) if decided else None,
                "reason": decided.reason if decided else None,
            }
        )
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        write_dicts(sys.stdout, rows, None if rows else ["person"])
    else:
        _table(rows, f"since {since}" + (f", as of {as_of}" if as_of is not None else ""))


def _table(rows: list[dict[str, Any]], when: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not rows:
        console.print(f"No SLA breaches in hand-offs {when}.")
        return
    table = Table(title=f"SLA breaches {when} ({len(rows)})")
    for column in (
        "crm",
        "stage",
        "person",
        "email",
        "rep",
        "handed off",
        "first action",
        "target h",
        "late by h",
        "status",
        "outcome",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["crm"] or "",
            row["stage"],
            row["person"],
            row["email"] or "",
            row["rep"] or "(unassigned)",
            row["handed_off_at"][:16].replace("T", " "),
            (row["first_action_at"] or "none yet")[:16].replace("T", " "),
            f"{row['target_hours']:g}" if row["target_hours"] is not None else "",
            f"{row['late_by_hours']:g}" if row["late_by_hours"] is not None else "",
            row["status"],
            f"{row['outcome']}: {row['reason']}" if row["outcome"] else "",
        )
    console.print(table)


@app.command("writeback")
def writeback_command(
    *,
    crm: Annotated[
        str | None,
        typer.Option(
            "--crm",
            help="The CRM connection (default: analytics.crms, else every Salesforce and "
            "HubSpot connection).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read the CRM and say what would change; write nothing."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="closedloop.yaml (default: $CLOSEDLOOP_CONFIG, ./closedloop.yaml)."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Ledger URL (default: config, env, ./closedloop.db)."),
    ] = None,
) -> None:
    """Flag people whose latest hand-off breached the SLA in the CRM; clear stale flags."""
    from connectors.errors import ConfigError
    from sync.cli.attribution_cmd import load_required_config, print_writeback, writeback_crms
    from sync.cli.report_cmd import open_report_ledger
    from sync.ledger.types import utcnow
    from sync.writeback.sla import sla_settings, writeback_sla

    loaded = load_required_config(config)
    sla_settings(loaded)
    names = writeback_crms(loaded, crm, ("salesforce", "hubspot"))
    chosen = loaded.analytics.crms
    if crm is None and chosen is not None:
        names = [n for n in names if n in chosen]
    if not names:
        raise ConfigError(f"{loaded.path}: no Salesforce or HubSpot connection to flag breaches on")
    engine = open_report_ledger(loaded, database_url)
    connectors = {}
    try:
        for name in names:
            connectors[name] = loaded.connections[name].build()
        reports = writeback_sla(engine, loaded, connectors, now=utcnow(), dry_run=dry_run)
    finally:
        for connector in connectors.values():
            connector.close()
        engine.dispose()
    print_writeback(reports)
