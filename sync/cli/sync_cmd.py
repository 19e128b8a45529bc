"""``closedloop sync``, ``closedloop backfill`` and ``closedloop runs``: run pipelines by hand.

``sync`` runs every enabled pipeline (or the ``--pipeline`` ones) once, in config order, with a
progress bar per stage when stderr is a terminal, then prints what each run did. ``--loop``
keeps running them in the foreground on their configured schedules (a simple loop for a
terminal; ``closedloop serve`` is the real scheduler). Exit code 1 when a run failed, 3 when a
pipeline was skipped because another live process holds its lease (0 with ``--skip-held``), 4
when a run stopped at a daily API budget ("budget reached; resumes at ...": ``sync.budgets``).

Before any pipeline runs, every mapping file a selected pipeline uses is checked the way
``config check`` and ``mappings validate`` check it (``config_cmd.check_pipeline_mappings``):
each file on its own first (no API call at all), then against the own schema of the CRM org the
pipeline writes to or reads from (``sync.crm_schema``: cached in the ledger, read from the org
when absent or older than ``mappings.schema_max_age``); a problem prints every issue at its
file:line:col and exits 2 without running anything. The runs then compile their mappings from
the same cache.

On PostgreSQL each run first takes the pipeline's lease (``sync.leases``), so a manual sync
never runs beside a ``serve`` replica doing the same pipeline; on SQLite one process owns the
ledger and no lease is taken. A lease left by a process of this machine that is gone (a sync or
replica killed a moment ago) is taken at once, never waited out.

``backfill --since DATE`` pulls again from DATE regardless of the cursor (touches already in the
ledger are recognised by key, CRM writes are upserts: running it twice changes nothing).
``runs`` lists recent runs with their counts, API calls and errors, then each budgeted
connection's cap, calls used today and forecast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from connectors.errors import ConfigError
from sync.cli.output import (
    FormatOption,
    calls_text,
    check_format,
    output_console,
    print_listing,
    print_records,
    summary_table,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.config import Config
    from sync.connections import Connections
    from sync.pipelines.context import Progress
    from sync.pipelines.runner import RunSummary

__all__ = [
    "backfill_command",
    "run_selected",
    "runs_command",
    "sync_command",
]

LEASE_TTL_S = 60.0
EXIT_HELD = 3  # a pipeline was skipped: another live process holds its lease
EXIT_BUDGET = 4  # a run stopped at a daily API budget ("budget reached; resumes at ...")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The config file (default: $CLOSEDLOOP_CONFIG or ./closedloop.yaml).",
        show_default=False,
    ),
]
SkipHeldOption = Annotated[
    bool,
    typer.Option(
        "--skip-held",
        help="Exit 0 when a pipeline is skipped because another live process holds its lease "
        "(by default that exits 3).",
    ),
]
PipelineOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pipeline",
        "-p",
        help="Run only this pipeline (repeat for several) (default: every enabled one).",
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


def _load(config: Path | None) -> Config:
    from sync.config import config_path, load_config

    return load_config(config_path(config))


def _open(loaded: Config | None, database_url: str | None) -> Engine:
    from sync.ledger import open_ledger

    return open_ledger(database_url or (loaded.database_url() if loaded else None))


def _selected(loaded: Config, names: Sequence[str] | None) -> list[str]:
    if not names:
        chosen = [n for n, p in loaded.pipelines.items() if p.enabled]
        if not chosen:
            raise ConfigError("the config has no enabled pipeline to run")
        return chosen
    unknown = [n for n in names if n not in loaded.pipelines]
    if unknown:
        known = ", ".join(loaded.pipelines) or "(none)"
        raise ConfigError(f"no pipeline named {', '.join(unknown)}; configured pipelines: {known}")
    return list(dict.fromkeys(names))


def _owner() -> str:
    from sync import leases

    return leases.process_owner("cli")


def run_selected(
    loaded: Config,
    engine: Engine,
    names: Sequence[str],
    *,
    connections: Connections,
    progress: Callable[[str], Progress | None] | None = None,
    since: datetime | None = None,
    stop: threading.Event | None = None,
    skipped: list[str] | None = None,
    leases: bool = True,
) -> list[RunSummary]:
    """Run each of ``names`` once (under its lease on PostgreSQL); returns the summaries.

    The names whose lease another live process holds are skipped and added to ``skipped``."""
    from sync.pipelines.runner import run_pipeline

    out: list[RunSummary] = []
    for name in names:
        if stop is not None and stop.is_set():
            break
        with _lease(engine, name, take=leases) as fence:
            if fence is False:
                typer.echo(f"{name}: another process holds its lease right now; skipped", err=True)
                if skipped is not None:
                    skipped.append(name)
                continue
            out.append(
                run_pipeline(
                    loaded,
                    name,
                    engine,
                    fence=fence or None,
                    stop=stop,
                    progress=progress(name) if progress else None,
                    connections=connections,
                    since=since,
                )
            )
    return out


@contextmanager
def _lease(engine: Engine, name: str, *, take: bool = True) -> Iterator[Any]:
    """On PostgreSQL the pipeline's lease (False when taken by someone else); else (or when
    not ``take``: a dry run writes nothing) None."""
    if engine.dialect.name != "postgresql" or not take:
        yield None
        return
    from sync import leases

    fence = leases.acquire(engine, leases.lease_name(name), _owner(), LEASE_TTL_S)
    if fence is None:
        yield False
        return
    try:
        with leases.Heartbeat(engine, fence, LEASE_TTL_S):
            yield fence
    finally:
        leases.release(engine, fence)


class _Bars:
    """One rich progress bar per (pipeline, stage), shown only on a terminal."""

    def __init__(self, console: Console) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.enabled = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,.0f} records"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self.tasks: dict[tuple[str, str], Any] = {}

    def for_pipeline(self, pipeline: str) -> Progress | None:
        if not self.enabled:
            return self._lines(pipeline)

        def advance(stage: str, amount: int) -> None:
            key = (pipeline, stage)
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"{pipeline}: {stage}", total=None)
            self.progress.update(self.tasks[key], advance=amount)

        return advance

    def _lines(self, pipeline: str) -> Progress:
        """Off a terminal (a scheduled job's log): one plain line when each stage starts."""
        began = time.monotonic()
        typer.echo(f"{pipeline}: started", err=True)

        def advance(stage: str, _amount: int) -> None:
            key = (pipeline, stage)
            if key not in self.tasks:
                self.tasks[key] = None
                elapsed = time.monotonic() - began
                typer.echo(f"{pipeline}: {stage} (after {elapsed:.1f}s)", err=True)

        return advance


def _print_outcome(console: Console, summaries: Sequence[RunSummary], title: str) -> None:
    console.print(summary_table(summaries, title))
    for s in summaries:
        for note in s.notes:
            console.print(f"[dim]{s.pipeline}: {note}[/]")
        if s.error:
            colour = "red" if s.state == "failed" else "yellow"
            console.print(f"[{colour}]{s.pipeline}: {s.error}[/]")


def _run_checked(
    loaded: Config,
    engine: Engine,
    names: Sequence[str],
    *,
    dry_run: bool = False,
    since: datetime | None = None,
    stop: threading.Event | None = None,
    skipped: list[str] | None = None,
    leases: bool = True,
) -> tuple[list[RunSummary], dict[str, dict[str, int]]]:
    """Check the mappings of ``names``, then run them with a progress bar per stage. With
    ``dry_run`` inside one rolled-back ledger transaction against
    CRMs that only answer (``sync.dry_run``). Returns the summaries and, for a dry run, what
    each CRM would have been sent."""
    from sync.cli.config_cmd import require_valid_mappings
    from sync.connections import Connections
    from sync.dry_run import DryRunLedger

    bars = _Bars(Console(stderr=True))
    ledger = DryRunLedger(engine) if dry_run else None
    try:
        bind = ledger.as_engine() if ledger is not None else engine
        with Connections(loaded, dry_run=dry_run) as connections:
            require_valid_mappings(loaded, names, engine=bind, connect=connections.get)
            with bars.progress:
                summaries = run_selected(
                    loaded, bind, names, connections=connections, progress=bars.for_pipeline,
                    since=since, stop=stop, skipped=skipped, leases=leases,
                )  # fmt: skip
            would = {name: dict(crm.would) for name, crm in connections.dry_crms.items()}
    finally:
        if ledger is not None:
            ledger.close()
    return summaries, would


def _run_and_report(
    loaded: Config,
    engine: Engine,
    names: Sequence[str],
    *,
    since: datetime | None,
    title: str,
    stop: threading.Event | None = None,
    skip_held: bool = False,
) -> int:
    """Run ``names`` and print what they did; the exit code (0, 1 failed, ``EXIT_BUDGET``,
    ``EXIT_HELD``)."""
    from sync.scheduler import Upkeep

    console = output_console()
    skipped: list[str] = []
    summaries, _ = _run_checked(loaded, engine, names, since=since, stop=stop, skipped=skipped)
    _print_outcome(console, summaries, title)
    Upkeep(loaded, engine).after_runs()  # prune the sync log, send the alerts due
    if not all(s.ok for s in summaries):
        return 1
    if any((s.error or "").startswith("budget reached") for s in summaries):
        return EXIT_BUDGET
    if skipped and not skip_held:
        console.print(
            f"[yellow]skipped {', '.join(skipped)}: another process holds the lease; "
            "pass --skip-held when that is expected (exit 0)[/]"
        )
        return EXIT_HELD
    return 0


def _dry_run(loaded: Config, engine: Engine, names: Sequence[str]) -> int:
    """Run ``names`` with nothing written (``sync.dry_run``) and print what they would do."""
    from sync.dry_run import SIMULATED_KINDS

    console = output_console()
    simulated = [n for n in names if loaded.pipelines[n].kind in SIMULATED_KINDS]
    summaries, would = _run_checked(loaded, engine, simulated, dry_run=True, leases=False)
    _print_outcome(console, summaries, "closedloop sync --dry-run (nothing was written)")
    for name, counts in sorted(would.items()):
        said = ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in counts.items())
        console.print(f"{name} would get: {said or 'nothing'}")
    for name in simulated:
        spec = loaded.pipelines[name]
        created = would.get(spec.source or "", {}).get("people_created", 0)
        if spec.kind == "dispositions" and created:
            console.print(
                f"{name}: the real run also records the first status of the {created:,} "
                f"people it creates in {spec.source} (a dry run creates none to read back)"
            )
    for name in names:
        if name not in simulated:
            console.print(
                f"[yellow]{name}: not simulated (kind {loaded.pipelines[name].kind} writes CRM "
                "fields directly); run it without --dry-run to see what it does[/]"
            )
    console.print(
        "[dim]Refusals the CRM makes only on a write (validation rules, duplicate rules, "
        "record locks) cannot be foreseen by a dry run.[/]"
    )
    return 0 if all(s.ok for s in summaries) else 1


