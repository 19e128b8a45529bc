"""``--format table|json|csv`` of the listing commands: one option, one way to print records.

``table`` is for reading (rich); ``json`` prints the records as a JSON array (times as ISO 8601,
amounts as exact decimal strings); ``csv`` prints one header line and a line per record through
the one CSV writer (``sync.csvout``, which neutralises cells a spreadsheet would run).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sync.csvout import write_dicts

if TYPE_CHECKING:
    from sync.pipelines.runner import RunSummary

__all__ = [
    "FORMATS",
    "FormatOption",
    "calls_text",
    "check_format",
    "output_console",
    "print_listing",
    "print_records",
    "summary_table",
    "to_json",
]

FORMATS = ("table", "json", "csv")

FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="table (to read), json or csv (to script: one record per row, no colours).",
    ),
]


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    """``fmt`` when it is one of ``allowed``; else a ConfigError naming them (exit 2)."""
    from connectors.errors import ConfigError

    if fmt not in allowed:
        raise ConfigError(
            f"--format must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {fmt!r}"
        )
    return fmt


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(document: Any) -> str:
    """``document`` as indented JSON (Decimal as its exact string, times as ISO 8601)."""
    return json.dumps(document, indent=2, default=_plain, ensure_ascii=False)


def print_records(fmt: str, records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """``records`` as JSON or CSV on stdout (``columns``: the CSV header, in order)."""
    if fmt == "json":
        typer.echo(to_json(list(records)))
    else:
        write_dicts(sys.stdout, records, columns)
        sys.stdout.flush()


def print_listing(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    head: int,
) -> None:
    """Rows as a table when it fits the console's width; else as one block per row: the first
    ``head`` cells on a line, then a ``column: value`` line per other non-empty cell, wrapped
    between words (a narrow table would break names like ``badges-to-salesforce`` mid-word).
    Cells are plain text, never rich markup."""
    from rich.measure import Measurement
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    console.print(Text(title, style="italic"))
    for row in rows:
        console.print(Text("  ".join(row[:head])))
        for name, cell in zip(columns[head:], row[head:], strict=True):
            if cell and cell != "-":
                console.print(Padding(Text(f"{name}: {cell}"), (0, 0, 0, 4)))


def output_console() -> Console:
    """Stdout for tables: the terminal's width, or when piped $COLUMNS if set, else wide
    enough (200) not to fold."""
    console = Console(highlight=False)
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(highlight=False, width=int(columns) if columns.isdigit() else 200)


def calls_text(summary: RunSummary) -> str:
    """A run's API calls per connection, with the minimum each needed when known."""
    parts = []
    for name, calls in sorted(summary.api_calls.items()):
        minimum = summary.minimum_calls.get(name)
        parts.append(f"{name} {calls}" + (f" (min {minimum})" if minimum is not None else ""))
    return ", ".join(parts) or "-"


def summary_table(summaries: Sequence[RunSummary], title: str = "Runs") -> Table:
    """The table ``sync``, ``backfill`` and the demo print: one row per run."""
    table = Table(title=title, title_justify="left")
    for column in ("pipeline", "state", "pulled", "new", "pushed", "held", "dead letters",
                   "dispositions", "API calls", "time"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("pipeline", "state") else "right")
    for s in summaries:
        style = {"failed": "red", "interrupted": "yellow"}.get(s.state, "green")
        pulled = s.count("pulled") or sum(
            s.count(k) for k in ("accounts", "opportunities", "campaigns", "contact_roles")
        )
        table.add_row(
            s.pipeline, f"[{style}]{s.state}[/]", f"{pulled:,}", f"{s.count('new'):,}",
            f"{s.count('pushed'):,}", f"{s.count('held'):,}", f"{s.count('dead_lettered'):,}",
            f"{s.count('dispositions'):,}", calls_text(s), f"{s.duration_s:.1f}s",
        )  # fmt: skip
    return table
