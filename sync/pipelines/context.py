"""What a running pipeline holds: its ``RunContext`` (connections, counts, stop, budget), the
lease's ``Fence`` every checkpoint verifies, and the cursor rows it checkpoints.

The runner (``sync.pipelines.runner``) makes a ``RunContext`` and hands it to the pipeline of the
configured kind; the pipelines, the scheduler and the leases import these pieces from here, so
none of them imports the runner back.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection, Engine, select, update

from connectors.base import Cursor
from connectors.errors import Fatal
from sync.ledger.models import CursorRow, LeaseRow
from sync.ledger.planner import StatisticsKeeper
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.budgets import BudgetGate
    from sync.config import Config, Pipeline
    from sync.connections import Connections

__all__ = [
    "Fence",
    "FenceLost",
    "Progress",
    "RunContext",
    "Stopped",
    "cursor_value",
    "load_cursor",
    "save_cursor",
]

log = structlog.get_logger("sync.pipelines.runner")

Progress = Callable[[str, int], None]

_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]
_LEASE = LeaseRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Fence:
    """What a lease grants: the lease row's name, its holder and the fencing token issued."""

    name: str
    owner: str
    token: int


class FenceLost(Fatal):
    """A commit found the lease's token moved on: another process now owns this pipeline."""


class Stopped(Exception):
    """The pipeline noticed ``stop`` between batches and returned early (the runner catches it)."""


class RunContext:
    """What a pipeline gets from the runner: connections, checkpoints, counts and stop."""

    def __init__(
        self,
        *,
        config: Config,
        name: str,
        pipeline: Pipeline,
        engine: Engine,
        connections: Connections,
        run_id: int,
        started_at: datetime,
        fence: Fence | None,
        stop: threading.Event | None,
        progress: Progress | None,
        since: datetime | None,
        budget: BudgetGate | None = None,
        pulled_since: datetime | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.pipeline = pipeline
        self.engine = engine
        self.connections = connections
        self.run_id = run_id
        self.started_at = started_at
        self.fence = fence
        self.since = since
        # A pull of the source reaching this moment is fresh enough for this run (its tick).
        self.pulled_since = pulled_since
        self.counts: Counter[str] = Counter()
        self.minimum_calls: dict[str, int] = {}
        self.notes: list[str] = []
        self._stop = stop
        self._progress = progress
        self._lock = threading.Lock()
        # Stops the run between batches once a connection's daily budget is spent.
        self.budget = budget
        # Keeps PostgreSQL's plans right while the run grows the ledger (``refresh_statistics``).
        self.statistics = StatisticsKeeper(engine)

    # -- counting and progress ----------------------------------------------------------------

    def add(self, name: str, amount: int = 1) -> None:
        """Add to one of the run's counts (thread-safe)."""
        if amount:
            with self._lock:
                self.counts[name] += amount

    def progress(self, stage: str, amount: int) -> None:
        """Tell the progress display that ``amount`` more records passed ``stage``."""
        if self._progress is not None and amount:
            self._progress(stage, amount)

    def note(self, text: str) -> None:
        """Record a remark for the summary (e.g. a stream the connector does not offer)."""
        self.notes.append(text)
        log.info("pipeline note", pipeline=self.name, note=text)

    def refresh_statistics(self) -> None:
        """Between batches: analyse the tables this run grew past their planner statistics
        (PostgreSQL; see ``sync.ledger.planner``)."""
        self.statistics.refresh()

    def should_stop(self) -> bool:
        """Whether a stop was requested or a budget is spent; pipelines check between batches."""
        if self._stop is not None and self._stop.is_set():
            return True
        return self.budget is not None and self.budget.reached() is not None

    def check_stop(self) -> None:
        """End the pipeline here (the run becomes "interrupted") when a stop was requested,
        or with ``BudgetReached`` when a connection's budget is spent."""
        if self._stop is not None and self._stop.is_set():
            raise Stopped
        if self.budget is not None:
            self.budget.check()

    # -- checkpoints ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A ledger transaction that commits only while this run still holds its lease."""
        with self.engine.begin() as conn:
            self.verify_fence(conn)
            yield conn

    def verify_fence(self, conn: Connection) -> None:
        """Check (and on PostgreSQL lock) the lease row in ``conn``'s transaction."""
        if self.fence is None:
            return
        fence = self.fence
        result = conn.execute(
            update(_LEASE)
            .where(
                _LEASE.c.name == fence.name,
                _LEASE.c.owner == fence.owner,
                _LEASE.c.fencing_token == fence.token,
            )
            .values(owner=fence.owner)
        )
        if result.rowcount != 1:
            raise FenceLost(
                f"pipeline {self.name!r}: lease {fence.name!r} is no longer held by "
                f"{fence.owner!r} with token {fence.token}; another process took over"
            )

    def load_cursor(self, stream: str) -> Cursor:
        """The committed cursor of ``stream`` of this pipeline (empty when never read)."""
        with self.engine.connect() as conn:
            return load_cursor(conn, self.name, stream)

    def save_cursor(self, conn: Connection, stream: str, cursor: Cursor) -> None:
        """Write the cursor of ``stream`` in ``conn``'s transaction (with the rows it covers)."""
        token = self.fence.token if self.fence is not None else None
        save_cursor(conn, self.name, stream, cursor, fencing_token=token)


def load_cursor(conn: Connection, pipeline: str, stream: str) -> Cursor:
    """The cursor row of ``pipeline``/``stream`` as a ``Cursor`` (empty when absent)."""
    row = conn.execute(
        select(_CURSOR.c.value, _CURSOR.c.boundary_keys).where(
            _CURSOR.c.pipeline == pipeline, _CURSOR.c.stream == stream
        )
    ).first()
    if row is None:
        return Cursor()
    return Cursor(row.value, frozenset(row.boundary_keys or ()))


def save_cursor(
    conn: Connection,
    pipeline: str,
    stream: str,
    cursor: Cursor,
    *,
    fencing_token: int | None = None,
) -> None:
    """Insert or update the cursor row of ``pipeline``/``stream`` in the caller's transaction."""
    values = {
        "value": cursor.value,
        "boundary_keys": sorted(cursor.boundary_keys),
        "updated_at": utcnow(),
        "fencing_token": fencing_token,
    }
    done = conn.execute(
        update(_CURSOR)
        .where(_CURSOR.c.pipeline == pipeline, _CURSOR.c.stream == stream)
        .values(**values)
    )
    if done.rowcount == 0:
        conn.execute(_CURSOR.insert().values(pipeline=pipeline, stream=stream, **values))


def cursor_value(moment: datetime) -> str:
    """A time as a cursor value (ISO 8601, UTC, ``Z``), the form sources accept."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
