"""``closedloop serve`` under slow clients: head and body deadlines, the connection cap.

The fast tests run the service's uvicorn configuration (``sync.http_limits.server_config``)
in a thread with short deadlines; the slow one holds 2,000 trickling connections against a
real ``closedloop serve`` while other senders post valid webhooks.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from connectors.webhook import build_webhook_app
from sandbox.core import free_port
from sync.http_limits import ServerLimits, server_config
from sync.ledger import TouchRow, ledger_session, make_engine
from tests.connectors.webhook.sender import (
    SECRET,
    Recorder,
    activity,
    encode,
    settings,
    signed_headers,
)

BIN = Path(sys.executable).parent / "closedloop"


@dataclass
class Served:
    """A webhook receiver served under ``limits``; what it committed is in ``recorder``."""

    port: int
    recorder: Recorder
    server: uvicorn.Server

    def settle(self, open_: int, waiting: int) -> None:
        """Wait until the server holds ``open_`` connections, ``waiting`` of them for a head."""
        protocol: Any = self.server.config.http_protocol_class
        deadline = time.monotonic() + 10
        while (len(self.server.server_state.connections), len(protocol.waiting)) != (
            open_,
            waiting,
        ):
            assert time.monotonic() < deadline, "the server did not take the connections"
            time.sleep(0.01)

    def connect(self) -> socket.socket:
        """A raw client connection."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.settimeout(10)
        return sock

    def post(self, index: int) -> httpx.Response:
        """A valid signed delivery of one activity, on a connection of its own."""
        body = encode(activity(index))
        headers = signed_headers(body, timestamp=time.time())
        return httpx.post(
            f"http://127.0.0.1:{self.port}/hooks/events", content=body, headers=headers
        )


@contextmanager
def served(limits: ServerLimits) -> Iterator[Served]:
    """The service's uvicorn configuration around a webhook receiver, in a thread."""
    recorder = Recorder()
    app = build_webhook_app({"events": settings()}, recorder.commit, recorder.dead_letter)
    port = free_port()
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port, limits=limits))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Served(port, recorder, server)
    finally:
        server.should_exit = True
        thread.join(10)


def read_until_closed(sock: socket.socket, trickle: bytes = b"") -> bytes:
    """Everything the server sends until it closes, sending one byte of ``trickle`` every
    0.1 s meanwhile (the test fails if the server keeps the connection open for 10 s)."""
    received = b""
    sock.settimeout(0.1)
    started = time.monotonic()
    while time.monotonic() - started < 10:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            if trickle:
                try:
                    sock.sendall(trickle[:1])
                except OSError:
                    return received
                trickle = trickle[1:]
            continue
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data
    pytest.fail(f"the server kept a slow connection open for 10 s (received {received!r})")


HEAD = b"POST /hooks/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SHORT = ServerLimits(header_timeout=0.5, body_timeout=0.5, max_connections=64)


def test_a_client_trickling_its_request_head_is_disconnected_at_the_header_deadline() -> None:
    with served(SHORT) as server, server.connect() as sock:
        sock.sendall(HEAD)
        assert read_until_closed(sock, b"X-Padding: " + b"a" * 500) == b""


def test_an_authenticated_client_trickling_its_body_gets_408_and_nothing_is_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = encode(activity(1))
    headers = signed_headers(body, timestamp=time.time())
    head = HEAD + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    with served(SHORT) as server, server.connect() as sock:
        sock.sendall(head)
        answer = read_until_closed(sock, body)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert server.recorder.committed == []
        assert server.post(2).status_code == 200  # the server itself is fine
    assert "Exception in ASGI application" not in caplog.text