def sync_command(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
    config: ConfigOption = None,
    pipeline: PipelineOption = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once/--loop",
            help="Run each pipeline once and exit (default), or keep running them in the "
            "foreground on their schedules.",
        ),
    ] = True,
    database_url: DatabaseOption = None,
    skip_held: SkipHeldOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Pull and map the real backlog and print what a run would create, update, "
            "hold or refuse, writing nothing to the CRM or the ledger.",
        ),
    ] = False,
) -> None:
    """Run pipelines now: pull, match, map and push, then print what each run did."""
    loaded = _load(config)
    names = _selected(loaded, pipeline)
    engine = _open(loaded, database_url)
    try:
        if dry_run:
            code = _dry_run(loaded, engine, names)
            if code:
                raise typer.Exit(code)
            return
        if once:
            code = _run_and_report(
                loaded, engine, names, since=None, title="closedloop sync", skip_held=skip_held
            )
            if code:
                raise typer.Exit(code)
            return
        _loop(loaded, engine, names)
    finally:
        engine.dispose()


def _loop(loaded: Config, engine: Engine, names: Sequence[str]) -> None:
    """Run ``names`` on their schedules until interrupted (Ctrl-C finishes the batch)."""
    from datetime import timedelta

    due: dict[str, datetime] = dict.fromkeys(names, datetime.now(UTC))
    stop = threading.Event()
    try:
        while not stop.is_set():
            now = datetime.now(UTC)
            ready = [n for n in names if due[n] <= now]
            if ready:
                _run_and_report(
                    loaded, engine, ready, since=None, title="closedloop sync", skip_held=True
                )
            for name in ready:
                schedule = loaded.pipelines[name].schedule
                trigger = schedule.trigger() if schedule else None
                nxt = trigger.get_next_fire_time(None, datetime.now(UTC)) if trigger else None
                due[name] = nxt or datetime.now(UTC) + timedelta(minutes=15)
            wait = min(due.values()) - datetime.now(UTC)
            time.sleep(max(0.5, min(wait.total_seconds(), 60.0)))
    except KeyboardInterrupt:
        stop.set()
        typer.echo("stopped", err=True)


