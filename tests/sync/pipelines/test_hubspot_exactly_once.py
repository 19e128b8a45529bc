"""Badge scans into HubSpot notes exactly once, though HubSpot deduplicates nothing on activities.

The sandbox portal, like HubSpot, has no unique values on notes and creates whatever it is sent.
What keeps 5,000 touches at 5,000 notes is the ledger and the key audit: the same touches synced
through three lost ledgers, through a ledger restored from a backup, and through runs killed
(SIGKILL) between the intent and the confirmation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select

from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.cli.import_cmd import import_file
from sync.config import Config, load_config
from sync.ledger import DeliveryRow, open_ledger
from sync.pipelines import run_pipeline
from tests.conftest import _scratch_database
from tests.connectors.hubspot.conftest import KEY, add_closedloop_properties
from tests.sync.pipelines.conftest import BADGES, badge_rows, known_emails

PIPELINE = "badges-to-hubspot"
TOUCHES = 5_000
PIPELINES = {
    PIPELINE: {
        "kind": "touches", "source": BADGES, "sink": "hubspot",
        "mapping": "mappings/files-hubspot.yaml", "batch_size": 500,
    }
}  # fmt: skip


@pytest.fixture
def portal(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox with closedloop's properties in the portal and its rate limits lifted."""
    store: HubSpotStore = sandbox.store("hubspot")
    add_closedloop_properties(store)
    saved = (store.rate_limit_max, store.search_per_second)
    store.rate_limit_max = store.search_per_second = 100_000
    yield sandbox
    store.rate_limit_max, store.search_per_second = saved


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Three empty ledgers of one backend (three databases nobody remembers between)."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path / f'ledger{n}.db'}" for n in range(3)]
        return
    server = request.getfixturevalue("_postgres_server")
    with (
        _scratch_database(server) as a,
        _scratch_database(server) as b,
        _scratch_database(server) as c,
    ):
        yield [a, b, c]


def _emails(sandbox: SandboxServer) -> list[str]:
    """5,000 scans' e-mails: 500 people, 400 the portal knows and 100 walk-ins it does not."""
    people = [*known_emails(sandbox, 400), *(f"walk-in{n}@expo.example" for n in range(100))]
    return [people[n % len(people)] for n in range(TOUCHES)]


def _workspace(folder: Path, sandbox: SandboxServer, ledger_url: str, **hubspot: Any) -> Config:
    """A config for ``sandbox`` with the badge pipeline (``hubspot``: connection settings)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = write_sandbox_config(folder, sandbox, pipelines=PIPELINES, ledger_url=ledger_url)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["connections"]["hubspot"].update(hubspot)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _import(config: Config, engine: Engine, folder: Path, rows: list[dict[str, str]]) -> int:
    path = folder / "scans.csv"
    header = "Badge,Email,Scanned\n"
    path.write_text(
        header + "".join(f"{r['Badge']},{r['Email']},{r['Scanned']}\n" for r in rows),
        encoding="utf-8",
    )
    settings = config.connections[BADGES].settings
    return import_file(engine, path, BADGES, settings).imported  # type: ignore[arg-type]


def _notes(store: HubSpotStore) -> Counter[str]:
    with store.lock:
        return Counter(
            r.properties[KEY] for r in store.data.objects["notes"].values() if KEY in r.properties
        )


def _creates(sandbox: SandboxServer) -> int:
    return sandbox.state.counts("hubspot").get("notes.batch_create", 0)


def test_the_same_5000_touches_synced_from_three_lost_ledgers_leave_5000_notes(
    portal: SandboxServer, ledgers: list[str], tmp_path: Path
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    rows = badge_rows(_emails(portal))
    runs, creates = [], []
    for n, url in enumerate(ledgers):
        folder = tmp_path / f"install{n}"
        config = _workspace(folder, portal, url)
        engine = open_ledger(url)
        try:
            assert _import(config, engine, folder, rows) == TOUCHES
            portal.state.reset_counters()
            runs.append(run_pipeline(config, PIPELINE, engine))
            creates.append(_creates(portal))
        finally:
            engine.dispose()

    assert [r.state for r in runs] == ["succeeded"] * 3
    notes = _notes(store)
    assert len(notes) == TOUCHES
    assert set(notes.values()) == {1}
    assert runs[0].count("pushed") == TOUCHES
    assert creates == [TOUCHES // 100, 0, 0]
    for later in runs[1:]:
        # The new ledger learned the portal's 5,000 keyed notes and wrote none of them again.
        assert later.count("keys_learned") == TOUCHES
        assert later.count("found_in_crm") == TOUCHES


PUSH_ENDPOINTS = (
    "notes.batch_create", "notes.batch_update", "notes.search", "properties.get",
    "properties.create",
)  # fmt: skip


def _known_rows(sandbox: SandboxServer, count: int) -> list[dict[str, str]]:
    """``count`` scans, each its own touch, of 400 people the portal knows."""
    people = known_emails(sandbox, 400)
    return badge_rows([people[n % len(people)] for n in range(count)])


def _run(
    sandbox: SandboxServer, folder: Path, url: str, rows: list[dict[str, str]]
) -> tuple[Any, dict[str, int]]:
    """Import ``rows`` and run the pipeline once; the run and HubSpot's calls by endpoint."""
    config = _workspace(folder, sandbox, url)
    engine = open_ledger(url)
    try:
        _import(config, engine, folder, rows)
        sandbox.state.reset_counters()
        run = run_pipeline(config, PIPELINE, engine)
    finally:
        engine.dispose()
    return run, sandbox.state.counts("hubspot")