def test_a_prompt_client_on_a_kept_alive_connection_is_never_cut_off() -> None:
    limits = ServerLimits(header_timeout=2.0, body_timeout=2.0, max_connections=64)
    with served(limits) as server, httpx.Client() as client:
        for index in range(4):
            body = encode(activity(index))
            headers = signed_headers(body, timestamp=time.time())
            url = f"http://127.0.0.1:{server.port}/hooks/events"
            assert client.post(url, content=body, headers=headers).status_code == 200
            time.sleep(0.5)  # four requests span longer than one header deadline
        assert len(server.recorder.committed) == 4


def test_at_the_cap_the_connection_waiting_longest_for_a_head_makes_room() -> None:
    limits = ServerLimits(header_timeout=30, body_timeout=30, max_connections=4)
    with served(limits) as server:
        idle = [server.connect() for _ in range(4)]
        server.settle(open_=4, waiting=4)
        assert server.post(1).status_code == 200
        assert read_until_closed(idle[0]) == b""  # the oldest idle one was closed
        for sock in idle:
            sock.close()


def test_at_the_cap_with_every_connection_inside_a_request_a_new_one_gets_503() -> None:
    limits = ServerLimits(header_timeout=30, body_timeout=30, max_connections=4)
    busy = HEAD + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with served(limits) as server:
        inside = [server.connect() for _ in range(4)]
        for sock in inside:
            sock.sendall(busy)
        server.settle(open_=4, waiting=0)
        refused = server.post(1)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        for sock in inside:
            sock.close()


def test_the_descriptor_limit_is_raised_for_the_cap_or_the_cap_lowered_to_fit() -> None:
    script = """
import resource
from sync.http_limits import ServerLimits, fit_descriptor_limit
resource.setrlimit(resource.RLIMIT_NOFILE, (300, {hard}))
limits, note = fit_descriptor_limit(ServerLimits(max_connections=400))
print(limits.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0], note)
"""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 700:
        pytest.skip(f"the hard descriptor limit ({hard}) is below what this test sets")

    def run(hard_limit: int) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script.format(hard=hard_limit)],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    assert run(700) == "400 656 None"  # raised to the cap plus 256 spare
    assert run(300).startswith("44 300 max connections lowered from 400 to 44")


# --- 2,000 slow clients against closedloop serve ----------------------------------------------

SLOW_CLIENTS = 2_000
HEADER_TIMEOUT = 3.0
BODY_TIMEOUT = 6.0
TRICKLE_S = 1.0
# How long past its deadline a slow connection may stay open, and a valid post may take, on a
# loaded 2-core machine.
SLACK_S = 10.0


@dataclass
class SlowOutcome:
    """One slow client: when it connected, when the server closed it, what it answered."""

    kind: str
    opened: float
    closed: float
    answer: bytes


def raise_descriptor_limit(needed: int) -> None:
    """Give this process (and the serve it starts) ``needed`` file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(
            f"{SLOW_CLIENTS} slow clients need {needed} file descriptors; the hard limit is "
            f"{hard}: raise it (ulimit -Hn) for the test run"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def slow_head(kind: str) -> tuple[bytes, bytes]:
    """What a slow client sends at once, and what it then trickles a byte a second."""
    body = encode(activity(random.randrange(10**9)))
    signed = b"".join(
        f"{k}: {v}\r\n".encode() for k, v in signed_headers(body, timestamp=time.time()).items()
    )
    length = f"Content-Length: {len(body)}\r\n".encode()
    match kind:
        case "head":  # a stranger trickling headers
            return HEAD, b"X-Slow: " + b"a" * 200
        case "signed-head":  # a signed request whose head never ends
            return HEAD + signed, b"X-Slow: " + b"a" * 200
        case "body":  # a stranger trickling a body
            return HEAD + b"Content-Type: application/json\r\n" + length + b"\r\n", body
        case _:  # "signed-body": an authenticated request trickling its body
            return HEAD + signed + length + b"\r\n", body


async def slow_client(port: int, kind: str) -> SlowOutcome:
    """Connect, send the start of a request, trickle the rest until the server closes."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = loop.time()
    start, trickle = slow_head(kind)
    answer = b""
    try:
        writer.write(start)
        await asyncio.sleep(random.uniform(0, TRICKLE_S))
        while loop.time() - opened < BODY_TIMEOUT + 3 * SLACK_S:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=TRICKLE_S)
            except TimeoutError:
                writer.write(trickle[:1])
                trickle = trickle[1:] or b"a"
                await writer.drain()
                continue
            if not data:
                break
            answer += data
    except OSError:
        pass  # reset by the server: closed
    finally:
        closed = loop.time()
        writer.close()
    return SlowOutcome(kind, opened, closed, answer)


