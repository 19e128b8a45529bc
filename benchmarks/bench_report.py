"""The closed-loop report over a 1,000,000-touch ledger: at most 30 s (issue 10).

The ledger is the sandbox's demo company (seed 11, 8,000 people) written as many times as it
takes to pass a million touches (``sync.analytics.sample.fill_from_world``, bulk inserts into
SQLite in the system's temp folder). It is built once and reused by later runs; the time
measured is ``write_report`` alone: reading the ledger, attributing the deals won under
every model, computing every metric and writing the HTML file.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET_S = 30.0
TOUCHES = 1_000_000
SEED = 11
PEOPLE = 8_000
LAYOUT = "v1"  # bump when the ledger written here changes shape
# The world's now is pinned so that a cached ledger and the report's as-of time always agree.
NOW = datetime(2026, 11, 1, tzinfo=UTC)

CONFIG = """\
version: 1
analytics:
  sla: {default: 1d}
  teams:
    east: [owner-01, owner-02, owner-03, owner-04]
    west: [owner-05, owner-06, owner-07, owner-08]
  experiments:
    marketing-leads:
      groups:
        with_leads: [owner-01, owner-02, owner-03, owner-04]
        prospecting: [owner-05, owner-06, owner-07, owner-08]
"""


def _ledger(folder: Path) -> tuple[Path, dict[str, int], float | None]:
    """The cached ledger (built now if missing): path, row counts, build seconds or None."""
    from sandbox.seed import generate
    from sync.analytics.sample import fill_from_world
    from sync.ledger import open_ledger

    db = folder / f"ledger-{LAYOUT}-{SEED}-{PEOPLE}-{TOUCHES}.db"
    marker = db.with_suffix(".json")
    if db.exists() and marker.exists():
        return db, json.loads(marker.read_text(encoding="utf-8")), None
    for stale in (db, marker, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    world = generate(SEED, size=PEOPLE, now=NOW)
    copies = math.ceil(TOUCHES / max(1, len(world.activities)))
    engine = open_ledger(f"sqlite:///{db}")
    try:
        counts = fill_from_world(engine, world, copies=copies)
    finally:
        engine.dispose()
    marker.write_text(json.dumps(counts), encoding="utf-8")
    return db, counts, time.perf_counter() - started


def run() -> list[str]:
    """Build (or reuse) the ledger, then time one HTML report over it against the target."""
    from sync.config import load_config
    from sync.ledger import open_ledger
    from sync.report import write_report

    folder = Path(tempfile.gettempdir()) / "closedloop-bench-report"
    folder.mkdir(parents=True, exist_ok=True)
    db, counts, built = _ledger(folder)
    config_file = folder / "closedloop.yaml"
    config_file.write_text(CONFIG, encoding="utf-8")
    config = load_config(config_file)
    lines = [
        f"ledger: {counts.get('touch', 0):,} touches, {counts.get('person', 0):,} people, "
        f"{counts.get('disposition', 0):,} dispositions, {counts.get('opportunity', 0):,} deals "
        + (f"(built in {built:.1f} s)" if built is not None else "(cached)")
    ]
    engine = open_ledger(f"sqlite:///{db}")
    try:
        started = time.perf_counter()
        out = write_report(engine, config, folder / "report.html", now=NOW)
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    verdict = "OK" if elapsed <= TARGET_S else "OVER TARGET"
    size_kb = out.stat().st_size / 1024
    lines.append(
        f"report (HTML, all time, 9 attribution models): {elapsed:.1f} s, {size_kb:,.0f} KiB "
        f"(target {TARGET_S:.0f} s) {verdict}"
    )
    return lines
