"""The sync-health page over a big ledger: every page in under 300 ms (issue 17).

The ledger holds 505,000 touches, 500,000 delivered to two CRMs (1,000,000 deliveries: 1% of them
failed or dead, the newest 5,000 touches not yet delivered), 100,000 open dead letters in
about 40 error groups (every reason names its own record: e-mails, ids, numbers) plus 5,000
replayed ones, and 5,000 runs over 30 days. It is written with bulk inserts, once per backend,
and reused by later runs (SQLite in the system's temp folder; PostgreSQL in a database
``closedloop_bench_health`` on the server of ``$CLOSEDLOOP_BENCH_POSTGRES_URL``, else of
``$CLOSEDLOOP_TEST_POSTGRES_URL``, when one is set).

Measured through HTTP (uvicorn on loopback, signed in as an operator): the median of repeated
views of the overview, the errors, the largest group, a record and the runs. The plan of the
error-group query is printed, to show it reads the index only. Letters are written with their
message template and group, as ``insert_rejects`` writes them; the one-off cost of grouping
100,000 letters written before revision 0010 (the page's first view after an upgrade) is
measured last.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

TARGET_MS = 300.0
TOUCHES = 505_000
SINKS = ("salesforce", "hubspot")
LETTERS = 100_000
RUNS = 5_000
UNDELIVERED = 5_000
REPEAT = 15
NOW = datetime.now(UTC).replace(microsecond=0)
CHUNK = 20_000
PASSWORD = "bench-operator-password"  # noqa: S105 - a throwaway user of a throwaway ledger
PIPELINES = {"salesforce": "marketo-to-salesforce", "hubspot": "marketo-to-hubspot"}
_REASONS = (
    "salesforce refused the record: INVALID_CROSS_REFERENCE_KEY: invalid cross reference id {id}",
    "salesforce refused the record: STRING_TOO_LONG: Subject: data value too large: {n} chars",
    "salesforce refused to create the person for {email}: INVALID_EMAIL_ADDRESS: bad address",
    'hubspot refused the record: PROPERTY_DOESNT_EXIST: Property "x_{n}" does not exist',
    "salesforce refused the record: FIELD_CUSTOM_VALIDATION_EXCEPTION: Region '{word}' unknown",
)
_CODES = ("INVALID_CROSS_REFERENCE_KEY", "STRING_TOO_LONG", "INVALID_EMAIL_ADDRESS",
          "PROPERTY_DOESNT_EXIST", "FIELD_CUSTOM_VALIDATION_EXCEPTION")  # fmt: skip


def _rows_touches(start: int, stop: int) -> list[dict[str, Any]]:
    base = NOW - timedelta(days=90)
    return [
        {"id": i, "key": f"marketo:{i}", "source": "marketo", "source_id": str(i),
         "kind": "email_open", "occurred_at": base + timedelta(seconds=i * 15),
         "email": f"p{i % 40_000}@company{i % 997}.example", "campaign": f"Program {i % 300}",
         "attributes": {}, "raw": {}, "pulled_at": base + timedelta(seconds=i * 15 + 60)}
        for i in range(start, stop)
    ]  # fmt: skip


def _rows_deliveries(start: int, stop: int) -> list[dict[str, Any]]:
    base = NOW - timedelta(days=90)
    rows = []
    for i in range(start, min(stop, TOUCHES - UNDELIVERED + 1)):
        for n, sink in enumerate(SINKS):
            state = "confirmed"
            if i % 100 == 7:
                state = "failed" if n == 0 else "dead"
            at = base + timedelta(seconds=i * 15 + 120)
            rows.append(
                {"touch_id": i, "sink": sink, "state": state, "attempts": 1, "run_id": 1,
                 "crm_id": f"00T{i:012d}" if state == "confirmed" else None,
                 "intended_at": at, "confirmed_at": at if state == "confirmed" else None}
            )  # fmt: skip
    return rows


def _rows_letters(start: int, stop: int) -> list[dict[str, Any]]:
    """Dead letters as ``insert_rejects`` writes them: with their template and group."""
    from sync.ui.grouping import group_columns

    rows = []
    for i in range(start, stop):
        kind = i % len(_REASONS)
        # About 40 groups: 5 reasons x 2 pipelines x 4 wordings of the quoted value's context.
        sink = SINKS[i % 2]
        reason = _REASONS[kind].format(
            id=f"001{i:012d}", n=i, email=f"p{i}@company{i % 997}.example",
            word=f"R{i}",
        ) + ("" if i % 4 == 0 else f" (attempt {i % 4})" if i % 4 == 1 else
             " on create" if i % 4 == 2 else " on update")  # fmt: skip
        rows.append(
            {**group_columns(PIPELINES[sink], "push", _CODES[kind], reason),
             "pipeline": PIPELINES[sink], "stage": "push",
             "record_key": f"marketo:{1 + i % TOUCHES}",
             "code": _CODES[kind], "reason": reason, "payload": {"key": f"marketo:{i}", "n": i},
             "created_at": NOW - timedelta(seconds=(LETTERS - i) * 20),
             "status": "open" if i < LETTERS else "replayed", "attempts": 0}
        )  # fmt: skip
    return rows


def _rows_runs(start: int, stop: int) -> list[dict[str, Any]]:
    names = [*PIPELINES.values(), "salesforce-reconcile", "salesforce-dispositions"]
    rows = []
    for i in range(start, stop):
        began = NOW - timedelta(days=30) + timedelta(seconds=i * (30 * 86400 // RUNS))
        rows.append(
            {"pipeline": names[i % len(names)], "owner": "bench:1", "started_at": began,
             "finished_at": began + timedelta(seconds=40), "state": "succeeded",
             "counts": {"kind": "touches", "pushed": 100}, "api_calls": {"salesforce": 12},
             "config_fingerprint": "0123456789ab", "mapping_fingerprint": "ba9876543210"}
        )  # fmt: skip
    return rows


def _fill(engine: Any) -> dict[str, int]:
    from sqlalchemy import insert

    from sync.ledger.models import (
        CursorRow,
        DeadLetterRow,
        DeliveryRow,
        SyncRunRow,
        TouchRow,
    )

    plan = (
        (TouchRow, _rows_touches, 1, TOUCHES + 1),
        (DeliveryRow, _rows_deliveries, 1, TOUCHES + 1),
        (DeadLetterRow, _rows_letters, 0, LETTERS + 5_000),
        (SyncRunRow, _rows_runs, 0, RUNS),
    )
    counts: dict[str, int] = {}
    for model, rows_of, first, last in plan:
        table = model.__table__  # type: ignore[attr-defined]
        step = CHUNK // 2 if model is DeliveryRow else CHUNK
        total = 0
        for start in range(first, last, step):
            rows = rows_of(start, min(last, start + step))
            if rows:
                with engine.begin() as conn:
                    conn.execute(insert(table), rows)
                total += len(rows)
        counts[table.name] = total
    cursor = CursorRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for pipeline in PIPELINES.values():
            conn.execute(
                insert(cursor).values(pipeline=pipeline, stream="deliver",
                                      value=str(TOUCHES - UNDELIVERED), updated_at=NOW)
            )  # fmt: skip
    if engine.dialect.name == "postgresql":
        with engine.connect() as plain:
            plain.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return counts


def _postgres_database(drop: bool = False) -> str | None:
    """The benchmark's own PostgreSQL database (made fresh; ``drop``: removed), or None when
    neither ``CLOSEDLOOP_BENCH_POSTGRES_URL`` nor ``CLOSEDLOOP_TEST_POSTGRES_URL`` is set."""
    base = os.environ.get("CLOSEDLOOP_BENCH_POSTGRES_URL") or os.environ.get(
        "CLOSEDLOOP_TEST_POSTGRES_URL"
    )
    if not base:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS closedloop_bench_health WITH (FORCE)"))
            if not drop:
                conn.execute(text("CREATE DATABASE closedloop_bench_health"))
    finally:
        admin.dispose()
    return url.set(database="closedloop_bench_health").render_as_string(hide_password=False)


def _ledger(url: str) -> tuple[dict[str, int], float]:
    """Build the ledger at ``url``; its row counts and build seconds."""
    from sync.ledger import open_ledger

    engine = open_ledger(url)
    try:
        started = time.perf_counter()
        counts = _fill(engine)
        return counts, time.perf_counter() - started
    finally:
        engine.dispose()


def _config(folder: Path, url: str) -> Any:
    import yaml

    from sync.cli.demo_cmd import write_sandbox_config
    from sync.config import load_config

    folder.mkdir(parents=True, exist_ok=True)
    ca = folder / "ca.pem"
    ca.write_text("not used: nothing connects\n", encoding="utf-8")
    fake = SimpleNamespace(
        salesforce_url="https://127.0.0.1:1", hubspot_url="https://127.0.0.1:1",
        marketo_url="https://127.0.0.1:1", ca_file=str(ca),
    )  # fmt: skip
    path = write_sandbox_config(folder, fake, ledger_url=url)  # type: ignore[arg-type]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    from argon2 import PasswordHasher

    hashed = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    (folder / "ui-users.txt").write_text(f"otto:operator:{hashed}\n", encoding="utf-8")
    data["ui"] = {"users_file": "ui-users.txt"}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _plan(engine: Any) -> str:
    """How the database answers the error-group query (its first line that names an index)."""
    from sqlalchemy import func, select

    from sync.ledger.models import DeadLetterRow

    dead = DeadLetterRow.__table__  # type: ignore[attr-defined]
    query = (
        select(dead.c.group_key, func.count(), func.min(dead.c.created_at),
               func.max(dead.c.created_at))
        .where(dead.c.status == "open").group_by(dead.c.group_key)
    )  # fmt: skip
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        lines = [
            " ".join(str(c) for c in row) for row in conn.exec_driver_sql(f"{prefix}{compiled}")
        ]
    return next((line.strip() for line in lines if "INDEX" in line.upper()), lines[0].strip())


def _measure(backend: str, url: str, folder: Path) -> list[str]:
    import re

    import httpx
    import uvicorn
    from starlette.applications import Starlette

    from sandbox.core import free_port
    from sync.ledger import open_ledger
    from sync.ui.app import UiApp

    counts, built = _ledger(url)
    lines = [
        f"{backend}: {counts.get('touch', 0):,} touches, {counts.get('delivery', 0):,} deliveries, "
        f"{counts.get('dead_letter', 0):,} dead letters ({LETTERS:,} open), "
        f"{counts.get('sync_run', 0):,} runs " + f"(built in {built:.0f} s)"
    ]
    config = _config(folder / backend, url)
    engine = open_ledger(url)
    port = free_port()
    app = Starlette(routes=UiApp(config, engine, None).routes())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            client.post("/ui/sign-in", data={"user": "otto", "password": PASSWORD})
            errors = client.get("/ui/errors")
            keys = re.findall(r'data-group="([0-9a-f]{16})"', errors.text)
            letter = re.search(r"/ui/letters/(\d+)", client.get(f"/ui/errors/{keys[0]}").text)
            assert letter is not None
            lines.append(f"{backend}: {len(keys)} error groups")
            lines.append(f"{backend}: error-group query plan: {_plan(engine)}")
            worst = 0.0
            for name, path in (
                ("overview", "/ui/"),
                ("errors", "/ui/errors"),
                ("largest group", f"/ui/errors/{keys[0]}"),
                ("record", f"/ui/letters/{letter.group(1)}"),
                ("runs", "/ui/runs"),
            ):
                times = []
                for _ in range(REPEAT):
                    began = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                median = statistics.median(times)
                worst = max(worst, median)
                lines.append(f"{backend}: {name}: median {median:,.0f} ms of {REPEAT}")
            verdict = "OK" if worst <= TARGET_MS else "OVER TARGET"
            lines.append(
                f"{backend}: slowest page median {worst:,.0f} ms "
                f"(target {TARGET_MS:.0f} ms) {verdict}"
            )
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    lines.append(f"{backend}: {_refill(url)}")
    return lines


def _refill(url: str) -> str:
    """The one-off cost of grouping letters written before revision 0010 (or by a writer that
    does not group them): the page's first view fills them all (``fill_groups``)."""
    from sync.ledger import open_ledger
    from sync.ui.grouping import fill_groups

    engine = open_ledger(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE dead_letter SET template = NULL, group_key = NULL WHERE status = 'open'"
            )
        started = time.perf_counter()
        filled = fill_groups(engine)
        seconds = time.perf_counter() - started
        if engine.dialect.name == "postgresql":  # as autovacuum does after so many updates
            with engine.connect() as plain:
                plain.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE dead_letter"
                )
    finally:
        engine.dispose()
    return (
        f"grouping {filled:,} letters written without a group (once, at the first view after "
        f"an upgrade): {seconds:.1f} s"
    )


def run() -> list[str]:
    """Build the ledgers in a temporary folder (and database), then time the page's views on
    SQLite and PostgreSQL; both are removed afterwards."""
    from sync.logs import configure_logging

    configure_logging("warning")  # the page logs each sign-in at info
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-health-") as tmp:
        folder = Path(tmp)
        lines = _measure("sqlite", f"sqlite:///{folder / 'ledger.db'}", folder)
        postgres = _postgres_database()
        if postgres is None:
            lines.append(
                "postgresql: skipped (set CLOSEDLOOP_BENCH_POSTGRES_URL or "
                "CLOSEDLOOP_TEST_POSTGRES_URL to measure it)"
            )
            return lines
        try:
            lines.extend(_measure("postgresql", postgres, folder))
        finally:
            _postgres_database(drop=True)
    return lines
