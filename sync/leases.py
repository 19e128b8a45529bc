"""Leases with fencing tokens in the ledger: who may run a pipeline now, and which tick ran last.

Coordination between processes lives here, never in APScheduler (version 3 must not share a job
store between processes). A lease is one ``lease`` row (``LeaseRow``): name, owner, fencing token,
acquired_at, expires_at.

- ``acquire`` is ONE conditional upsert: insert the row, or take it over when it has expired or
  already belongs to the caller. The fencing token grows by one with every new holding (a new
  owner, or the same owner after its lease lapsed), so a holder that was paused past its expiry
  carries a token smaller than the current one and its writes are refused (``check_fence``).
- ``renew`` extends the lease only while owner AND token still match (nobody took it meanwhile).
- ``release`` marks the lease expired (the row stays, so tokens never restart at 1).
- ``Heartbeat`` renews a lease from a thread while a run goes on and reports when it is lost.
- ``holding`` tells who holds a lease and for how much longer (a waiting replica sleeps until then).

A holder that is gone. Owners made by ``process_owner`` name this machine (host name and PID
namespace) and the process id. When ``acquire`` finds the lease held by a process of this same
machine that no longer exists (SIGKILL, OOM kill, crash), it takes the lease at once with the
next token instead of waiting for the expiry: a ``sync --once`` right after a kill, or a replica
beside the dead one, does not sit out a whole lease period. A holder on another machine, or one
whose process still exists, is only ever replaced at expiry (a process cannot tell a remote
holder's death from a slow network).

Time: expiry is decided by ONE clock, the database's (``clock_timestamp()`` on PostgreSQL,
``strftime('now')`` on SQLite), never by the replicas' own clocks: two replicas whose clocks
disagree by seconds would otherwise both believe they hold the lease. A ``clock`` argument
replaces it with a caller's clock (tests, or a single process); do not mix the two on one ledger.

Ticks: the scheduler identifies a tick by its scheduled fire time. ``record_tick`` stores the last
completed tick of a pipeline in the ``cursor`` table (stream ``TICK_STREAM``), written under the
lease and checked against the fence in the same transaction; ``last_tick`` reads it. A replica
that wins the lease for a tick already recorded skips it: see ``sync.scheduler``.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from sync.ledger.models import CursorRow, LeaseRow
from sync.ledger.types import UtcDateTime, utcnow

if TYPE_CHECKING:
    from sync.pipelines.context import Fence

__all__ = [
    "TICK_STREAM",
    "Clock",
    "Heartbeat",
    "Holding",
    "acquire",
    "check_fence",
    "holder_gone",
    "holding",
    "last_tick",
    "lease_name",
    "process_owner",
    "record_tick",
    "release",
    "renew",
]

TICK_STREAM = "scheduler.tick"

Clock = Callable[[], datetime]

_LEASE = LeaseRow.__table__  # type: ignore[attr-defined]
_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]
_log = structlog.get_logger("closedloop.leases")


def lease_name(pipeline: str) -> str:
    """The lease that guards the runs of ``pipeline`` (one runner per pipeline at a time)."""
    return f"pipeline:{pipeline}"


def _machine() -> str:
    """This machine as processes on it see it: host name and PID namespace (two containers may
    share a host name, never a PID namespace)."""
    try:
        namespace = f"~{Path('/proc/self/ns/pid').stat().st_ino}"
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}"


def process_owner(role: str = "") -> str:
    """A lease owner name unique to this process: ``machine:pid:[role-]suffix``."""
    suffix = uuid.uuid4().hex[:8]
    return f"{_machine()}:{os.getpid()}:{f'{role}-' if role else ''}{suffix}"


def _process_exists(pid: int) -> bool:
    """True while ``pid`` is a process of this PID namespace that has not ended (a zombie,
    killed but not yet reaped by its parent, has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: the signal said it exists
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def holder_gone(owner: str) -> bool:
    """True when ``owner`` (made by ``process_owner``) is a process of this machine that no
    longer exists. Any other owner, remote or unparseable, is never called gone."""
    machine, _, rest = owner.partition(":")
    pid, _, _suffix = rest.partition(":")
    if machine != _machine() or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not _process_exists(int(pid))


def _seconds(ttl: float | timedelta) -> float:
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if seconds <= 0:
        raise ValueError(f"a lease period must be positive, got {seconds} s")
    return seconds


def _times(conn: Connection, ttl: float, clock: Clock | None) -> tuple[Any, Any]:
    """SQL expressions for "now" and "now + ttl" on the database's clock (or ``clock``)."""
    if clock is not None:
        now = clock()
        return (
            literal(now, UtcDateTime()),
            literal(now + timedelta(seconds=ttl), UtcDateTime()),
        )
    if conn.dialect.name == "postgresql":
        # clock_timestamp(), not now(): now() is frozen at the transaction's start, which may be
        # long before a lock wait on the lease row ends.
        return (
            func.clock_timestamp(),
            func.clock_timestamp() + func.make_interval(0, 0, 0, 0, 0, 0, ttl),
        )
    # The text format SQLAlchemy stores SQLite datetimes in (microseconds, UTC), so that text
    # comparison with stored values orders by time.
    fmt = "%Y-%m-%d %H:%M:%f000"
    return (
        func.strftime(fmt, "now"),
        func.strftime(fmt, "now", f"{ttl:+.3f} seconds"),
    )


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(_LEASE)
    return sqlite.insert(_LEASE)


def _make_fence(name: str, owner: str, token: int) -> Fence:
    from sync.pipelines.context import Fence

    return Fence(name=name, owner=owner, token=token)


def acquire(
    engine: Engine,
    name: str,
    owner: str,
    ttl: float | timedelta,
    *,
    clock: Clock | None = None,
) -> Fence | None:
    """Take the lease ``name`` for ``ttl`` when it is free, expired or already ours; else None."""
    seconds = _seconds(ttl)
    with engine.begin() as conn:
        now, later = _times(conn, seconds, clock)
        stmt = _insert(conn).values(
            name=name, owner=owner, fencing_token=1, acquired_at=now, expires_at=later
        )
        # Still ours and unexpired: a re-entrant acquire, same holding, same token.
        same_holding = and_(_LEASE.c.owner == stmt.excluded.owner, _LEASE.c.expires_at > now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_LEASE.c.name],
            set_={
                "owner": stmt.excluded.owner,
                "fencing_token": case(
                    (same_holding, _LEASE.c.fencing_token), else_=_LEASE.c.fencing_token + 1
                ),
                "acquired_at": case((same_holding, _LEASE.c.acquired_at), else_=now),
                "expires_at": later,
            },
            where=or_(_LEASE.c.expires_at <= now, _LEASE.c.owner == stmt.excluded.owner),
        ).returning(_LEASE.c.fencing_token)
        token = conn.execute(stmt).scalar_one_or_none()
        if token is None:
            token = _take_from_gone(conn, name, owner, now, later)
    if token is None:
        return None
    return _make_fence(name, owner, int(token))


