"""``closedloop log --email X | --touch KEY | --record CRM_ID``: the whole story of one person,
touch or CRM record, from the row-level sync log (``sync.synclog``).

Each step is one line, oldest first: pulled (from the ``touch`` table), matched to a CRM person,
mapped and sent (``create`` / ``update``), skipped, refused with the vendor's answer, replayed.
``--payload`` shows what was sent under each step in the table; ``--format json`` always
carries it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from connectors.errors import ConfigError
from sync.cli.dead_letters_cmd import ConfigOption, DatabaseOption, _config, _engine
from sync.cli.output import FormatOption, check_format, output_console, print_records

if TYPE_CHECKING:
    from rich.console import Console

    from sync.synclog import LogEntryView

__all__ = ["log_command"]

COLUMNS = ("at", "step", "pipeline", "touch", "crm", "crm_id", "answer")


def log_command(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
    email: Annotated[
        str | None, typer.Option("--email", "-e", help="A person's e-mail address.")
    ] = None,
    touch: Annotated[
        str | None, typer.Option("--touch", "-t", help="A touch key (source:id).")
    ] = None,
    record: Annotated[
        str | None, typer.Option("--record", "-r", help="A CRM record id (person or activity).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many steps (the newest).")
    ] = 200,
    payload: Annotated[
        bool, typer.Option("--payload", help="Show the payload sent under each step.")
    ] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Show a person's, a touch's or a CRM record's whole sync story, oldest step first."""
    from sync.synclog import story

    check_format(fmt, ("table", "json"))
    given = {"--email": email, "--touch": touch, "--record": record}
    chosen = [name for name, value in given.items() if value]
    if len(chosen) != 1:
        raise ConfigError("give exactly one of --email, --touch or --record")
    engine = _engine(_config(config, required=False), database_url)
    try:
        with engine.connect() as conn:
            steps = story(conn, email=email or None, touch_key=touch or None,
                          crm_id=record or None, limit=limit)  # fmt: skip
    finally:
        engine.dispose()
    subject = f"{chosen[0]} {given[chosen[0]]}"
    if fmt == "json":
        print_records(fmt, [s.to_json() for s in steps], COLUMNS)
        return
    console = output_console()
    if not steps:
        console.print(f"nothing logged for {subject}", markup=False, highlight=False)
        return
    _table(console, subject, steps, show_payload=payload)


def _table(
    console: Console, subject: str, steps: list[LogEntryView], *, show_payload: bool
) -> None:
    from rich.table import Table
    from rich.text import Text

    from sync.synclog import STEP_LABELS

    table = Table(title=Text(f"sync log of {subject}"), title_justify="left", show_lines=True)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for step in steps:
        answer = step.answer or ""
        if show_payload and step.payload is not None:
            sent = json.dumps(step.payload, indent=1, ensure_ascii=False, default=str)
            answer = f"{answer}\n{sent}" if answer else sent
        table.add_row(*(Text(cell) for cell in (
            step.at.strftime("%Y-%m-%d %H:%M:%S"), STEP_LABELS.get(step.operation, step.operation),
            step.pipeline or "-", step.touch_key or "-", step.crm, step.crm_id or "-", answer,
        )))  # fmt: skip
    console.print(table)
