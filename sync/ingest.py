"""Storing what sources deliver: touches (idempotently, by touch key) and refused records.

``store_touches`` inserts with ``INSERT ... ON CONFLICT DO NOTHING RETURNING key`` on SQLite and
PostgreSQL alike, in one transaction, so a touch that is already in the ledger (same key, or
same source + source id) is counted as a duplicate and left untouched: the first delivery wins
and re-imports or re-deliveries never create a second row.

``store_rejects`` writes dead letters: records a file, a webhook sender or a pulled source
refused (``RejectRecord``, or a ``RecordRejected`` from ``Page.rejects``). A record refused again
while its dead letter is still open (same pipeline, record key and code) is not written twice,
so re-importing a file with bad rows, or re-reading a source's boundary, does not pile up copies.
Values under secret-like keys (signature, token, password, ...) are masked.

Control characters (the ledger's rule, ``sync.ledger.types``): the columns clean every text they
store, the same on SQLite and PostgreSQL. What is evidence keeps what arrived instead, visibly
escaped (``\\x00``, ``\\udc80``; tab and line breaks kept): a touch's ``raw`` payload, a dead
letter's reason and payload, and the ids a touch key is made of (``source_id``, so two vendor
ids that differ by a control character stay two touches).
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite

from connectors.base import Touch, touch_key
from connectors.errors import RecordRejected
from sync.ledger.dialect import BULK_FROM, AnyOf, copy_values
from sync.ledger.models import DeadLetterRow, DeadLetterStatus, TouchRow
from sync.ledger.types import escape_controls, utcnow
from sync.logs import SecretRedactor
from sync.ui.grouping import group_columns

__all__ = [
    "GroupCommitter",
    "IngestResult",
    "RejectRecord",
    "insert_rejects",
    "insert_touches",
    "store_rejects",
    "store_touches",
    "stored_key",
]

_TOUCH: Table = TouchRow.__table__  # type: ignore[attr-defined]
_DEAD: Table = DeadLetterRow.__table__  # type: ignore[attr-defined]
_LOOKUP_CHUNK = 500
# From ``BULK_FROM`` touches PostgreSQL stores them through COPY and one merge (``_copy_merge``).
_STAGE = "closedloop_touch_stage"
_STAGED = (
    "key", "source", "source_id", "kind", "occurred_at", "email", "person_ref", "campaign",
    "channel", "asset", "attributes", "raw", "pulled_at",
)  # fmt: skip
_KEY_REDACTOR = SecretRedactor()


@dataclass(frozen=True)
class IngestResult:
    """What a batch of touches did to the ledger."""

    inserted: int = 0
    duplicates: int = 0
    inserted_keys: frozenset[str] = field(default_factory=frozenset)

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.inserted + other.inserted,
            self.duplicates + other.duplicates,
            self.inserted_keys | other.inserted_keys,
        )


class RejectRecord(Protocol):
    """What a dead letter needs from a refused record (files ``Reject``, webhook ``ItemReject``)."""

    @property
    def key(self) -> str: ...

    @property
    def code(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def payload(self) -> Mapping[str, Any]: ...


def _insert_for(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no idempotent insert for {conn.dialect.name}")


def stored_key(touch: Touch) -> str:
    """The key the ledger stores ``touch`` under (its ids with control characters escaped)."""
    return touch_key(_identifier(touch.source), _identifier(touch.source_id))


def _identifier(value: str) -> str:
    return escape_controls(value, keep="")


def insert_touches(conn: Connection, touches: Iterable[Touch]) -> IngestResult:
    """Insert ``touches`` in the caller's transaction; existing keys are skipped, not updated."""
    rows: dict[str, dict[str, Any]] = {}
    seen_twice = 0
    pulled_at = utcnow()
    for touch in touches:
        key = stored_key(touch)
        if key in rows:
            seen_twice += 1
            continue
        rows[key] = {
            "key": key,
            "source": _identifier(touch.source),
            "source_id": _identifier(touch.source_id),
            "kind": touch.kind.value,
            "occurred_at": touch.occurred_at,
            "email": touch.email,
            "person_ref": touch.person_ref,
            "campaign": touch.campaign,
            "channel": touch.channel,
            "asset": touch.asset,
            "attributes": dict(touch.attributes),  # cleaned by its column (JsonDocument)
            "raw": _evidence(dict(touch.raw)),
            "pulled_at": pulled_at,
        }
    if not rows:
        return IngestResult(0, seen_twice)
    if conn.dialect.name == "postgresql" and len(rows) >= BULK_FROM:
        inserted = _copy_merge(conn, list(rows.values()))
    else:
        statement = _insert_for(conn, _TOUCH).on_conflict_do_nothing().returning(_TOUCH.c.key)
        inserted = frozenset(conn.execute(statement, list(rows.values())).scalars())
    return IngestResult(len(inserted), len(rows) - len(inserted) + seen_twice, inserted)


