"""The fault battery: syncs to both CRMs of the sandbox through SIGKILLs and injected faults.

Every case counts what the CRM holds afterwards (never the ledger's word for it): every touch
key on exactly one record, every new person created exactly once; and the calls the CRM got
against a fault-free run of the same data. The figures are printed at the end of the run
(``tests/faults/conftest.py``).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.core import FAULT_KINDS, OWNED_FAULT_KINDS, parse_faults
from sandbox.server import SandboxServer
from tests.faults.conftest import Figure, assert_figure
from tests.faults.harness import (
    CRMS,
    Killer,
    Rig,
    badge_data,
    figure,
    hubspot_fingerprint,
    injected_text,
    make_rig,
    prepare_portal,
    ready_portal,
    run_until_settled,
    salesforce_fingerprint,
)

pytestmark = pytest.mark.slow

KILLS = 20
# Kill cases sync more data in smaller batches, so 20 kills land inside the work.
KILL_TOUCHES = 960
KILL_BATCH = 10
# Sandbox latency in kill cases, per CRM: slow enough that kills land inside the work.
KILL_LATENCY_MS = {"salesforce": 20, "hubspot": 5}
KILL_ROUNDS = 24
FAULT_RATE = 0.2
TOUCHES = 240
BATCH = 40
_BASELINES: dict[str, int] = {}


@pytest.fixture
def portal(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    with prepare_portal(sandbox):
        yield sandbox


def baseline(sandbox: SandboxServer, folder: Path, crm: str, touches: int, batch: int) -> int:
    """CRM calls of a fault-free sync of the case's data (measured once per session), then
    the sandbox as the case found it (reset, properties added, counters zeroed)."""
    name = f"{crm}:{touches}:{batch}"
    if name not in _BASELINES:
        rig = make_rig(sandbox, folder / "baseline", crm, renewable_auth=True, batch_size=batch)
        try:
            rows, rig.new_emails = badge_data(sandbox, "fault-battery", touches)
            rig.import_badges(rows, "scans.csv")
            sandbox.state.reset_counters()
            assert run_until_settled(rig, max_runs=1) == 1
            assert rig.lost_and_doubled() == (0, 0)
            _BASELINES[name] = rig.calls()
        finally:
            rig.engine.dispose()
        sandbox.reset()
        ready_portal(sandbox)
    sandbox.state.reset_counters()
    return _BASELINES[name]


def _finish(rig: Rig, log: Path) -> None:
    done = subprocess.run(rig.command(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:] + log.read_text()[-3000:]


@pytest.mark.parametrize("crm", CRMS)
def test_sigkill_at_20_points_of_a_sync_loses_and_doubles_nothing(
    crm: str, portal: SandboxServer, tmp_path: Path, figures: list[Figure]
) -> None:
    started = time.monotonic()
    base = baseline(portal, tmp_path, crm, KILL_TOUCHES, KILL_BATCH)
    rig = make_rig(portal, tmp_path / "ws", crm, renewable_auth=True, batch_size=KILL_BATCH)
    rows, rig.new_emails = badge_data(portal, "fault-battery", KILL_TOUCHES)
    size = len(rows) // KILL_ROUNDS
    rounds = [rows[n * size : (n + 1) * size] for n in range(KILL_ROUNDS)]
    rig.import_badges(rounds.pop(0), "scans0.csv")
    portal.state.latency_ms = KILL_LATENCY_MS[crm]  # so the kills land inside the work
    fingerprint = (salesforce_fingerprint if crm == "salesforce" else hubspot_fingerprint)(portal)
    killer = Killer(rig, fingerprint)
    rng = random.Random(f"kills:{crm}")
    kills: Counter[str] = Counter()
    log = tmp_path / "sync-stderr.log"
    # A random kill falls within the work: at most 0.3 s after the first write, and within 80%
    # of the time a sync that got away took from its first write to its end.
    window = 0.3
    for _ in range(KILLS * 4):
        if kills.total() >= KILLS:
            break
        mode = "after a write" if kills.total() % 2 == 0 else "at random"
        proc = killer.start(log, rng.randint(1, 3) if mode == "after a write" else None)
        wrote = None
        if mode == "at random":
            if killer.first_write.wait(60):
                wrote = time.monotonic()
                time.sleep(rng.uniform(0.0, window))
            if proc.poll() is None:
                proc.kill()  # SIGKILL
        code = proc.wait(timeout=120)
        killer.stop_hook()
        if code == -signal.SIGKILL:
            kills[mode] += 1
            continue
        assert code == 0, log.read_text()[-3000:]
        if wrote is not None:
            window = min(window, 0.8 * (time.monotonic() - wrote))
        if not rounds:
            break
        # The sync finished: the next round of scans comes in.
        rig.import_badges(rounds.pop(0), f"scans{KILL_ROUNDS - len(rounds)}.csv")
    portal.state.on_applied = None
    portal.state.latency_ms = 0
    used = KILL_ROUNDS - len(rounds)
    for n, rest in enumerate(rounds):
        rig.import_badges(rest, f"rest{n}.csv")
    _finish(rig, log)
    shown = ", ".join(f"{n} {mode}" for mode, n in sorted(kills.items()))
    figures.append(figure(rig, f"{crm}: SIGKILL", f"{kills.total()} kills ({shown}; "
                          f"{used}/{KILL_ROUNDS} rounds of scans)", base, started))  # fmt: skip

    assert kills.total() >= KILLS, f"the sync finished after only {kills.total()} kills"
    assert rig.settled()
    assert_figure(figures[-1])
    rig.engine.dispose()


def _fault_cases() -> list[Any]:
    return [
        pytest.param(crm, kind, id=f"{crm}-{kind}")
        for crm in CRMS
        for kind in FAULT_KINDS
        if OWNED_FAULT_KINDS.get(kind, crm) == crm
    ]


@pytest.mark.parametrize(("crm", "kind"), _fault_cases())
def test_sandbox_faults_at_20_percent_lose_and_double_nothing(
    crm: str, kind: str, portal: SandboxServer, tmp_path: Path, figures: list[Figure]
) -> None:
    started = time.monotonic()
    base = baseline(portal, tmp_path, crm, TOUCHES, BATCH)
    rig = make_rig(portal, tmp_path / "ws", crm, renewable_auth=True, batch_size=BATCH)
    rows, rig.new_emails = badge_data(portal, "fault-battery", TOUCHES)
    rig.import_badges(rows, "scans.csv")
    portal.state.faults.configure(parse_faults(f"{crm}:{kind}={FAULT_RATE}"), seed=14)
    try:
        runs = run_until_settled(rig)
    finally:
        injected = injected_text(rig)
        portal.state.faults.configure([])
    label = "expired token" if kind == "expired_token" else kind
    figures.append(figure(rig, f"{crm}: {label} at 20%", f"{injected} ({runs} runs)", base,
                          started))  # fmt: skip

    assert_figure(figures[-1])
    rig.engine.dispose()