def test_a_first_push_to_known_contacts_costs_one_call_per_100_notes_and_the_key_audit(
    portal: SandboxServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run, counts = _run(portal, tmp_path / "ws", url, _known_rows(portal, 1000))
    assert run.state == "succeeded"
    assert run.count("pushed") == 1000
    push = {e: counts[e] for e in PUSH_ENDPOINTS if counts.get(e)}
    # 10 creates of 100 and the key audit's one search; no read of the key property.
    assert push == {"notes.batch_create": 10, "notes.search": 1}
    assert set(_notes(portal.store("hubspot")).values()) == {1}


def test_a_key_property_removed_after_the_schema_was_read_is_created_again_by_the_push(
    portal: SandboxServer, tmp_path: Path
) -> None:
    # The mapping is checked against a schema cached for 24 h: a property removed since is
    # first met by the push, whose notes HubSpot refuses (PROPERTY_DOESNT_EXIST).
    store: HubSpotStore = portal.store("hubspot")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rows = _known_rows(portal, 1500)
    first, _ = _run(portal, tmp_path / "ws", url, rows[:1000])
    assert first.count("pushed") == 1000
    with store.lock:
        del store.data.properties["notes"][KEY]
    run, counts = _run(portal, tmp_path / "ws", url, rows)
    assert run.state == "succeeded"
    assert run.count("pushed") == 500
    with store.lock:
        assert KEY in store.data.properties["notes"]
    assert counts["properties.create"] == 1
    assert counts["notes.batch_create"] == 6  # the first one refused, nothing of it written
    assert _notes(store) == {f"{BADGES}:{row['Badge']}": 1 for row in rows}


def test_a_ledger_restored_from_a_backup_writes_nothing_twice(
    portal: SandboxServer, tmp_path: Path
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    ledger = tmp_path / "ledger.db"
    backup = tmp_path / "backup.db"
    url = f"sqlite:///{ledger}"
    config = _workspace(tmp_path / "ws", portal, url)
    rows = badge_rows(_emails(portal))
    engine = open_ledger(url)
    try:
        _import(config, engine, tmp_path, rows[:3000])
        assert run_pipeline(config, PIPELINE, engine).count("pushed") == 3000
    finally:
        engine.dispose()
    shutil.copyfile(ledger, backup)  # the nightly backup
    engine = open_ledger(url)
    try:
        _import(config, engine, tmp_path, rows)
        assert run_pipeline(config, PIPELINE, engine).count("pushed") == 2000
    finally:
        engine.dispose()

    shutil.copyfile(backup, ledger)  # the database is lost; the backup comes back
    for suffix in ("-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    engine = open_ledger(url)
    try:
        _import(config, engine, tmp_path, rows)  # the source is read again after the backup
        portal.state.reset_counters()
        run = run_pipeline(config, PIPELINE, engine)
    finally:
        engine.dispose()

    assert run.state == "succeeded"
    assert run.count("keys_learned") == 2000
    assert run.count("found_in_crm") == 2000
    assert _creates(portal) == 0
    notes = _notes(store)
    assert len(notes) == TOUCHES
    assert set(notes.values()) == {1}


def _intended(url: str) -> int:
    engine = open_ledger(url)
    table = DeliveryRow.__table__  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(table).where(table.c.state == "intended")
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.mark.slow
def test_runs_killed_between_intent_and_confirm_then_resumed_leave_5000_notes(
    portal: SandboxServer, tmp_path: Path
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    # HubSpot's search index trails its writes: a resumed run must wait for it before looking.
    store.data.search_index_lag_s = 0.5
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = _workspace(tmp_path / "ws", portal, url, search_settle_seconds=1.5)
    engine = open_ledger(url)
    try:
        assert _import(config, engine, tmp_path, badge_rows(_emails(portal))) == TOUCHES
    finally:
        engine.dispose()
    portal.state.latency_ms = 40  # slow enough that the kills land inside pushes
    env = {**os.environ, "CLOSEDLOOP_LOG_LEVEL": "error"}
    command = [sys.executable, "-m", "sync.cli", "sync", "--config",
               str(config.path), "--pipeline", PIPELINE]  # fmt: skip
    kills = 0
    for _ in range(30):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and _intended(url) == 0:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()  # SIGKILL between intent and confirm: no cleanup of any kind
            proc.wait()
            kills += 1
        if kills >= 3:
            break
    portal.state.latency_ms = 0
    assert kills >= 3, "no run could be killed while deliveries were intended"
    assert _intended(url) > 0, "the last kill left nothing to recover: the test proves nothing"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _intended(url) == 0
    notes = _notes(store)
    assert len(notes) == TOUCHES
    assert set(notes.values()) == {1}