def _take_from_gone(conn: Connection, name: str, owner: str, now: Any, later: Any) -> int | None:
    """The next token when the lease's unexpired holder is a process gone from this machine."""
    current = conn.execute(
        select(_LEASE.c.owner, _LEASE.c.fencing_token).where(_LEASE.c.name == name)
    ).first()
    if current is None or not holder_gone(current.owner):
        return None
    token = conn.execute(
        update(_LEASE)
        .where(
            _LEASE.c.name == name,
            _LEASE.c.owner == current.owner,
            _LEASE.c.fencing_token == current.fencing_token,
        )
        .values(
            owner=owner,
            fencing_token=_LEASE.c.fencing_token + 1,
            acquired_at=now,
            expires_at=later,
        )
        .returning(_LEASE.c.fencing_token)
    ).scalar_one_or_none()
    if token is not None:
        _log.warning("lease taken from a process that is gone", lease=name, gone=current.owner)
    return None if token is None else int(token)


@dataclass(frozen=True)
class Holding:
    """Who holds a lease now and for how many more seconds (by the database's clock)."""

    owner: str
    token: int
    expires_in: float


def holding(engine: Engine, name: str, *, clock: Clock | None = None) -> Holding | None:
    """The unexpired holding of lease ``name``, or None when it is free."""
    with engine.connect() as conn:
        now, _later = _times(conn, 1.0, clock)
        row = conn.execute(
            select(
                _LEASE.c.owner, _LEASE.c.fencing_token, _LEASE.c.expires_at, now.label("now")
            ).where(_LEASE.c.name == name)
        ).first()
    if row is None:
        return None
    current = row.now if isinstance(row.now, datetime) else _parse_sqlite_now(row.now)
    left = (_aware(row.expires_at) - _aware(current)).total_seconds()
    if left <= 0:
        return None
    return Holding(row.owner, int(row.fencing_token), left)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_sqlite_now(value: str) -> datetime:
    """SQLite's ``strftime`` text for now (microseconds, UTC) as a datetime."""
    return datetime.fromisoformat(value[:26]).replace(tzinfo=UTC)