def _parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date: write 2024-05-01 or 2024-05-01T09:00:00+02:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise ConfigError(f"--since {text!r} is in the future")
    return moment.astimezone(UTC)


def backfill_command(
    since: Annotated[
        str, typer.Option("--since", help="Pull from this date (2024-05-01, ISO 8601; UTC).")
    ],
    config: ConfigOption = None,
    pipeline: PipelineOption = None,
    database_url: DatabaseOption = None,
    skip_held: SkipHeldOption = False,
) -> None:
    """Pull again from a date regardless of the cursors; safe to repeat (nothing doubles)."""
    moment = _parse_since(since)
    loaded = _load(config)
    names = _selected(loaded, pipeline)
    engine = _open(loaded, database_url)
    try:
        title = f"closedloop backfill since {moment.date().isoformat()}"
        code = _run_and_report(
            loaded, engine, names, since=moment, title=title, skip_held=skip_held
        )
        if code:
            raise typer.Exit(code)
    finally:
        engine.dispose()


def runs_command(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 20,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Only runs of this pipeline.")
    ] = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    fmt: FormatOption = "table",
) -> None:
    """List recent runs, newest first: state, counts, API calls and errors; then when each
    pipeline last looked for work (``closedloop serve`` keeps no row for a run that found none)."""
    from sqlalchemy import select

    from sync.ledger.models import SyncRunRow
    from sync.pipelines.runner import last_checked, summary_from_row

    check_format(fmt)
    loaded = None
    if database_url is None:
        from sync.config import config_path

        path = config_path(config)
        loaded = _load(config) if path.exists() else None
    engine = _open(loaded, database_url)
    table_ = SyncRunRow.__table__  # type: ignore[attr-defined]
    try:
        query = select(table_).order_by(table_.c.id.desc()).limit(limit)
        if pipeline:
            query = query.where(table_.c.pipeline == pipeline)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        budgets = _budget_lines(loaded, engine) if loaded is not None else []
        checked = last_checked(engine)
    finally:
        engine.dispose()
    if fmt != "table":
        _print_runs(fmt, [summary_from_row(row) for row in rows])
        return
    console = output_console()
    # Runs that found nothing keep no row: say when each pipeline last checked, where that is
    # after its newest run listed.
    newest: dict[str, datetime] = {}
    for row in rows:
        if row.finished_at is not None:
            newest[row.pipeline] = max(row.finished_at, newest.get(row.pipeline, row.finished_at))
    checked = {
        name: when
        for name, when in checked.items()
        if (not pipeline or name == pipeline) and (name not in newest or when > newest[name])
    }
    if not rows and not checked:
        console.print("no runs yet: run `closedloop sync`")
        return
    cells = []
    for row in rows:
        s = summary_from_row(row)
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(s.counts.items()) if v)
        cells.append([
            str(s.run_id), s.pipeline, s.state,
            s.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{s.duration_s:.1f}s" if s.finished_at else "running",
            counts or "-", calls_text(s), s.error or "",
        ])  # fmt: skip
    columns = ("id", "pipeline", "state", "started", "time", "counts", "API calls", "error")
    if cells:
        print_listing(console, "Recent runs", columns, cells, head=5)
    from rich.markup import escape

    for name, when in sorted(checked.items()):
        console.print(f"{escape(name)}: last checked {when:%Y-%m-%d %H:%M:%S} UTC, nothing new")
    if budgets:
        console.print("API budgets today:", highlight=False)
        for line in budgets:
            console.print(f"  {line}", highlight=False)


