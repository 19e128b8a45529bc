"""Attribution as the user runs it: ``closedloop attribution run --all`` on a benchmark ledger.

The ledger is the sandbox's demo company (seed 11, 8,000 people) written as many times as it
takes to come near the size
(``sync.analytics.sample.fill_from_world``: bulk inserts into SQLite in a temp folder, removed
at the end): distinct people, accounts, deals and contact roles in every
copy. A fresh child process then runs the real command in-process (``sync.cli.main``: load,
identity history, fingerprint, the eight models that need no custom weights, store) and
reports its own time and peak RSS (``VmHWM`` of the process doing the work); a second child
runs it again over the unchanged ledger (the no-op re-run).

Targets (issue 18): first run <= 15 s and <= 600 MB, no-op re-run <= 2 s, at 1,000,000 touches.
``make bench`` uses 100,000 touches; ``CLOSEDLOOP_BENCH_FULL=1`` the full million.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.memory import peak_rss_mb

TARGET_S = 15.0
TARGET_NOOP_S = 2.0
TARGET_RSS_MB = 600.0
FULL_TOUCHES = 1_000_000
TOUCHES = 100_000
SEED = 11
PEOPLE = 8_000
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def build_ledger(url: str, touches: int) -> dict[str, int]:
    """Fill an empty ledger with copies of the demo company until it holds ``touches``."""
    from sandbox.seed import generate
    from sync.analytics.sample import fill_from_world
    from sync.ledger import open_ledger

    # 8,000 people make about 98,500 touches a copy: one copy is the default size, eleven the
    # 1,083,379-touch ledger of issue 18.
    world = generate(SEED, size=PEOPLE, now=NOW)
    ratio = touches / max(1, len(world.activities))
    copies = max(1, math.ceil(ratio) if touches >= FULL_TOUCHES else round(ratio))
    engine = open_ledger(url)
    try:
        return fill_from_world(engine, world, copies=copies)
    finally:
        engine.dispose()


def _child(argv: list[str]) -> None:
    """``--build URL N`` fills the ledger; ``--run URL`` runs the command; one JSON line out."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    if argv[0] == "--build":
        counts: dict[str, object] = dict(build_ledger(argv[1], int(argv[2])))
    else:
        from sync.cli import main

        code = 0
        try:
            main(["attribution", "run", "--all", "--database-url", argv[1]])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        counts = {"exit": code}
    print(json.dumps({  # noqa: T201 - the parent reads this line
        "s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started,
        "peak_mb": peak_rss_mb(), **counts,
    }))  # fmt: skip


def _spawn(folder: Path, *args: str) -> tuple[dict[str, object], list[str]]:
    """Run a child in ``folder`` (no closedloop.yaml there); its JSON stats and other lines."""
    env = {k: v for k, v in os.environ.items() if k != "CLOSEDLOOP_CONFIG"}
    completed = subprocess.run(  # noqa: S603 - this very module, with our own arguments
        [sys.executable, "-m", "benchmarks.bench_attribution", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
        env=env | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    lines = completed.stdout.strip().splitlines()
    return json.loads(lines[-1]), lines[:-1]


def run() -> list[str]:
    """Build the ledger, then time the first run and the no-op re-run against the targets."""
    touches = FULL_TOUCHES if os.environ.get("CLOSEDLOOP_BENCH_FULL") else TOUCHES
    folder = Path(tempfile.mkdtemp(prefix="closedloop-bench-attribution-"))
    try:
        url = f"sqlite:///{folder / 'ledger.db'}"
        built, _ = _spawn(folder, "--build", url, str(touches))
        lines = [
            f"SQLite ledger: {built['touch']:,} touches, {built['person']:,} people, "
            f"{built['opportunity']:,} opportunities, {built['contact_role']:,} contact roles "
            f"(built in {built['s']:.1f} s; size {touches:,}"
            + ("" if touches == FULL_TOUCHES else ", CLOSEDLOOP_BENCH_FULL=1 for 1,000,000")
            + ")"
        ]
        for label, target in (("first run", TARGET_S), ("no-op re-run", TARGET_NOOP_S)):
            stats, output = _spawn(folder, "--run", url)
            if stats["exit"]:
                raise RuntimeError(f"attribution run failed: {' '.join(output)}")
            seconds = float(str(stats["s"]))
            peak = float(str(stats["peak_mb"]))
            ok_time = "ok" if seconds <= target else "OVER TARGET"
            ok_rss = "ok" if peak <= TARGET_RSS_MB else "OVER TARGET"
            lines.append(
                f"attribution run --all, {label}: {seconds:.1f} s (CPU {stats['cpu_s']:.1f} s), "
                f"target {target:.0f} s: {ok_time}; peak RSS {peak:.0f} MB, "
                f"target {TARGET_RSS_MB:.0f} MB: {ok_rss}"
            )
            lines.extend(f"  {line.strip()}" for line in output if line.strip())
        return lines
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] in (["--build"], ["--run"]):
    _child(sys.argv[1:])
