"""``closedloop demo`` (what ``make demo`` runs): the whole loop against the local sandbox.

Starts the sandbox in this process (seed 42, the demo company), writes a config pointing at it
into a working folder (``.closedloop/demo`` by default; the same template as ``closedloop
init``), imports a small badge-scan CSV from a trade show, runs every pipeline once (Marketo ->
Salesforce and Marketo -> HubSpot touches, the badge scans -> Salesforce, dispositions and
reconcile from both CRMs), writes the closed-loop HTML report, prints what happened and where
to look next, and exits 0.

Pipelines whose connector is not installed in this build are skipped with a visible note.

The demo is the same whatever day it runs. Its sandbox's world ends at the start of today (UTC)
and holds the same company relative to that moment every day (``sandbox.seed`` says why
midnight), and the demo plays out from there on one clock that starts at that midnight and runs
in real time: the badge scans are dated relative to it, every pipeline run is dated by it (so
each pull's ``until`` sits seconds after the world's end, wherever in the day the wall clock
is), and the report is measured at the world's ``now``. The first Marketo pull reaches back
further than the whole world (the starter config's ``initial_lookback_days``), so it reads every
activity. ``--now`` (or ``CLOSEDLOOP_DEMO_NOW``) says what day it is instead, which moves all of
the above together. Only what follows the calendar itself can differ: the report's per-month
rows, and the page-view digests of the mappings, which group by local day in zones with
daylight saving (how many roll-up records carry the same touches may differ by one or two).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sandbox.server import SandboxServer
    from sync.config import Config
    from sync.pipelines.runner import RunSummary

__all__ = [
    "NEXT_STEPS",
    "DemoResult",
    "demo_command",
    "parse_now",
    "run_demo",
    "write_sandbox_config",
]

DEMO_SEED = 42
DEFAULT_FOLDER = Path(".closedloop") / "demo"
BADGE_SOURCE = "badge_scans"
BADGE_CAMPAIGN = "Demo Expo"
# How long before the world's now the trade show of the badge-scan CSV was (its scans from 10:00).
BADGE_SCAN_AGE = timedelta(days=171)
NOW_ENV = "CLOSEDLOOP_DEMO_NOW"

NEXT_STEPS: list[str] = [
    "the ledger (SQLite): {ledger}",
    "recent runs:         closedloop runs --config {config}",
    "refused records:     closedloop dead-letters list --config {config}",
    "the config used:     closedloop config show --config {config}",
]


@dataclass
class DemoResult:
    """What the demo did: its folder, config, ledger URL, run summaries and skipped pipelines."""

    folder: Path
    config_path: Path
    ledger_url: str
    summaries: list[RunSummary] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    imported: int = 0
    import_rejects: int = 0
    sandbox_calls: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    config: Config | None = None
    engine: Engine | None = None
    # The sandbox world's present: the report is measured at it, not at the wall clock.
    as_of: datetime | None = None


# The pipelines the demo runs, in order: the pulls that fill the graph first, touches after.
_PIPELINES: dict[str, dict[str, Any]] = {
    "salesforce-reconcile": {"kind": "reconcile", "source": "salesforce"},
    "hubspot-reconcile": {"kind": "reconcile", "source": "hubspot"},
    "marketo-to-salesforce": {
        "kind": "touches", "source": "marketo", "sink": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
    "marketo-to-hubspot": {
        "kind": "touches", "source": "marketo", "sink": "hubspot",
        "mapping": "mappings/marketo-hubspot.yaml",
    },
    "badge-scans-to-salesforce": {
        "kind": "touches", "source": BADGE_SOURCE, "sink": "salesforce",
        "mapping": "mappings/files-salesforce.yaml",
    },
    "salesforce-dispositions": {
        "kind": "dispositions", "source": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
    "hubspot-dispositions": {
        "kind": "dispositions", "source": "hubspot", "mapping": "mappings/marketo-hubspot.yaml",
    },
}  # fmt: skip


def write_sandbox_config(
    folder: Path,
    sandbox: SandboxServer,
    *,
    pipelines: dict[str, dict[str, Any]] | None = None,
    connections: dict[str, dict[str, Any]] | None = None,
    ledger_url: str = "sqlite:///closedloop.db",
) -> Path:
    """Write ``folder/closedloop.yaml``: the ``closedloop init`` template pointed at ``sandbox``
    (secrets and shipped mappings next to it), the badge-scan files connection, and
    ``pipelines`` (default: the demo's) plus extra ``connections``."""
    from sync.cli.config_cmd import (
        _SANDBOX_SECRETS,
        SANDBOX_CONFIG,
        SANDBOX_HUBSPOT,
        SECRETS_DIR,
        _copy_mappings,
        _write_secret,
    )

    for name, value in _SANDBOX_SECRETS.items():
        _write_secret(folder / SECRETS_DIR / name, value)
    _copy_mappings(folder / "mappings")
    data = yaml.safe_load(SANDBOX_CONFIG)
    data["ledger"] = {"url": ledger_url}
    data["logging"] = {"level": "warning", "format": "console"}
    connections_ = data["connections"]
    connections_["hubspot"] = dict(SANDBOX_HUBSPOT)
    data["budgets"]["hubspot"] = {"daily_share": 0.5}
    connections_["salesforce"]["instance_url"] = sandbox.salesforce_url
    # A copy next to the config: the sandbox's own file goes when it stops, and the commands
    # the demo suggests afterwards (runs, dead-letters, report) read this config.
    ca_copy = folder / ".closedloop" / "sandbox-ca.pem"
    ca_copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sandbox.ca_file, ca_copy)
    connections_["salesforce"]["ca_bundle"] = ".closedloop/sandbox-ca.pem"
    connections_["hubspot"]["host"] = sandbox.hubspot_url
    connections_["marketo"]["base_url"] = sandbox.marketo_url
    # The sandbox finishes bulk exports at once: poll often instead of every 30 s.
    connections_["marketo"]["bulk_poll_interval_s"] = 0.2
    connections_[BADGE_SOURCE] = {
        "type": "files",
        "format": "csv",
        "columns": {"email": "Email", "occurred_at": "Scanned", "source_id": "Badge"},
        "kind": "event_attended",
        "campaign": BADGE_CAMPAIGN,
    }
    connections_.update(connections or {})
    if connections_["hubspot"].get("auth", {}).get("method") == "oauth":
        del data["budgets"]["hubspot"]  # HubSpot gives OAuth apps no daily limit to share
    # Both sandbox CRMs hold the same company: the report reads Salesforce's copy only (the
    # template's analytics.crms), so no person, deal or dollar counts twice. Campaign and rep
    # names are derived from the systems (Marketo programs, CRM users): no hand-made maps.
    chosen = _PIPELINES if pipelines is None else pipelines
    data["pipelines"] = {name: dict(spec) for name, spec in chosen.items()}
    path = folder / "closedloop.yaml"
    header = "# Written by `closedloop demo` for its in-process sandbox; rewritten every run.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _badge_csv(folder: Path, sandbox: SandboxServer) -> Path:
    """A small trade-show badge-scan export: known people, new people and one unreadable row."""
    world = sandbox.world
    people = [p for p in (world.people if world else []) if getattr(p, "email", None)]
    opened = (world.now if world else datetime.now(UTC)) - BADGE_SCAN_AGE + timedelta(hours=10)

    def at(minutes: int) -> str:
        return (opened + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = ["Badge,Email,Scanned"]
    for n, person in enumerate(people[:: max(1, len(people) // 12)][:12]):
        rows.append(f"B{1000 + n},{person.email},{at(n)}")
    for n in range(4):
        rows.append(f"B{2000 + n},visitor{n}@expo-guests.example,{at(60 + n)}")
    rows.append(f"B3000,not-an-email,{at(120)}")
    path = folder / "badge-scans.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _available(loaded: Config, connections: Any) -> dict[str, str]:
    """Pipelines that cannot run in this build (connector missing), with the reason."""
    broken: dict[str, str] = {}
    for name in sorted(loaded.connections):
        try:
            connections.get(name)
        except ImportError as exc:
            broken[name] = f"the {loaded.connections[name].type} connector is not installed ({exc})"
    skipped = {}
    for name, spec in loaded.pipelines.items():
        for end in (spec.source, spec.sink):
            if end in broken:
                skipped[name] = broken[end]
    return skipped


def _prepare_crms(loaded: Config, connections: Any, say: Callable[..., None]) -> None:
    """What a user does once per CRM (``closedloop check hubspot --fix``): create the custom
    properties that hold touch keys."""
    for name in sorted(loaded.connections):
        try:
            fixer = getattr(connections.get(name), "check_and_fix", None)
        except ImportError:
            continue
        if callable(fixer):
            failed = [r for r in fixer() if not r.ok]
            for check in failed:
                say(f"[yellow]{name}: {check.name}: {check.detail} {check.remedy}[/]")


def _running_clock(start: datetime) -> Callable[[], datetime]:
    """A clock that reads ``start`` now and runs on in real time."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


def parse_now(text: str) -> datetime:
    """``--now``: a date (2027-06-01) or an ISO time; a time without a zone is UTC."""
    from connectors.errors import ConfigError

    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"--now: {text!r} is neither a date (2027-06-01) nor an ISO time (2027-06-01T09:30:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run_demo(
    folder: Path, *, console: Console | None = None, now: datetime | None = None
) -> DemoResult:
    """Run the demo in ``folder`` (its ledger is recreated) and return what it did; ``now``
    says what day it is (default: today), see the module docstring."""
    from sandbox.seed import world_now
    from sandbox.server import SandboxServer
    from sync.cli.import_cmd import import_file
    from sync.config import load_config
    from sync.connections import Connections
    from sync.ledger import open_ledger
    from sync.pipelines.runner import run_pipeline

    began = time.monotonic()
    clock = _running_clock(world_now(now))  # from where the world ends; see the module doc
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("closedloop.db*"):
        stale.unlink()
    say = console.print if console is not None else (lambda *_a, **_k: None)
    say(f"starting the sandbox (seed {DEMO_SEED}: a demo company with a few months of activity)")
    with SandboxServer(seed=DEMO_SEED, now=clock()) as sandbox:
        config_path = write_sandbox_config(folder, sandbox)
        csv_path = _badge_csv(folder, sandbox)
        loaded = load_config(config_path)
        url = loaded.database_url() or f"sqlite:///{folder / 'closedloop.db'}"
        engine = open_ledger(url)
        result = DemoResult(folder, config_path, url, config=loaded, engine=engine)
        badge = loaded.connections[BADGE_SOURCE].settings
        report = import_file(
            engine,
            csv_path,
            BADGE_SOURCE,
            badge,  # type: ignore[arg-type]
            now=clock(),
        )
        result.imported, result.import_rejects = report.imported, report.rejected
        say(f"imported {csv_path.name}: {report.imported} badge scans, {report.rejected} refused")
        with Connections(loaded) as connections:
            result.skipped = _available(loaded, connections)
            _prepare_crms(loaded, connections, say)
            for name in loaded.pipelines:
                if name in result.skipped:
                    say(f"[yellow]skipping {name}: {result.skipped[name]}[/]")
                    continue
                say(f"running {name} ...")
                result.summaries.append(
                    run_pipeline(loaded, name, engine, connections=connections, clock=clock)
                )
        result.as_of = sandbox.world.now if sandbox.world is not None else None
        result.sandbox_calls = {
            api: sandbox.state.total_calls(api) for api in ("salesforce", "hubspot", "marketo")
        }
    result.seconds = time.monotonic() - began
    return result


def _path_hint() -> list[str]:
    """How to get ``closedloop`` on PATH, when this one is not what PATH finds (make demo runs
    it from ``.venv`` without activating it)."""
    here = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else None
    found = shutil.which("closedloop")
    if here is None or (found is not None and Path(found).resolve().parent == here):
        return []
    activate = here / "activate"
    try:
        shown = activate.relative_to(Path.cwd())
    except ValueError:
        shown = activate
    return [
        f"closedloop on PATH:  source {shown}  (or run {shown.parent / 'closedloop'}, "
        "or `pipx install .` in the checkout)",
    ]


def _totals_table(result: DemoResult) -> Table:
    def total(name: str) -> int:
        return sum(s.count(name) for s in result.summaries)

    calls: dict[str, int] = {}
    minimum: dict[str, int] = {}
    for s in result.summaries:
        for conn, n in s.api_calls.items():
            calls[conn] = calls.get(conn, 0) + n
        for conn, n in s.minimum_calls.items():
            minimum[conn] = minimum.get(conn, 0) + n
    table = Table(title="What the loop did", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        # Both touches pipelines read the same Marketo activities; the ledger keeps them once.
        ("touches pulled from Marketo", total("new")),
        ("badge scans imported from CSV", result.imported),
        ("emails matched to CRM people", total("matched")),
        ("people created in the CRMs", total("created_people")),
        ("touches pushed to CRM timelines", total("pushed")),
        ("touches left out by mapping filters", total("filtered")),
        (
            "records dead-lettered (incl. bad CSV rows)",
            total("dead_lettered") + result.import_rejects,
        ),
        ("dispositions recorded", total("dispositions")),
        ("accounts / opportunities reconciled", total("accounts") + total("opportunities")),
    ]
    for label, value in rows:
        table.add_row(label, f"{value:,}")
    for conn in sorted(calls):
        low = minimum.get(conn)
        floor = f" (push minimum {low:,})" if low is not None else ""
        table.add_row(f"API calls to {conn}", f"{calls[conn]:,}{floor}")
    return table


def demo_command(
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Working folder for the config and ledger (recreated)."),
    ] = DEFAULT_FOLDER,
    keep: Annotated[
        bool, typer.Option("--keep/--clean", help="Keep the working folder afterwards.")
    ] = True,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            envvar=NOW_ENV,
            help="Pretend today is this day (2027-06-01, or an ISO time in it): the sandbox's "
            "world, the pipeline runs and the report move with it (default: today).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the whole loop once against the built-in sandbox and show what happened."""
    from sync.cli.output import output_console, summary_table

    moment = parse_now(now) if now is not None else None
    console = output_console()
    result = run_demo(folder, console=console, now=moment)
    console.print(summary_table(result.summaries, "Pipeline runs"))
    for s in result.summaries:
        for note in s.notes:
            console.print(f"[dim]{s.pipeline}: {note}[/]")
        if s.error:
            console.print(f"[yellow]{s.pipeline}: {s.error}[/]")
    console.print(_totals_table(result))
    for name, why in result.skipped.items():
        console.print(f"[yellow]not run: {name}: {why}[/]")
    extra: list[str] = []
    if result.engine is not None and result.config is not None:
        from sync.report import write_report

        report = write_report(
            result.engine,
            result.config,
            result.folder / "report.html",
            period="all",
            now=result.as_of,
        )
        extra.append(f"the closed-loop report: {report}")
        result.engine.dispose()
    console.print(f"done in {result.seconds:.1f}s. Where to look next:")
    for line in _path_hint():
        console.print(f"  {line}")
    fields = {"config": result.config_path, "ledger": result.ledger_url, "folder": result.folder}
    for line in [*(step.format(**fields) for step in NEXT_STEPS), *extra]:
        console.print(f"  {line}")
    if not keep:
        shutil.rmtree(result.folder, ignore_errors=True)
