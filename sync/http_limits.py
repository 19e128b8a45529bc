"""How ``closedloop serve``'s HTTP server bounds slow clients: head and body deadlines, a cap.

uvicorn alone never closes a slow sender. Its keep-alive timer runs only between requests and
restarts with every byte received, so a client that trickles a request head a byte at a time
(slowloris), or declares a body and trickles that, holds its connection, a file descriptor and
memory for as long as it likes. ``limit_concurrency`` does not help: it answers 503 only once a
request head is complete, and it counts the slow connections that never complete one, so slow
clients would turn every valid request away. ``h11_max_incomplete_event_size`` bounds the size
of a head (16 KB by default), not the time it takes.

``protocol_for(limits)`` is uvicorn's h11 protocol with deadlines, which are totals rather than
idle timers, so trickling does not extend them:

- a request head (request line and headers) must be complete ``header_timeout`` seconds after
  the connection opened or its previous response ended; otherwise the connection is closed;
- a request body must be complete ``body_timeout`` seconds after its head; otherwise the
  request is answered 408 and the connection closed (the application sees a disconnect);
- at most ``max_connections`` are open: a new connection beyond the cap closes the one that has
  waited longest for its request head (an idle keep-alive or a slow client); when every open
  connection is inside a request, the new one is answered 503 with Retry-After and closed.

A request whose body has arrived belongs to the application: no deadline cuts it. Every
connection needs a file descriptor, so ``fit_descriptor_limit`` raises the process's soft
RLIMIT_NOFILE (up to the hard limit) to hold the cap, or lowers the cap to what it holds.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "DEFAULT_LIMITS",
    "BoundedH11Protocol",
    "ServerLimits",
    "fit_descriptor_limit",
    "protocol_for",
    "quiet_disconnects",
    "server_config",
]

# Descriptors kept free for everything else: the ledger pool, vendor calls, log files.
_SPARE_DESCRIPTORS = 256


def _plain_answer(status: bytes, text: str, *headers: bytes) -> bytes:
    body = text.encode()
    head = [b"HTTP/1.1 " + status, *headers, b"content-type: text/plain; charset=utf-8"]
    head += [b"connection: close", b"content-length: " + str(len(body)).encode()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_REQUEST_TIMEOUT = _plain_answer(b"408 Request Timeout", "the request body came too slowly\n")
_BUSY = _plain_answer(
    b"503 Service Unavailable", "too many connections; retry soon\n", b"retry-after: 1"
)


@dataclass(frozen=True)
class ServerLimits:
    """Deadlines (seconds) for a request's head and body, and the cap on open connections."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 2048


DEFAULT_LIMITS = ServerLimits()


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head and body deadlines and a connection cap."""

    limits: ClassVar[ServerLimits] = DEFAULT_LIMITS
    # Connections waiting for a request head, the longest-waiting first (one dict per server).
    waiting: ClassVar[dict[BoundedH11Protocol, None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = ""
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit the connection under the cap and start its head deadline."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._evict_oldest():
            self.transport.write(_BUSY)
            self.transport.close()
            return
        self._follow()

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, then move the deadline if the request moved on."""
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        """A kept-alive connection now waits for its next head, under a new deadline."""
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection's deadline."""
        self._stop()
        super().connection_lost(exc)

    def _follow(self) -> None:
        if self.transport.is_closing():
            self._stop()
            return
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "app"
        if phase == self._phase:
            return
        self._stop()
        self._phase = phase
        if phase == "head":
            self.waiting[self] = None
            self._deadline = self.loop.call_later(self.limits.header_timeout, self._head_late)
        elif phase == "body":
            self._deadline = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.waiting.pop(self, None)
        self._phase = ""

    def _head_late(self) -> None:
        self._stop()
        self.transport.close()

    def _body_late(self) -> None:
        self._stop()
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.response_started = True  # the application's answer, if any, is dropped
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _evict_oldest(self) -> bool:
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            return False
        oldest._head_late()
        return True


def protocol_for(limits: ServerLimits) -> type[BoundedH11Protocol]:
    """A protocol class for one server: uvicorn's ``http`` setting (``uvicorn.Config(http=)``)."""

    class ServeH11Protocol(BoundedH11Protocol):
        pass

    ServeH11Protocol.limits = limits
    ServeH11Protocol.waiting = {}
    return ServeH11Protocol


def server_config(app: ASGIApp, *, host: str, port: int, limits: ServerLimits) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` on ``host:port`` under ``limits``."""
    return uvicorn.Config(
        quiet_disconnects(app),
        host=host,
        port=port,
        http=protocol_for(limits),
        log_level="warning",
        access_log=False,
    )


def fit_descriptor_limit(limits: ServerLimits) -> tuple[ServerLimits, str | None]:
    """Raise the soft RLIMIT_NOFILE to hold ``max_connections`` (up to the hard limit), or
    lower the cap to fit; returns the limits to use and a note when the cap was lowered."""
    needed = limits.max_connections + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits, None
    cap = max(1, soft - _SPARE_DESCRIPTORS)
    note = (
        f"max connections lowered from {limits.max_connections} to {cap}: the process may "
        f"open {soft} files (ulimit -n); raise that limit to serve more"
    )
    return replace(limits, max_connections=cap), note


def quiet_disconnects(app: ASGIApp) -> ASGIApp:
    """``app``, ending quietly when its client is gone (or was cut off by a deadline)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except ClientDisconnect:
            return  # nobody is left to answer; uvicorn would log a traceback for it

    return wrapped