def _budget_lines(loaded: Config, engine: Engine) -> list[str]:
    """Each budgeted connection's cap, calls used today and forecast, from the ledger."""
    from sync.budgets import forecasts

    return [f"{fc.connection}: {fc.describe()}" for fc in forecasts(loaded, engine)]


RUN_COLUMNS = ("id", "pipeline", "kind", "state", "started_at", "finished_at", "duration_s",
               "counts", "api_calls", "minimum_calls", "error")  # fmt: skip


def _print_runs(fmt: str, summaries: Sequence[RunSummary]) -> None:
    """Runs as JSON (counts and API calls as objects) or CSV (as ``name=value; ...``)."""
    records: list[dict[str, Any]] = [
        {
            "id": s.run_id,
            "pipeline": s.pipeline,
            "kind": s.kind,
            "state": s.state,
            "started_at": s.started_at,
            "finished_at": s.finished_at,
            "duration_s": round(s.duration_s, 3) if s.finished_at else None,
            "counts": dict(sorted(s.counts.items())),
            "api_calls": dict(sorted(s.api_calls.items())),
            "minimum_calls": dict(sorted(s.minimum_calls.items())),
            "error": s.error,
        }
        for s in summaries
    ]
    if fmt == "csv":
        for record in records:
            for key in ("counts", "api_calls", "minimum_calls"):
                record[key] = "; ".join(f"{k}={v}" for k, v in record[key].items())
    print_records(fmt, records, RUN_COLUMNS)
