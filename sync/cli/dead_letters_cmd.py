"""``closedloop dead-letters list|show|replay|discard``: records a stage refused, and what next.

Every refused record is kept with its pipeline, stage (pull, resolve, map, push), the vendor's
code and message, and its payload. ``replay`` sends touches through map + push again (after
the mapping or the CRM was fixed) and marks them ``replayed`` when they land; ``discard`` closes
them without sending (they stay in the ledger for the record).

Stage ``pull`` letters are records a source, a file or a webhook sender gave that could not
become a touch (no id, an unreadable time, ...); their payload is the record as it arrived.
They cannot be replayed: ``show`` says what to do instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connectors.errors import ConfigError
from sync.cli.output import FormatOption, check_format, output_console, print_listing, print_records

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.config import Config

__all__ = ["app"]

app = typer.Typer(
    help="Inspect, replay or discard records a pipeline refused.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The config file (default: $CLOSEDLOOP_CONFIG or ./closedloop.yaml).",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Ledger URL (default: $CLOSEDLOOP_DATABASE_URL, the config's ledger.url).",
        show_default=False,
    ),
]


def _config(config: Path | None, *, required: bool) -> Config | None:
    from sync.config import config_path, load_config

    path = config_path(config)
    if not required and not path.exists():
        return None
    return load_config(path)


def _engine(loaded: Config | None, database_url: str | None) -> Engine:
    from sync.ledger import open_ledger

    return open_ledger(database_url or (loaded.database_url() if loaded else None))


DEAD_LETTER_COLUMNS = ("id", "pipeline", "stage", "record", "code", "reason", "status",
                       "created_at")  # fmt: skip


@app.command("list")
def list_command(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Only this pipeline's.")
    ] = None,
    status: Annotated[
        str, typer.Option("--status", "-s", help="open, replayed, discarded or all.")
    ] = "open",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    fmt: FormatOption = "table",
) -> None:
    """List dead letters, newest first, with their stage, code and reason."""
    from sqlalchemy import func, select

    from sync.ledger.models import DeadLetterRow, DeadLetterStatus

    check_format(fmt)
    allowed = [s.value for s in DeadLetterStatus]
    if status != "all" and status not in allowed:
        raise ConfigError(f"--status must be one of {', '.join(allowed)} or all; got {status!r}")
    table_ = DeadLetterRow.__table__  # type: ignore[attr-defined]
    query = select(table_).order_by(table_.c.id.desc()).limit(limit)
    total = select(func.count()).select_from(table_)
    if pipeline:
        query = query.where(table_.c.pipeline == pipeline)
        total = total.where(table_.c.pipeline == pipeline)
    if status != "all":
        query = query.where(table_.c.status == status)
        total = total.where(table_.c.status == status)
    engine = _engine(_config(config, required=False), database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
            count = int(conn.execute(total).scalar_one())
    finally:
        engine.dispose()
    if fmt != "table":
        records = [
            {
                "id": row.id, "pipeline": row.pipeline, "stage": row.stage,
                "record": row.record_key, "code": row.code, "reason": row.reason,
                "status": row.status, "created_at": row.created_at,
            }
            for row in rows
        ]  # fmt: skip
        print_records(fmt, records, DEAD_LETTER_COLUMNS)
        if count > len(rows):
            typer.echo(f"{count - len(rows):,} more: use --limit", err=True)
        return
    console = output_console()
    if not rows:
        console.print(f"no {'' if status == 'all' else status + ' '}dead letters")
        return
    cells = [
        [
            str(row.id), row.pipeline, row.stage, row.record_key or "-", row.code,
            row.reason[:160], row.status, row.created_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for row in rows
    ]  # fmt: skip
    columns = ("id", "pipeline", "stage", "record", "code", "reason", "status", "created")
    print_listing(console, f"Dead letters ({count:,} {status})", columns, cells, head=5)
    if count > len(rows):
        console.print(f"[dim]{count - len(rows):,} more: use --limit[/]")


@app.command("show")
def show_command(
    dead_letter_id: Annotated[int, typer.Argument(help="The dead letter's id.")],
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Print one dead letter in full, with its payload as JSON."""
    from sqlalchemy import select

    from sync.ledger.models import DeadLetterRow

    table_ = DeadLetterRow.__table__  # type: ignore[attr-defined]
    engine = _engine(_config(config, required=False), database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(table_).where(table_.c.id == dead_letter_id)).first()
    finally:
        engine.dispose()
    if row is None:
        raise ConfigError(
            f"no dead letter with id {dead_letter_id}: see `closedloop dead-letters list`"
        )
    document = {
        "id": row.id,
        "pipeline": row.pipeline,
        "stage": row.stage,
        "record_key": row.record_key,
        "code": row.code,
        "reason": row.reason,
        "status": row.status,
        "attempts": row.attempts,
        "run_id": row.run_id,
        "created_at": row.created_at.isoformat(),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "payload": row.payload,
        "next": _next_step(row.stage, row.id),
    }
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _next_step(stage: str, dead_letter_id: int) -> str:
    """What a person can do about a dead letter of ``stage``."""
    if stage == "pull":
        return (
            "refused as it was read, before it became a touch, so it cannot be replayed: have "
            "the record fixed at its source and read that period again (`closedloop backfill "
            "--since DATE`, or send the file or webhook again), then `closedloop dead-letters "
            f"discard {dead_letter_id}`"
        )
    return (
        "fix what the reason names (the mapping, the CRM's data or settings), then "
        f"`closedloop dead-letters replay {dead_letter_id}`"
    )


@app.command("replay")
def replay_command(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids to replay.")] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every open dead letter (of --pipeline).")
    ] = False,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="With --all: only this pipeline's.")
    ] = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Send refused touches through map + push again; exit 1 if any still fails."""
    from sync.connections import Connections
    from sync.pipelines.replay import replay_dead_letters

    if not ids and not replay_all:
        raise ConfigError("give dead letter ids, or --all (optionally with --pipeline)")
    if ids and replay_all:
        raise ConfigError("give either dead letter ids or --all, not both")
    loaded = _config(config, required=True)
    assert loaded is not None
    engine = _engine(loaded, database_url)
    try:
        with Connections(loaded) as connections:
            report = replay_dead_letters(
                loaded, engine, connections, ids=ids or None, pipeline=pipeline
            )
    finally:
        engine.dispose()
    console = output_console()
    console.print(
        f"replayed {len(report.replayed)}, still failing {len(report.failed)}, "
        f"skipped {len(report.skipped)}"
    )
    for dead_id, why in sorted(report.skipped.items()):
        console.print(f"  {dead_id}: skipped: {why}")
    if report.failed:
        listed = " ".join(str(i) for i in report.failed[:20])
        console.print(f"  still failing: {listed} (see `closedloop dead-letters show ID`)")
        raise typer.Exit(1)


@app.command("discard")
def discard_command(
    ids: Annotated[list[int], typer.Argument(help="Dead letter ids to discard.")],
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Close dead letters without sending them (they stay in the ledger as discarded)."""
    from sync.pipelines.replay import discard_dead_letters

    engine = _engine(_config(config, required=False), database_url)
    try:
        changed = discard_dead_letters(engine, ids)
    finally:
        engine.dispose()
    typer.echo(f"discarded {len(changed)} of {len(ids)}")
    missing = sorted(set(ids) - set(changed))
    if missing:
        typer.echo(f"not open (or unknown): {' '.join(map(str, missing))}", err=True)
