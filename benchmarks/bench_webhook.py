"""Webhook receiver throughput: signed single-activity POSTs into a SQLite ledger over loopback.

The service (``sync.cli.serve_cmd.build_service_app``) runs under uvicorn in its own process, so
the load generator does not share its GIL. Every request is signed, verified, validated and
committed to the ledger before it is answered.

The load generator is a lean HTTP/1.1 client on asyncio streams: ``CONCURRENCY`` keep-alive
connections, each with one request in flight (like ``wrk``). It still signs every request, reads
every response by its Content-Length, checks every status and times every request. It is not
httpx on purpose: the machine the benchmark targets has two cores, and an httpx AsyncClient
driving 16 connections spent most of a core of its own (connection-pool bookkeeping, anyio
attribute lookups), so the figure measured the client rather than the server. The last line
reports how much CPU the load generator used, to show it is not the bottleneck.
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

from connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

CONCURRENCY = 16
MAX_REQUESTS = 20_000
MAX_SECONDS = 10.0
WARMUP_REQUESTS = 200
TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
_SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a throwaway key for a local server
_PATH = "/hooks/bench"


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


def _request(host: str, index: int) -> bytes:
    """One signed POST as raw HTTP/1.1 bytes (the connection stays open)."""
    body = _body(index)
    ts = int(time.time())
    head = (
        f"POST {_PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{TIMESTAMP_HEADER}: {ts}\r\n"
        f"{SIGNATURE_HEADER}: {sign(_SECRET, ts, body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (status line, headers, Content-Length body); returns the status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    length: int | None = None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise RuntimeError("a response came without Content-Length; this client cannot frame it")
    await reader.readexactly(length)
    return status


async def _drive(port: int, start_index: int, count: int, deadline: float) -> list[float]:
    """Send up to ``count`` requests over CONCURRENCY connections; returns their latencies."""
    host = f"127.0.0.1:{port}"
    latencies: list[float] = []
    failures: list[int] = []
    counter = iter(range(start_index, start_index + count))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                request = _request(host, index)
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures.append(status)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
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
    from sandbox.core import free_port

    with tempfile.TemporaryDirectory(prefix="closedloop-bench-webhook-") as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        port = free_port()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(url, port), daemon=True
        )
        process.start()
        try:
            _wait_ready(f"http://127.0.0.1:{port}", process)
            asyncio.run(_drive(port, 0, WARMUP_REQUESTS, time.perf_counter() + MAX_SECONDS))
            started = time.perf_counter()
            cpu_started = time.process_time()
            latencies = asyncio.run(
                _drive(port, WARMUP_REQUESTS, MAX_REQUESTS, started + MAX_SECONDS)
            )
            elapsed = time.perf_counter() - started
            client_cpu = (time.process_time() - cpu_started) / elapsed
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
        f"load generator CPU {client_cpu:.0%} of one core",
        verdict,
    ]
