"""Wake-ups: new touches of a source run the pipelines that read it at once, not at their tick.

A signed webhook request or a file import that stores new touches of source ``S`` raises the
counter of ``S`` in the ledger's ``wakeup`` table (``raise_generation``: one upsert, the same on
SQLite and PostgreSQL). ``closedloop serve`` watches the counters (``generations``: one small
query, every ``poll`` seconds, and at once when its own webhook receiver stored something) and
runs every scheduled touches pipeline of ``S`` whose counter moved (``sync.scheduler``).

Exactly once per wake-up, across replicas. A pipeline records, under its lease, the counter it
had read before its last woken run (``record_handled``, the cursor table's stream
``WAKE_STREAM``). A replica that wins the lease for a counter already handled skips it, so every
replica may watch the same counters and still only one runs; touches stored while a run goes on
raise the counter past what that run will record, which gives them exactly one follow-up run.

``Notifier`` raises counters from a thread of the process that stores touches: a burst of
webhook requests costs one ledger write per burst, not one per request, and answering the
sender never waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sync.leases import check_fence
from sync.ledger.models import CursorRow, WakeupRow
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.pipelines.context import Fence

__all__ = [
    "WAKE_STREAM",
    "Notifier",
    "generation_of",
    "generations",
    "handled",
    "notify",
    "raise_generation",
    "record_handled",
]

WAKE_STREAM = "scheduler.wake"

_WAKEUP = WakeupRow.__table__  # type: ignore[attr-defined]
_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]
_log = structlog.get_logger("closedloop.wakeups")


def raise_generation(conn: Connection, sources: Iterable[str]) -> None:
    """Raise the counter of each of ``sources`` by one in the caller's transaction."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    for source in sorted(set(sources)):
        stmt = insert(_WAKEUP).values(source=source, generation=1, woken_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[_WAKEUP.c.source],
                set_={"generation": _WAKEUP.c.generation + 1, "woken_at": now},
            )
        )


def notify(engine: Engine, sources: Iterable[str]) -> None:
    """Raise the counters of ``sources`` in a transaction of its own."""
    wanted = set(sources)
    if wanted:
        with engine.begin() as conn:
            raise_generation(conn, wanted)


def generations(engine: Engine) -> dict[str, int]:
    """Every source's counter."""
    with engine.connect() as conn:
        rows = conn.execute(select(_WAKEUP.c.source, _WAKEUP.c.generation)).all()
    return {row.source: int(row.generation) for row in rows}


def handled(engine: Engine, pipeline: str) -> int:
    """The counter ``pipeline``'s last woken run had read before it started (0: none)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(_CURSOR.c.value).where(
                _CURSOR.c.pipeline == pipeline, _CURSOR.c.stream == WAKE_STREAM
            )
        ).scalar_one_or_none()
    return int(value) if value and value.isdigit() else 0


def record_handled(engine: Engine, fence: Fence, pipeline: str, generation: int) -> None:
    """Store ``generation`` as handled by ``pipeline``, refused (FenceLost) if the lease moved."""
    with engine.begin() as conn:
        check_fence(conn, fence)
        values = {"value": str(generation), "fencing_token": fence.token, "updated_at": utcnow()}
        updated = conn.execute(
            update(_CURSOR)
            .where(_CURSOR.c.pipeline == pipeline, _CURSOR.c.stream == WAKE_STREAM)
            .values(**values)
        ).rowcount
        if updated == 0:
            conn.execute(
                _CURSOR.insert().values(
                    pipeline=pipeline, stream=WAKE_STREAM, boundary_keys=[], **values
                )
            )


class Notifier:
    """Raises the counters of sources from a daemon thread, many notices in one write.

    ``touched`` only records the source and returns; the thread writes every source noticed
    since its last write in one transaction, then calls ``on_raised`` (the local scheduler's
    ``poke``) so this process does not wait for its next poll. A failed write is retried.
    """

    def __init__(
        self,
        engine: Engine,
        on_raised: Callable[[], None] | None = None,
        *,
        retry_seconds: float = 1.0,
    ) -> None:
        self._engine = engine
        self._on_raised = on_raised
        self._retry = retry_seconds
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    def touched(self, sources: Iterable[str]) -> None:
        """New touches of ``sources`` were committed: raise their counters soon."""
        with self._lock:
            self._pending.update(sources)
            if not self._pending:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="closedloop-wakeups", daemon=True
                )
                self._thread.start()
        self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                sources, self._pending = self._pending, set()
            if not sources:
                continue
            try:
                notify(self._engine, sources)
            except Exception as exc:  # noqa: BLE001 - the ledger may be down: try again
                _log.warning("wake-up not recorded", error=type(exc).__name__)
                with self._lock:
                    self._pending.update(sources)
                threading.Event().wait(self._retry)
                self._wanted.set()
                continue
            if self._on_raised is not None:
                self._on_raised()


def generation_of(engine: Engine, source: str) -> int:
    """The counter of ``source`` (0: never raised)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(_WAKEUP.c.generation).where(_WAKEUP.c.source == source)
        ).scalar_one_or_none()
    return int(value or 0)
