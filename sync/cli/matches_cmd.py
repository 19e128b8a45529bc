"""``closedloop matches``: link unconverted leads to accounts, and review the doubtful links.

``run`` matches every lead without an account (email domain, company name, acronym, fuzzy
similarity; see ``sync.matching``); confident links are made at once, the rest are queued.
``list`` shows the queue (or any status), ``decide ID accept|reject`` records one decision,
``review`` walks the queue interactively. Decisions are kept and reused by every later run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sync.cli.output import FormatOption, check_format, print_records

app = typer.Typer(help="Link unconverted leads to accounts; review doubtful links.",
                  no_args_is_help=True)  # fmt: skip

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Ledger URL (default: $CLOSEDLOOP_DATABASE_URL, "
                 "else ./closedloop.db)."),
]  # fmt: skip
STATUSES = ("auto", "pending", "accepted", "rejected")


def _url(database_url: str | None) -> str:
    from sync.ledger import default_database_url

    return database_url or default_database_url()


@app.command("run")
def run_command(
    crm: Annotated[str, typer.Option("--crm", help="The CRM connection whose leads to match.")],
    auto_threshold: Annotated[
        float, typer.Option(help="Confidence at which a link is made without review.")
    ] = 0.9,
    review_threshold: Annotated[
        float, typer.Option(help="Confidence at which a link is queued for review.")
    ] = 0.6,
    database_url: DatabaseUrl = None,
) -> None:
    """Match unconverted leads to accounts; link the confident ones, queue the others."""
    from sync.identity_graph import record_email_history
    from sync.ledger import ledger_session, open_ledger
    from sync.matching import reconcile_matches

    if not 0 < review_threshold <= auto_threshold <= 1:
        raise typer.BadParameter("need 0 < --review-threshold <= --auto-threshold <= 1")
    engine = open_ledger(_url(database_url))
    try:
        with ledger_session(engine) as session:
            record_email_history(session, crm)
            summary = reconcile_matches(
                session, crm, auto_threshold=auto_threshold, review_threshold=review_threshold
            )
    finally:
        engine.dispose()
    typer.echo(
        f"{crm}: {summary.leads} leads without an account: {summary.linked} linked, "
        f"{summary.pending} waiting for review, {summary.unmatched} without a match"
    )


MATCH_COLUMNS = ("id", "crm", "lead", "company", "email", "account", "account_name",
                 "confidence", "method", "status")  # fmt: skip


@app.command("list")
def list_command(
    status: Annotated[
        str, typer.Option("--status", help="auto, pending, accepted, rejected or all.")
    ] = "pending",
    crm: Annotated[str | None, typer.Option("--crm", help="Only this CRM connection.")] = None,
    database_url: DatabaseUrl = None,
    fmt: FormatOption = "table",
) -> None:
    """List matches (the review queue by default) with their confidence and evidence."""
    from rich.console import Console
    from rich.table import Table

    check_format(fmt)
    rows = _matches(database_url, status, crm)
    if fmt != "table":
        records = [
            {
                "id": row.id, "crm": row.crm, "lead": row.person_external_id,
                "company": lead_company, "email": lead_email,
                "account": row.account_external_id, "account_name": account_name,
                "confidence": round(row.confidence, 4), "method": row.method,
                "status": row.status,
            }
            for row, lead_company, lead_email, account_name in rows
        ]  # fmt: skip
        print_records(fmt, records, MATCH_COLUMNS)
        return
    table = Table(title=f"lead-to-account matches ({status})")
    for column in ("id", "crm", "lead", "company", "email", "account", "confidence", "method",
                   "status"):  # fmt: skip
        table.add_column(column)
    for row, lead_company, lead_email, account_name in rows:
        table.add_row(
            str(row.id),
            row.crm,
            row.person_external_id,
            lead_company or "",
            lead_email or "",
            f"{account_name or '?'} ({row.account_external_id})",
            f"{row.confidence:.2f}",
            row.method,
            row.status,
        )
    Console(highlight=False).print(table)


def _matches(database_url: str | None, status: str, crm: str | None) -> list[tuple]:  # type: ignore[type-arg]
    from sqlmodel import col, select

    from sync.ledger import ledger_session, open_ledger
    from sync.ledger.models import AccountMatchRow, AccountRow, PersonRow

    if status != "all" and status not in STATUSES:
        raise typer.BadParameter(f"choose {', '.join(STATUSES)} or all", param_hint="--status")
    engine = open_ledger(_url(database_url))
    try:
        with ledger_session(engine) as session:
            query = select(AccountMatchRow).order_by(col(AccountMatchRow.id))
            if status != "all":
                query = query.where(AccountMatchRow.status == status)
            if crm:
                query = query.where(AccountMatchRow.crm == crm)
            result = []
            for row in session.exec(query).all():
                lead = session.exec(
                    select(PersonRow).where(
                        PersonRow.crm == row.crm,
                        PersonRow.external_id == row.person_external_id,
                    )
                ).first()
                account = session.exec(
                    select(AccountRow.name).where(
                        AccountRow.crm == row.crm,
                        AccountRow.external_id == row.account_external_id,
                    )
                ).first()
                result.append(
                    (row, lead.company if lead else None, lead.email if lead else None, account)
                )
            return result
    finally:
        engine.dispose()


@app.command("decide")
def decide_command(
    match_id: Annotated[int, typer.Argument(help="The match id (see `matches list`).")],
    decision: Annotated[str, typer.Argument(help="accept or reject.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Accept or reject one match; the decision is reused by every later run."""
    if decision not in ("accept", "reject"):
        raise typer.BadParameter("accept or reject", param_hint="DECISION")
    _decide(database_url, match_id, decision == "accept")
    typer.echo(f"match {match_id}: {decision}ed")


def _decide(database_url: str | None, match_id: int, accept: bool) -> None:
    from sync.ledger import ledger_session, open_ledger
    from sync.matching import decide

    engine = open_ledger(_url(database_url))
    try:
        with ledger_session(engine) as session:
            decide(session, match_id, accept)
    finally:
        engine.dispose()


@app.command("review")
def review_command(
    crm: Annotated[str | None, typer.Option("--crm", help="Only this CRM connection.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Walk the review queue: accept (a), reject (r), skip (s) or quit (q) each match."""
    from rich.console import Console
    from rich.prompt import Prompt

    console = Console(highlight=False)
    queue = _matches(database_url, "pending", crm)
    if not queue:
        console.print("the review queue is empty")
        return
    decided = 0
    for number, (row, company, email, account) in enumerate(queue, start=1):
        console.print(
            f"[bold]{number}/{len(queue)}[/] lead {row.person_external_id} "
            f"({company or 'no company'}, {email or 'no email'}) -> account "
            f"{account or '?'} ({row.account_external_id}): confidence {row.confidence:.2f} "
            f"by {row.method} {row.evidence}"
        )
        answer = Prompt.ask("accept, reject, skip or quit", choices=["a", "r", "s", "q"],
                            default="s", console=console)  # fmt: skip
        if answer == "q":
            break
        if answer in ("a", "r"):
            assert row.id is not None
            _decide(database_url, row.id, answer == "a")
            decided += 1
    console.print(f"{decided} decision(s) recorded")