def _held_by(fence: Fence) -> Any:
    return and_(
        _LEASE.c.name == fence.name,
        _LEASE.c.owner == fence.owner,
        _LEASE.c.fencing_token == fence.token,
    )


def renew(
    engine: Engine, fence: Fence, ttl: float | timedelta, *, clock: Clock | None = None
) -> bool:
    """Extend ``fence``'s lease by ``ttl`` from now; False when another holding replaced it."""
    seconds = _seconds(ttl)
    with engine.begin() as conn:
        _now, later = _times(conn, seconds, clock)
        stmt = update(_LEASE).where(_held_by(fence)).values(expires_at=later)
        return conn.execute(stmt).rowcount == 1


def release(engine: Engine, fence: Fence, *, clock: Clock | None = None) -> bool:
    """Give the lease up now (if still held by ``fence``) so the next tick need not wait."""
    with engine.begin() as conn:
        now, _later = _times(conn, 1.0, clock)
        stmt = update(_LEASE).where(_held_by(fence)).values(expires_at=now)
        return conn.execute(stmt).rowcount == 1


def check_fence(conn: Connection, fence: Fence) -> None:
    """Raise ``FenceLost`` unless ``fence`` is the lease's current holding (call inside the
    transaction of a fenced write: on PostgreSQL the row stays locked until it commits)."""
    from sync.pipelines.context import FenceLost

    if conn.dialect.name == "postgresql":
        query = select(_LEASE.c.fencing_token).where(_held_by(fence)).with_for_update()
    else:  # SQLite transactions are BEGIN IMMEDIATE: the writer lock is already ours
        query = select(_LEASE.c.fencing_token).where(_held_by(fence))
    if conn.execute(query).first() is None:
        current = conn.execute(
            select(_LEASE.c.owner, _LEASE.c.fencing_token).where(_LEASE.c.name == fence.name)
        ).first()
        held = f"token {current.fencing_token}" if current is not None else "no holder"
        raise FenceLost(
            f"lease {fence.name!r} is no longer held with token {fence.token} ({held} now): "
            "another process took over; this run's writes are refused"
        )


def last_tick(engine: Engine, pipeline: str) -> datetime | None:
    """The scheduled fire time of ``pipeline``'s last completed tick (None: never ran)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(_CURSOR.c.value).where(
                _CURSOR.c.pipeline == pipeline, _CURSOR.c.stream == TICK_STREAM
            )
        ).scalar_one_or_none()
    return datetime.fromisoformat(value) if value else None


def record_tick(engine: Engine, fence: Fence, pipeline: str, tick: datetime) -> None:
    """Store ``tick`` as ``pipeline``'s last completed tick, refused (FenceLost) if stale."""
    if tick.tzinfo is None:
        raise ValueError("a tick must be a timezone-aware datetime")
    value = tick.astimezone(UTC).isoformat()
    with engine.begin() as conn:
        check_fence(conn, fence)
        updated = conn.execute(
            update(_CURSOR)
            .where(_CURSOR.c.pipeline == pipeline, _CURSOR.c.stream == TICK_STREAM)
            .values(
                value=value,
                fencing_token=fence.token,
                updated_at=utcnow(),
            )
        ).rowcount
        if updated == 0:
            conn.execute(
                _CURSOR.insert().values(
                    pipeline=pipeline,
                    stream=TICK_STREAM,
                    value=value,
                    boundary_keys=[],
                    fencing_token=fence.token,
                    updated_at=utcnow(),
                )
            )


class Heartbeat:
    """Renew a lease every third of its period from a thread while a run goes on.

    ``lost`` is set (and ``on_lost`` called once) when a renewal finds that another holding
    replaced ours; a renewal that fails on a database error is retried at the next beat, since
    the lease stays valid until it expires.
    """

    def __init__(
        self,
        engine: Engine,
        fence: Fence,
        ttl: float | timedelta,
        *,
        on_lost: Callable[[], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.fence = fence
        self.ttl = _seconds(ttl)
        self.on_lost = on_lost
        self.clock = clock
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat {fence.name}", daemon=True
        )

    def _beat(self) -> None:
        while not self._done.wait(self.ttl / 3):
            try:
                held = renew(self.engine, self.fence, self.ttl, clock=self.clock)
            except Exception as exc:  # noqa: BLE001 - keep beating; the lease outlives one miss
                _log.warning(
                    "lease renewal failed", lease=self.fence.name, error=type(exc).__name__
                )
                continue
            if not held:
                _log.error("lease lost", lease=self.fence.name, fence=self.fence.token)
                self.lost.set()
                if self.on_lost is not None:
                    self.on_lost()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