def _copy_merge(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """PostgreSQL's bulk path: ``COPY`` the rows into a temporary staging table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING key`` in the caller's transaction.

    The rows go in input order (ids ascend as with the plain insert); each value passes its
    column's own cleaning first (``process_bind_param``), as a bound parameter would. The staging
    table lives per session and is emptied at every commit and before every use.
    """
    values = copy_values(conn, _TOUCH, _STAGED)
    raw = conn.connection.driver_connection
    assert raw is not None
    names = ", ".join(_STAGED)
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ON COMMIT DELETE ROWS AS "  # noqa: S608 - constant names
            f"SELECT 0::bigint AS ord, {names} FROM touch WITH NO DATA; TRUNCATE {_STAGE}"
        )
        with cursor.copy(f"COPY {_STAGE} (ord, {names}) FROM STDIN") as copy:
            for ord_, row in enumerate(rows):
                copy.write_row([ord_, *values(row)])
        cursor.execute(
            f"INSERT INTO touch ({names}) SELECT {names} FROM {_STAGE} ORDER BY ord "  # noqa: S608
            "ON CONFLICT DO NOTHING RETURNING key"
        )
        return frozenset(row[0] for row in cursor.fetchall())


def store_touches(engine: Engine, touches: Iterable[Touch]) -> IngestResult:
    """Insert ``touches`` in one transaction; counts new ones and ones the ledger already had."""
    with engine.begin() as conn:
        return insert_touches(conn, touches)


@dataclass(frozen=True)
class _Letter:
    key: str
    code: str
    reason: str
    payload: Mapping[str, Any]


def _letter(reject: RejectRecord | RecordRejected) -> _Letter:
    """A refusal as the dead letter stores it: ids escaped, evidence kept visible."""
    if isinstance(reject, RecordRejected):
        key, code, reason = reject.key or "", reject.code, str(reject)
        payload: Mapping[str, Any] = reject.payload or {}
    else:
        key, code, reason, payload = reject.key, reject.code, reject.reason, reject.payload
    return _Letter(_identifier(key), _identifier(code), escape_controls(reason), payload)


def insert_rejects(
    conn: Connection,
    pipeline: str,
    stage: str,
    rejects: Iterable[RejectRecord | RecordRejected],
) -> int:
    """Write dead letters inside the caller's transaction; returns how many were new."""
    pending: dict[tuple[str, str], _Letter] = {}
    for reject in rejects:
        letter = _letter(reject)
        pending.setdefault((letter.key, letter.code), letter)
    if not pending:
        return 0
    known: set[tuple[str, str]] = set()
    keys = sorted({key for key, _ in pending})
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        query = select(_DEAD.c.record_key, _DEAD.c.code).where(
            and_(
                _DEAD.c.pipeline == pipeline,
                _DEAD.c.status == DeadLetterStatus.OPEN.value,
                AnyOf(_DEAD.c.record_key, chunk),
            )
        )
        known.update((row.record_key, row.code) for row in conn.execute(query))
    created_at = utcnow()
    rows = [
        {
            "pipeline": pipeline,
            "stage": stage,
            "record_key": key,
            "code": code,
            "reason": reject.reason,
            "payload": _evidence(_KEY_REDACTOR.scrub(dict(reject.payload))),
            "created_at": created_at,
            "status": DeadLetterStatus.OPEN.value,
            "attempts": 0,
            **group_columns(pipeline, stage, code, reject.reason),
        }
        for (key, code), reject in pending.items()
        if (key, code) not in known
    ]
    if rows:
        conn.execute(_DEAD.insert(), rows)
    return len(rows)


