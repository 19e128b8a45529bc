"""Freshness: a signed webhook POST until the touch is a Task in the sandbox's Salesforce.

A real ``closedloop serve`` (its own process) with one touches pipeline, webhook source ->
Salesforce, on the schedule ``closedloop init`` writes (``every: 15m``): only the wake-up of
``sync.wakeups`` can deliver within seconds. Touches are posted open-loop at ``RATE`` per second
(each one a new form fill of a person the org knows) while a thread watches the sandbox's Task
store; each latency is from just before the POST until the Task is visible there. Prints p50,
p95 and max over ``TOUCHES`` touches and how many runs they took. Target (issue 18): p95 <= 1 s.
The temporary folder (config, ledger, TLS files, logs) is removed at the end.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select

from connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from sandbox.core import free_port
from sandbox.server import SandboxServer

TOUCHES = int(os.environ.get("CLOSEDLOOP_BENCH_FRESHNESS_TOUCHES", "200"))
RATE = 10.0  # touches per second, posted open-loop
WARMUP = 3
TARGET_P95_S = 1.0
_SECRET = "bench-freshness-secret-0123456789"  # noqa: S105 - a throwaway key for a local server
_SOURCE = "events"
_PIPELINE = "events-to-salesforce"


def _default_schedule() -> dict[str, Any]:
    """The schedule ``closedloop init`` writes for a touches pipeline."""
    from sync.cli.config_cmd import SANDBOX_CONFIG

    schedule: dict[str, Any] = yaml.safe_load(SANDBOX_CONFIG)["pipelines"]["marketo-to-salesforce"][
        "schedule"
    ]
    return schedule


def _config(folder: Path, sandbox: SandboxServer, schedule: dict[str, Any]) -> Path:
    from sync.cli.demo_cmd import write_sandbox_config

    pipeline = {
        "kind": "touches",
        "source": _SOURCE,
        "sink": "salesforce",
        "mapping": "mappings/files-salesforce.yaml",
        "schedule": schedule,
    }
    return write_sandbox_config(
        folder,
        sandbox,
        pipelines={_PIPELINE: pipeline},
        connections={_SOURCE: {"type": "webhook", "secret": _SECRET}},
        ledger_url=f"sqlite:///{folder / 'ledger.db'}",
    )


def _body(index: int, email: str) -> bytes:
    return (
        f'{{"id":"fresh-{index}","kind":"form_fill","email":"{email}",'
        '"occurred_at":"2024-05-01T10:00:00Z","campaign":"Freshness"}'
    ).encode()


class _Watcher:
    """Notes when each touch key first shows up as a live Task in the sandbox's Salesforce."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.store = sandbox.store("salesforce")
        self.seen: dict[str, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.done.wait(0.005):
            with self.store.lock:
                keys = [r.get("Closedloop_Key__c") for r in self.store.records["Task"].values()]
            now = time.perf_counter()
            for key in keys:
                if key and key not in self.seen:
                    self.seen[key] = now


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def _serve(config: Path, folder: Path) -> Iterator[httpx.Client]:
    """``closedloop serve`` on ``config`` in its own process; a client once it is ready."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "closedloop"), "serve", "--config", str(config)]
    with (folder / "serve.log").open("wb") as log:
        serve = subprocess.Popen(  # noqa: S603 - our own executable, our own arguments
            [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def ready() -> bool:
        try:
            return client.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait(ready, 60, "closedloop serve to be ready")
        yield client
    finally:
        client.close()
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(10)


def _post(client: httpx.Client, index: int, email: str) -> str:
    """Post one signed touch; its key."""
    body = _body(index, email)
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(_SECRET, stamp, body),
    }
    answer = client.post(f"/hooks/{_SOURCE}", content=body, headers=headers)
    if answer.status_code != 200:
        raise RuntimeError(f"the webhook answered {answer.status_code}: {answer.text}")
    return f"{_SOURCE}:fresh-{index}"


def _runs(folder: Path) -> int:
    from sync.ledger import SyncRunRow, make_engine

    engine = make_engine(f"sqlite:///{folder / 'ledger.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(SyncRunRow)).scalar_one())
    finally:
        engine.dispose()


def run() -> list[str]:
    """Measure webhook-to-CRM latency; the lines to print."""
    schedule = _default_schedule()
    sent: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-freshness-") as tmp:
        folder = Path(tmp)
        with SandboxServer(seed=42, size="demo", tls_dir=folder / "tls") as sandbox:
            world = sandbox.world
            assert world is not None
            people = [p for p in world.people if p.crm_kind in ("lead", "contact")]
            emails = [p.email for p in people if p.email]
            watcher = _Watcher(sandbox)
            watcher.thread.start()
            try:
                with _serve(_config(folder, sandbox, schedule), folder) as client:
                    # Warm-up (imports, the org's schema, first connections), not measured.
                    warm = {_post(client, 10_000_000 + n, emails[n]) for n in range(WARMUP)}
                    _wait(lambda: warm <= watcher.seen.keys(), 60, "the warm-up touches")
                    start = time.perf_counter()
                    for index in range(TOUCHES):
                        delay = start + index / RATE - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        posted = time.perf_counter()
                        sent[_post(client, index, emails[index % len(emails)])] = posted
                    _wait(lambda: sent.keys() <= watcher.seen.keys(), 120, "every touch as a Task")
            finally:
                watcher.done.set()
            runs = _runs(folder)
    measured = sorted(watcher.seen[k] - t for k, t in sent.items())
    p50 = statistics.median(measured)
    p95 = measured[max(0, round(0.95 * len(measured)) - 1)]
    verdict = "MET" if p95 <= TARGET_P95_S else "NOT MET"
    when = f"every {schedule['every']}" if "every" in schedule else f"cron {schedule['cron']}"
    slowest = measured[-1] * 1000
    return [
        f"webhook POST -> Task in Salesforce (sandbox), schedule {when} (the init default), "
        f"{len(measured)} touches posted at {RATE:g}/s",
        f"latency p50 {p50 * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms, max {slowest:,.0f} ms"
        f" (target p95 <= {TARGET_P95_S * 1000:,.0f} ms: {verdict})",
        f"runs recorded: {runs} for {len(measured) + WARMUP} touches (wake-ups debounced)",
    ]
