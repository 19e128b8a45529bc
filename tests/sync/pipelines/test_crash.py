"""THE crash test: ``kill -9`` at 20+ random points of a 20,000-touch sync, then restart until it
completes; every touch must be in Salesforce exactly once and the ledger must agree."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sync.ledger import DeliveryRow
from tests.sync.pipelines.conftest import BADGES, badge_pipeline, badge_rows, known_emails

PIPELINE = "badges-to-salesforce"
TOUCHES = 20_000
NEW_PEOPLE = 300
KILLS = 20


def _deliveries_written(engine: Any) -> int:
    table = DeliveryRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLOSEDLOOP_LOG_LEVEL": "error"}
    with log.open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "sync.cli.sync_cmd", "sync", "--config", str(config),
             "--pipeline", PIPELINE],
            stdout=subprocess.DEVNULL, stderr=errors, env=env,
        )  # fmt: skip


def _kill_during_work(proc: subprocess.Popen[bytes], engine: Any, rng: random.Random) -> bool:
    """Wait until the run writes deliveries, then SIGKILL it a random moment later.

    Returns False when the run finished before it could be killed."""
    before = _deliveries_written(engine)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if _deliveries_written(engine) != before or rng.random() < 0.02:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    if proc.poll() is not None:
        return False
    proc.kill()  # SIGKILL: no cleanup, no rollback handler, no finally
    proc.wait()
    return True


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_every_touch_in_salesforce_exactly_once(
    workspace_factory: Any, ledger_url: str
) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the crash test (it takes a minute)")
    ws = workspace_factory({PIPELINE: badge_pipeline(batch_size=250)})
    known = known_emails(ws.sandbox, 400)
    new = [f"walk-in{n}@expo-guests.example" for n in range(NEW_PEOPLE)]
    people = [*known, *new]
    emails = [people[n % len(people)] for n in range(TOUCHES)]
    assert ws.import_badges(badge_rows(emails)) == TOUCHES
    rng = random.Random(20260514)

    log = ws.folder / "sync-stderr.log"
    kills = 0
    for _ in range(KILLS * 3):
        proc = _start(ws.config_path, log)
        if kills >= KILLS:
            proc.wait(timeout=300)
            assert proc.returncode == 0, log.read_text()
            break
        if _kill_during_work(proc, ws.engine, rng):
            kills += 1
        else:
            assert proc.returncode == 0, log.read_text()
            break
    assert kills >= KILLS, f"the sync finished after only {kills} kills"

    keys = {f"{BADGES}:B{n}" for n in range(TOUCHES)}
    store = ws.sandbox.store("salesforce")
    with store.lock:
        tasks = [r for r in store.records["Task"].values() if not r.get("IsDeleted")]
        leads = [r for r in store.records["Lead"].values() if not r.get("IsDeleted")]
    per_key = Counter(t["Closedloop_Key__c"] for t in tasks if t.get("Closedloop_Key__c"))
    assert set(per_key) == keys
    assert set(per_key.values()) == {1}, "some touch was written twice"
    per_new_email = Counter(
        lead["Email"].lower()
        for lead in leads
        if lead.get("Email", "").endswith("expo-guests.example")
    )
    assert per_new_email == dict.fromkeys(new, 1), "a person was created twice"
    task_ids = {t["Closedloop_Key__c"]: t["Id"] for t in tasks}
    deliveries = ws.deliveries()
    assert set(deliveries) == keys
    assert {k: v for k, v in deliveries.items() if v != ("confirmed", task_ids[k])} == {}
