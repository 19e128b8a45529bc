"""Webhook receiver throughput: signed single-activity POSTs into a SQLite ledger over loopback.

The service (``sync.cli.serve_cmd.build_service_app``) runs under uvicorn in its own process, so
the load generator does not share its GIL; an httpx client keeps 16 requests in flight. Every
request is signed, verified, validated and committed to the ledger before it is answered.
Target (issue 7): at least 500 requests/s with p99 under 50 ms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CONCURRENCY = 16
MAX_REQUESTS = 5_000
MAX_SECONDS = 10.0
WARMUP_REQUESTS = 200
TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
_SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a throwaway key for a local server


def _serve(database_url: str, port: int) -> None:
    """Child process: migrate the ledger and serve the webhook app until terminated."""
    import uvicorn
    from pydantic import SecretStr

    from connectors.webhook import WebhookSettings
    from sync.cli.serve_cmd import build_service_app
    from sync.ledger import open_ledger

    engine = open_ledger(database_url)
    app = build_service_app(engine, {"bench": WebhookSettings(secret=SecretStr(_SECRET))})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _body(index: int) -> bytes:
    return (
        f'{{"id":"bench-{index}","kind":"page_view","email":"visitor{index % 997}@example.com",'
        '"occurred_at":"2024-05-01T10:00:00Z","asset":"/pricing"}'
    ).encode()


async def _drive(base_url: str, start_index: int, count: int, deadline: float) -> list[float]:
    from connectors.webhook import sign

    latencies: list[float] = []
    failures: list[int] = []
    counter = iter(range(start_index, start_index + count))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0) as client:

        async def worker() -> None:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                body = _body(index)
                ts = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    "X-Closedloop-Timestamp": str(ts),
                    "X-Closedloop-Signature": sign(_SECRET, ts, body),
                }
                started = time.perf_counter()
                response = await client.post("/hooks/bench", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(response.status_code)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. HTTP {failures[0]}")
    return latencies


def _wait_ready(base_url: str, process: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError("the webhook service exited during start-up")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the webhook service did not become ready")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run() -> list[str]:
    """Serve, warm up, then measure; lines report throughput and latency against the target."""
    from connectors.sandbox.core import free_port

    with tempfile.TemporaryDirectory(prefix="closedloop-bench-webhook-") as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(url, port), daemon=True
        )
        process.start()
        try:
            _wait_ready(base_url, process)
            asyncio.run(_drive(base_url, 0, WARMUP_REQUESTS, time.perf_counter() + MAX_SECONDS))
            started = time.perf_counter()
            latencies = asyncio.run(
                _drive(base_url, WARMUP_REQUESTS, MAX_REQUESTS, started + MAX_SECONDS)
            )
            elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.join(timeout=10)
    rps = len(latencies) / elapsed
    p50 = _percentile(latencies, 0.50) * 1000
    p99 = _percentile(latencies, 0.99) * 1000
    verdict = "PASS" if rps >= TARGET_RPS and p99 < TARGET_P99_MS else "BELOW TARGET"
    return [
        f"{len(latencies)} signed POSTs, concurrency {CONCURRENCY}, SQLite ledger, {elapsed:.1f} s",
        f"throughput {rps:,.0f} req/s (target >= {TARGET_RPS:.0f})",
        f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < {TARGET_P99_MS:.0f} ms)",
        verdict,
    ]
