"""``closedloop serve``: scheduled runs, probes, /metrics, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from sandbox.core import free_port
from sandbox.credentials import SALESFORCE_SESSION_ID
from sandbox.server import SandboxServer
from sync.cli.serve_cmd import build_service_app, metrics_route
from sync.leases import TICK_STREAM
from sync.ledger import (
    CursorRow,
    DeadLetterRow,
    DeliveryRow,
    LeaseRow,
    SyncRunRow,
    TouchRow,
    ledger_session,
    make_engine,
)
from sync.metrics import ServiceMetrics
from sync.pipelines.runner import CHECKED_STREAM
from sync.scheduler import TickOutcome
from tests.connectors.webhook.sender import Client

BIN = Path(sys.executable).parent / "closedloop"


# --- helpers shared with test_replicas.py -----------------------------------------------------


def write_config(
    folder: Path,
    sandbox: SandboxServer,
    ledger_url: str,
    pipelines: dict[str, str],
    *,
    every: str = "1s",
) -> Path:
    """A closedloop.yaml with the sandbox's Salesforce as ``crm`` and pipelines name -> kind."""
    lines = [
        "version: 1",
        f"ledger: {{url: {json.dumps(ledger_url)}}}",
        "logging: {level: info, format: json}",
        "connections:",
        "  crm:",
        "    type: salesforce",
        f"    instance_url: {sandbox.salesforce_url}",
        f"    ca_bundle: {json.dumps(str(sandbox.ca_file))}",
        f"    auth: {{method: session, session_id: {json.dumps(SALESFORCE_SESSION_ID)}}}",
        "pipelines:",
    ]
    for name, kind in pipelines.items():
        lines += [
            f"  {name}:",
            f"    kind: {kind}",
            "    source: crm",
            f"    schedule: {{every: {every}}}",
        ]
    path = folder / "closedloop.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Serve:
    """One ``closedloop serve`` subprocess with its log file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events written so far (console lines are skipped)."""
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by SIGKILL
        return out

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_serve(config: Path, folder: Path, *, lease_seconds: float = 3) -> Serve:
    """Start ``closedloop serve`` on a free port; its stderr goes to a file in ``folder``."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(BIN),
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--lease-seconds",
                str(lease_seconds),
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return Serve(process, port, log)


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    """Serve processes started by a test; killed after it if still alive."""
    started: list[Serve] = []
    yield started
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait(10)


# --- in-process app ---------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus exposition, None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        sample, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample == name and got == wanted:
            return float(value)
    return None


def test_metrics_show_records_by_state_dead_letters_lag_runs_and_errors(
    ledger_engine: Engine,
) -> None:
    now = datetime.now(UTC)
    with ledger_session(ledger_engine) as session:
        for i in range(4):
            session.add(
                TouchRow(
                    key=f"files:{i}",
                    source="files",
                    source_id=str(i),
                    kind="form_fill",
                    occurred_at=now,
                )
            )
        session.flush()
        touch_ids = [row.id for row in session.execute(select(TouchRow)).scalars()]
        for touch_id, state in zip(
            touch_ids, ["confirmed", "confirmed", "intended", "dead"], strict=True
        ):
            assert touch_id is not None
            session.add(DeliveryRow(touch_id=touch_id, sink="salesforce", state=state))
        for status in ("open", "open", "discarded"):
            session.add(
                DeadLetterRow(
                    pipeline="touches", stage="push", code="rejected", reason="x", status=status
                )
            )
        session.add(
            CursorRow(pipeline="touches", stream="deliver", updated_at=now - timedelta(seconds=90))
        )
        # The scheduler's own bookkeeping is not progress of the pipeline.
        session.add(CursorRow(pipeline="touches", stream=TICK_STREAM, updated_at=now))

    @dataclass
    class Finished:
        state: str
        api_calls: dict[str, int]
        error: str | None = None

    metrics = ServiceMetrics(ledger_engine, clock=lambda: now)
    metrics.tick("touches", now, TickOutcome.RAN, "replica-a")
    metrics.tick("touches", now, TickOutcome.HELD, "replica-a")
    metrics.run_finished("touches", 1.5, Finished("succeeded", {"salesforce": 3}), None)
    metrics.run_finished("touches", 0.2, Finished("failed", {}), None)
    metrics.run_finished("touches", 0.1, None, "FenceLost")

    app = build_service_app(ledger_engine, {}, extra_routes=[metrics_route(metrics)])
    response = Client(app).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    assert metric(text, "closedloop_ledger_up") == 1
    assert metric(text, "closedloop_deliveries", sink="salesforce", state="confirmed") == 2
    assert metric(text, "closedloop_deliveries", sink="salesforce", state="intended") == 1
    assert metric(text, "closedloop_deliveries", sink="salesforce", state="dead") == 1
    assert metric(text, "closedloop_dead_letters_open", pipeline="touches") == 2
    assert metric(text, "closedloop_lag_seconds", pipeline="touches") == pytest.approx(90, abs=1)
    assert metric(text, "closedloop_ticks_total", pipeline="touches", outcome="ran") == 1
    assert metric(text, "closedloop_ticks_total", pipeline="touches", outcome="skipped_held") == 1
    assert (
        metric(text, "closedloop_run_duration_seconds_count", pipeline="touches", state="failed")
        == 2
    )
    assert (
        metric(text, "closedloop_run_duration_seconds_sum", pipeline="touches", state="succeeded")
        == 1.5
    )
    assert metric(text, "closedloop_errors_total", pipeline="touches", kind="run_failed") == 1
    assert metric(text, "closedloop_errors_total", pipeline="touches", kind="FenceLost") == 1


def test_metrics_still_answer_when_the_ledger_is_down(tmp_path: Path) -> None:
    missing = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'ledger.db'}")
    metrics = ServiceMetrics(missing)
    app = build_service_app(missing, {}, extra_routes=[metrics_route(metrics)])
    response = Client(app).get("/metrics")
    assert response.status_code == 200
    assert metric(response.text, "closedloop_ledger_up") == 0
    missing.dispose()


def test_readyz_says_why_when_the_scheduler_is_not_running(ledger_engine: Engine) -> None:
    running = {"yes": False}
    app = build_service_app(
        ledger_engine,
        {},
        ready=lambda: None if running["yes"] else "the scheduler is not running",
    )
    client = Client(app)
    down = client.get("/readyz")
    running["yes"] = True
    up = client.get("/readyz")
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "reason": "the scheduler is not running"}
    assert up.status_code == 200


# --- the real process -------------------------------------------------------------------------


def test_serve_runs_scheduled_pipelines_answers_probes_and_exits_0_on_sigterm(
    sandbox_readonly: SandboxServer, tmp_path: Path, serves: list[Serve]
) -> None:
    sandbox = sandbox_readonly
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = write_config(tmp_path, sandbox, ledger, {"dispositions": "dispositions"})
    serve = start_serve(config, tmp_path)
    serves.append(serve)
    wait_until(serve.ready, what="/readyz")
    assert httpx.get(f"{serve.url}/healthz").json() == {"status": "alive"}

    engine = make_engine(ledger)
    try:

        def succeeded_runs() -> int:
            with ledger_session(engine) as session:
                runs = session.execute(select(SyncRunRow)).scalars().all()
            return sum(1 for run in runs if run.state == "succeeded")

        def ran() -> float:
            text = httpx.get(f"{serve.url}/metrics").text
            runs = metric(text, "closedloop_ticks_total", pipeline="dispositions", outcome="ran")
            return runs or 0

        wait_until(lambda: ran() >= 3, what="three scheduled runs")
        # The first run read the org; the later ones found nothing new and kept no run row.
        assert succeeded_runs() == 1
        text = httpx.get(f"{serve.url}/metrics").text
        assert (metric(text, "closedloop_api_calls_total", connection="crm") or 0) > 0
        assert metric(text, "closedloop_lag_seconds", pipeline="dispositions") is not None
        checked = metric(text, "closedloop_last_check_seconds", pipeline="dispositions")
        assert checked is not None
        assert checked < 30

        assert serve.stop(signal.SIGTERM) == 0
        events = [e["event"] for e in serve.events()]
        assert "scheduler stopped" in events
        with ledger_session(engine) as session:
            lease = session.get(LeaseRow, "pipeline:dispositions")
            runs = session.execute(select(SyncRunRow)).scalars().all()
        assert lease is not None
        assert lease.expires_at <= datetime.now(UTC)  # released, not left to expire
        assert all(run.state != "running" for run in runs)
    finally:
        engine.dispose()


def test_sigterm_during_a_run_commits_the_current_batch_and_exits_0(
    sandbox_readonly: SandboxServer, tmp_path: Path, serves: list[Serve]
) -> None:
    sandbox = sandbox_readonly
    sandbox.set_latency(400)  # each page takes a while: the stop lands mid-run
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = write_config(tmp_path, sandbox, ledger, {"graph": "reconcile"})
    engine = make_engine(ledger)
    try:
        serve = start_serve(config, tmp_path, lease_seconds=30)
        serves.append(serve)

        def committed_streams() -> set[str]:
            try:
                with ledger_session(engine) as session:
                    rows = session.execute(select(CursorRow)).scalars().all()
            except Exception:  # noqa: BLE001 - the schema may not exist yet
                return set()
            return {row.stream for row in rows if row.stream not in (TICK_STREAM, CHECKED_STREAM)}

        wait_until(lambda: bool(committed_streams()), timeout=60, what="a first committed page")
        assert serve.stop(signal.SIGTERM) == 0

        with ledger_session(engine) as session:
            [run] = session.execute(select(SyncRunRow)).scalars().all()
            lease = session.get(LeaseRow, "pipeline:graph")
            cursors = session.execute(select(CursorRow)).scalars().all()
        assert run.state == "interrupted", run.error
        assert run.error is not None
        assert "after committing the current batch" in run.error
        assert run.finished_at is not None
        streams = {c.stream for c in cursors if c.stream not in (TICK_STREAM, CHECKED_STREAM)}
        assert streams
        assert streams < {"accounts", "people", "opportunities", "contact_roles", "campaigns"}
        assert lease is not None
        assert all(c.fencing_token == lease.fencing_token for c in cursors)
        assert lease.expires_at <= datetime.now(UTC)
        assert "scheduler stopped" in [e["event"] for e in serve.events()]
    finally:
        sandbox.set_latency(0)
        engine.dispose()