def store_rejects(
    engine: Engine, pipeline: str, stage: str, rejects: Sequence[RejectRecord | RecordRejected]
) -> int:
    """Dead-letter ``rejects`` of ``pipeline`` at ``stage`` in one transaction; returns new ones."""
    if not rejects:
        return 0
    with engine.begin() as conn:
        return insert_rejects(conn, pipeline, stage, rejects)


def _evidence(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON both databases store alike, control characters and lone surrogates
    escaped (tabs and line breaks kept in values), so a dead letter shows what arrived."""
    if isinstance(value, str):
        return escape_controls(value)
    if depth > 64:
        return escape_controls(repr(value)[:200])
    if isinstance(value, Mapping):
        return {escape_controls(str(k), keep=""): _evidence(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_evidence(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return escape_controls(str(value))


class GroupCommitter:
    """Stores touches from many concurrent callers in shared transactions (group commit).

    Each caller blocks until the transaction holding its touches has committed, so "answer only
    after commit" still holds, but sixteen concurrent webhook requests cost one multi-row
    ``INSERT ... ON CONFLICT DO NOTHING`` and one commit (one fsync on SQLite, one round trip on
    PostgreSQL) instead of sixteen of each. One daemon thread does the writing; it starts on
    demand and exits after ``idle_seconds`` without work. When a shared transaction fails, each
    caller's touches are retried alone, so one bad request cannot fail its neighbours.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256, idle_seconds: float = 5.0) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._idle = idle_seconds
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def commit(self, touches: Sequence[Touch]) -> IngestResult:
        """Store ``touches`` (idempotently, like store_touches); returns once committed."""
        pending = _Pending(list(touches), Future())
        self._queue.put(pending)
        self._ensure_writer()
        return pending.done.result()

    async def commit_async(self, touches: Sequence[Touch]) -> IngestResult:
        """``commit`` for an event loop: waits without holding a worker thread."""
        pending = _Pending(list(touches), Future())
        self._queue.put(pending)
        self._ensure_writer()
        return await asyncio.wrap_future(pending.done)

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._write_loop, name="closedloop-group-commit", daemon=True
                )
                self._thread.start()

    def _write_loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._flush(batch)

    def _flush(self, batch: list[_Pending]) -> None:
        try:
            with self._engine.begin() as conn:
                stored = insert_touches(conn, [t for p in batch for t in p.touches])
        except Exception as exc:  # noqa: BLE001 - handed to the callers, who decide
            if len(batch) == 1:
                batch[0].done.set_exception(exc)
                return
            for pending in batch:
                self._flush([pending])
            return
        # One INSERT for the whole group; a key it inserted is new for the first caller (in
        # queue order) that sent it and a duplicate for everyone after, as if run one by one.
        unclaimed = set(stored.inserted_keys)
        for pending in batch:
            mine = {stored_key(t) for t in pending.touches} & unclaimed
            unclaimed -= mine
            duplicates = len(pending.touches) - len(mine)
            pending.done.set_result(IngestResult(len(mine), duplicates, frozenset(mine)))


@dataclass
class _Pending:
    touches: list[Touch]
    done: Future[IngestResult]
