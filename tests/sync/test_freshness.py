"""Freshness: a webhook touch or a file import is delivered at once by ``closedloop serve``.

A real ``closedloop serve`` against the sandbox's Salesforce, its pipelines scheduled once a day:
what a signed webhook request or ``closedloop import`` stores wakes the pipelines of its source,
so it lands long before the next tick; a burst of requests makes few runs; replicas sharing the
ledger run each wake-up once; runs that find nothing keep no run row.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, select

from connectors.base import Touch
from connectors.webhook.payload import parse_item
from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import load_config
from sync.ingest import store_touches
from sync.ledger import SyncRunRow, make_engine, open_ledger
from sync.pipelines.runner import last_checked
from sync.scheduler import PipelineScheduler, TickOutcome
from sync.wakeups import notify
from tests.connectors.webhook.sender import SECRET, activity, encode, signed_headers
from tests.sync.pipelines.conftest import badge_rows, known_emails
from tests.sync.test_serve import BIN, Serve, metric, start_serve, wait_until

SOURCE = "events"
PIPELINE = "events-to-salesforce"
BADGES = "badge_scans"


def freshness_config(folder: Path, sandbox: SandboxServer, ledger_url: str) -> Path:
    """A webhook source and a badge-scan files source, each delivered to the sandbox's
    Salesforce by a touches pipeline scheduled once a day; JSON logs at info."""
    schedule = {"every": "24h"}
    mapping = "mappings/files-salesforce.yaml"
    pipelines = {
        PIPELINE: {"kind": "touches", "source": SOURCE, "sink": "salesforce", "mapping": mapping,
                   "schedule": schedule},
        "badges-to-salesforce": {"kind": "touches", "source": BADGES, "sink": "salesforce",
                                 "mapping": mapping, "schedule": schedule},
    }  # fmt: skip
    connections = {SOURCE: {"type": "webhook", "secret": SECRET}}
    path = write_sandbox_config(
        folder, sandbox, pipelines=pipelines, connections=connections, ledger_url=ledger_url
    )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["logging"] = {"level": "info", "format": "json"}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def touch(index: int, email: str) -> dict[str, Any]:
    """A form fill the files mapping delivers as a Salesforce Task."""
    return activity(index, id=f"fresh-{index}", email=email, kind="form_fill")


def post(serve: Serve, items: list[dict[str, Any]]) -> None:
    body = encode(items)
    answer = httpx.post(
        f"{serve.url}/hooks/{SOURCE}",
        content=body,
        headers=signed_headers(body, timestamp=time.time()),
    )
    assert answer.status_code == 200, answer.text


async def post_each(serve: Serve, items: list[dict[str, Any]]) -> None:
    """One request per item, all at once."""
    async with httpx.AsyncClient(base_url=serve.url) as client:
        bodies = [encode(item) for item in items]
        answers = await asyncio.gather(*(
            client.post(f"/hooks/{SOURCE}", content=body,
                        headers=signed_headers(body, timestamp=time.time()))
            for body in bodies
        ))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * len(items)


def tasks_by_key(sandbox: SandboxServer) -> Counter[str]:
    """How many live Salesforce Tasks carry each touch key."""
    store = sandbox.store("salesforce")
    with store.lock:
        rows = list(store.records["Task"].values())
    return Counter(
        r["Closedloop_Key__c"]
        for r in rows
        if r.get("Closedloop_Key__c") and not r.get("IsDeleted")
    )


def ticks(serve: Serve, outcome: str, pipeline: str = PIPELINE) -> float:
    text = httpx.get(f"{serve.url}/metrics").text
    return metric(text, "closedloop_ticks_total", pipeline=pipeline, outcome=outcome) or 0


def runs(engine: Engine, pipeline: str = PIPELINE) -> list[Any]:
    table = SyncRunRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(select(table).where(table.c.pipeline == pipeline)).all())


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait(10)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def test_a_webhook_touch_lands_at_once_not_at_the_next_tick_and_idle_runs_keep_no_row(
    sandbox: SandboxServer, tmp_path: Path, serves: list[Serve], ledger: tuple[str, Engine]
) -> None:
    url, engine = ledger
    config = freshness_config(tmp_path, sandbox, url)
    serve = start_serve(config, tmp_path)
    serves.append(serve)
    wait_until(serve.ready, timeout=60, what="/readyz")
    [email] = known_emails(sandbox, 1)

    post(serve, [touch(1, email)])
    wait_until(lambda: tasks_by_key(sandbox) == Counter({f"{SOURCE}:fresh-1": 1}),
               what="the touch as a Salesforce Task")  # fmt: skip
    wait_until(lambda: ticks(serve, "woken") == 1, what="the woken run counted")
    assert ticks(serve, "ran") == 0  # no scheduled tick ran it: the next one is hours away
    [run] = runs(engine)
    assert run.state == "succeeded"
    assert run.counts["pushed"] == 1

    # A wake-up with nothing new (the same touch again is a duplicate and wakes nothing): the
    # run finds nothing to do and keeps no run row; `runs` says when it last checked.
    post(serve, [touch(1, email)])
    notify(engine, [SOURCE])
    wait_until(lambda: ticks(serve, "woken") == 2, what="the idle woken run")
    assert len(runs(engine)) == 1
    listing = subprocess.run(
        [str(BIN), "runs", "--config", str(config)], capture_output=True, text=True, check=True
    ).stdout
    assert f"{PIPELINE}: last checked" in listing
    assert tasks_by_key(sandbox) == Counter({f"{SOURCE}:fresh-1": 1})
    assert serve.stop() == 0


def test_a_burst_of_50_webhooks_makes_few_runs_and_delivers_each_touch_once(
    sandbox: SandboxServer, tmp_path: Path, serves: list[Serve], ledger: tuple[str, Engine]
) -> None:
    url, engine = ledger
    config = freshness_config(tmp_path, sandbox, url)
    serve = start_serve(config, tmp_path)
    serves.append(serve)
    wait_until(serve.ready, timeout=60, what="/readyz")
    emails = known_emails(sandbox, 50)

    asyncio.run(post_each(serve, [touch(n, email) for n, email in enumerate(emails)]))
    wanted = Counter({f"{SOURCE}:fresh-{n}": 1 for n in range(50)})
    wait_until(lambda: tasks_by_key(sandbox) == wanted, what="50 Tasks")
    # The Tasks are in Salesforce before the run that sent them has confirmed and finished.
    wait_until(lambda: all(r.state != "running" for r in runs(engine)), what="the runs finished")
    # Wake-ups within the debounce make one run, and those during a run one follow-up each.
    assert 1 <= len(runs(engine)) <= 5
    assert sum(run.counts.get("pushed", 0) for run in runs(engine)) == 50
    assert serve.stop() == 0


def test_two_replicas_run_a_woken_pipeline_once(
    sandbox: SandboxServer, tmp_path: Path, serves: list[Serve], ledger_url: str
) -> None:
    engine = make_engine(ledger_url)
    config = freshness_config(tmp_path, sandbox, ledger_url)
    replicas = [start_serve(config, tmp_path) for _ in range(2)]
    serves.extend(replicas)
    for replica in replicas:
        wait_until(replica.ready, timeout=60, what=f"replica on :{replica.port}")
    [email] = known_emails(sandbox, 1)

    post(replicas[0], [touch(7, email)])  # the other replica hears of it through the ledger
    wait_until(lambda: tasks_by_key(sandbox) == Counter({f"{SOURCE}:fresh-7": 1}), what="Task")
    wait_until(lambda: sum(ticks(r, "skipped_done") for r in replicas) >= 1,
               what="a replica finding the wake-up done")  # fmt: skip
    assert sum(ticks(r, "woken") for r in replicas) == 1
    assert len(runs(engine)) == 1
    engine.dispose()
    for replica in replicas:
        assert replica.stop() == 0


def test_a_file_import_wakes_a_running_serve(
    sandbox: SandboxServer, tmp_path: Path, serves: list[Serve], ledger: tuple[str, Engine]
) -> None:
    url, engine = ledger
    config = freshness_config(tmp_path, sandbox, url)
    serve = start_serve(config, tmp_path)
    serves.append(serve)
    wait_until(serve.ready, timeout=60, what="/readyz")
    rows = badge_rows(known_emails(sandbox, 3))
    scans = tmp_path / "scans.csv"
    lines = ["Badge,Email,Scanned"] + [f"{r['Badge']},{r['Email']},{r['Scanned']}" for r in rows]
    scans.write_text("\n".join(lines) + "\n", encoding="utf-8")

    subprocess.run(
        [str(BIN), "import", str(scans), "--source", BADGES, "--config", str(config)],
        capture_output=True,
        check=True,
    )
    wanted = Counter({f"{BADGES}:B{n}": 1 for n in range(3)})
    wait_until(lambda: tasks_by_key(sandbox) == wanted, what="the imported scans as Tasks")
    wait_until(lambda: ticks(serve, "woken", "badges-to-salesforce") >= 1, what="woken")
    assert ticks(serve, "ran", "badges-to-salesforce") == 0
    assert [run.counts.get("pushed") for run in runs(engine, "badges-to-salesforce")] == [3]
    assert serve.stop() == 0


def test_idle_ticks_keep_no_run_row_and_move_the_last_checked_time(
    sandbox: SandboxServer, tmp_path: Path, ledger_url: str
) -> None:
    config = load_config(freshness_config(tmp_path, sandbox, ledger_url))
    engine = open_ledger(ledger_url)
    scheduler = PipelineScheduler.from_config(config, engine)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        for n in range(3):  # nothing to deliver
            assert scheduler.run_tick(PIPELINE, day + timedelta(days=n)) == TickOutcome.RAN
        assert runs(engine) == []
        first = last_checked(engine)[PIPELINE]

        [email] = known_emails(sandbox, 1)
        parsed = parse_item(SOURCE, 0, touch(3, email), datetime.now(UTC))
        assert isinstance(parsed, Touch)
        store_touches(engine, [parsed])
        assert scheduler.run_tick(PIPELINE, day + timedelta(days=3)) == TickOutcome.RAN
        assert [run.counts.get("pushed") for run in runs(engine)] == [1]
        assert scheduler.run_tick(PIPELINE, day + timedelta(days=4)) == TickOutcome.RAN
        assert len(runs(engine)) == 1
        assert last_checked(engine)[PIPELINE] > first
    finally:
        engine.dispose()