def valid_posts(port: int, stop: threading.Event, latencies: list[float]) -> None:
    """Post valid signed deliveries one after another, each retried until accepted."""
    index = 0
    while not stop.is_set():
        index += 1
        body = encode(activity(index))
        started = time.monotonic()
        while True:
            headers = signed_headers(body, timestamp=time.time())
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/hooks/events",
                    content=body,
                    headers=headers,
                    timeout=SLACK_S,
                )
                if answer.status_code == 200:
                    assert answer.json() == {"accepted": 1, "rejected": 0}
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > SLACK_S:
                latencies.append(float("inf"))
                return
            time.sleep(0.1)
        latencies.append(time.monotonic() - started)
        time.sleep(0.2)


@pytest.mark.slow
def test_two_thousand_slow_clients_are_cut_off_while_valid_posts_get_through(
    tmp_path: Path,
) -> None:
    raise_descriptor_limit(SLOW_CLIENTS + 1024)
    ledger = tmp_path / "ledger.db"
    config = tmp_path / "closedloop.yaml"
    config.write_text(
        "version: 1\n"
        f"ledger: {{url: {json.dumps(f'sqlite:///{ledger}')}}}\n"
        "logging: {level: info, format: json}\n"
        f"connections:\n  events:\n    type: webhook\n    secret: {SECRET}\n",
        encoding="utf-8",
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        serve = subprocess.Popen(
            [
                str(BIN),
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--header-timeout",
                str(HEADER_TIMEOUT),
                "--body-timeout",
                str(BODY_TIMEOUT),
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "closedloop serve did not get ready"
            time.sleep(0.1)

        stop = threading.Event()
        latencies: list[float] = []
        poster = threading.Thread(target=valid_posts, args=(port, stop, latencies), daemon=True)

        async def crowd() -> list[SlowOutcome]:
            kinds = ["head", "signed-head", "body", "signed-body"]
            tasks = []
            for n in range(SLOW_CLIENTS):
                tasks.append(asyncio.create_task(slow_client(port, kinds[n % 4])))
                if n % 100 == 99:
                    await asyncio.sleep(0.05)  # open them over a second, not in one burst
            poster.start()
            return await asyncio.gather(*tasks)

        outcomes = asyncio.run(crowd())
        stop.set()
        poster.join(2 * SLACK_S)

        assert len(outcomes) == SLOW_CLIENTS
        late = [
            o
            for o in outcomes
            if o.closed - o.opened
            > (HEADER_TIMEOUT if o.kind.endswith("head") else BODY_TIMEOUT) + SLACK_S
        ]
        assert late == [], f"{len(late)} slow connections outlived their deadline"
        bodies = [o for o in outcomes if o.kind.endswith("body")]
        assert all(o.answer.startswith(b"HTTP/1.1 408 ") for o in bodies)
        assert len(latencies) >= 10, "too few valid posts ran alongside the slow clients"
        assert max(latencies) <= SLACK_S, sorted(latencies)[-5:]
        with ledger_session(make_engine(f"sqlite:///{ledger}")) as session:
            stored = session.scalar(select(func.count()).select_from(TouchRow))
        assert stored == len(latencies)  # every valid post, and nothing from a slow client
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        serve.terminate()
        serve.wait(30)
    assert "Traceback" not in log.read_text(errors="replace")
