"""The row-level sync log: every step a record went through, kept for a retention.

Each push writes one ``sync_log`` row per touch (operation ``create`` / ``update`` / ``skip`` /
``refuse``, the payload sent, the vendor's answer, when) in the same transaction as the batch's
outcomes, with one bulk insert; resolving people writes ``match`` rows, rendering ``map`` rows,
a dead-letter replay ``replay`` rows. Payloads are stored as zlib-compressed JSON; answers have
every secret the config loaded masked (``sync.logs.redact``).

``story`` reads a person's or a record's whole story back (by e-mail, touch key or CRM id):
the log rows, plus a ``pull`` step made from each touch the ledger holds (touches are not
logged twice: the ``touch`` row already says when it was pulled and what it carried).
``prune`` deletes rows older than the retention (``sync_log.retention``, default 30 days); the
scheduler calls it once a day.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, or_, select

from sync.ledger.dialect import append_rows
from sync.ledger.models import SyncLogEntry, SyncLogOperation, TouchRow
from sync.ledger.types import utcnow
from sync.logs import redact

__all__ = [
    "DEFAULT_LIMIT",
    "STEP_LABELS",
    "LogEntry",
    "LogEntryView",
    "compress",
    "decompress",
    "prune",
    "record",
    "rows",
    "story",
]

_LOG = SyncLogEntry.__table__  # type: ignore[attr-defined]
_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
DEFAULT_LIMIT = 1000
# Answers longer than this are cut (a vendor's HTML error page says nothing more at 100 KB).
_ANSWER_MAX = 4000
_OPERATIONS = frozenset(op.value for op in SyncLogOperation)
# How ``closedloop log`` (and the health page) names each operation.
STEP_LABELS = {
    "pull": "pulled",
    "match": "matched",
    "map": "mapped",
    "create": "sent: created",
    "update": "sent: updated",
    "skip": "skipped",
    "refuse": "refused",
    "replay": "replayed",
}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One step to log; ``at`` None means now."""

    pipeline: str
    crm: str
    operation: str
    touch_key: str | None = None
    email: str | None = None
    crm_id: str | None = None
    payload: Mapping[str, Any] | None = None
    answer: str | None = None
    run_id: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogEntryView:
    """One logged step as read back: the payload decompressed to a dict."""

    id: int
    at: datetime
    pipeline: str
    touch_key: str | None
    email: str | None
    crm: str
    crm_id: str | None
    operation: str
    payload: dict[str, Any] | None
    answer: str | None
    run_id: int | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``at`` as ISO 8601)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "pipeline": self.pipeline,
            "touch_key": self.touch_key,
            "email": self.email,
            "crm": self.crm,
            "crm_id": self.crm_id,
            "operation": self.operation,
            "payload": self.payload,
            "answer": self.answer,
            "run_id": self.run_id,
        }


def compress(payload: Mapping[str, Any] | None) -> bytes | None:
    """zlib of the compact JSON of ``payload`` (values JSON lacks are written as text)."""
    if payload is None:
        return None
    # A 4 KB window and a small state: zlib's defaults allocate and clear about 256 KB per call,
    # ten times the work of compressing a CRM record (payloads are a few hundred bytes).
    packer = zlib.compressobj(1, zlib.DEFLATED, 12, 4)
    data = orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
    return packer.compress(data) + packer.flush()


def decompress(blob: bytes | None) -> dict[str, Any] | None:
    """The payload ``compress`` stored (None for none, or for bytes that are not one)."""
    if blob is None:
        return None
    try:
        value = orjson.loads(zlib.decompress(blob))
    except (zlib.error, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else {"value": value}


def _answer(text: str | None) -> str | None:
    if text is None:
        return None
    masked: str = redact(text)
    return masked if len(masked) <= _ANSWER_MAX else masked[: _ANSWER_MAX - 1] + "…"


def record(conn: Connection, entries: Iterable[LogEntry | Mapping[str, Any]]) -> int:
    """Insert ``entries`` (or rows ``rows`` made of them beforehand, so that a caller can
    compress outside its transaction) with one bulk insert on ``conn``, in the caller's
    transaction; returns how many rows were written."""
    ready = [e if isinstance(e, Mapping) else rows([e])[0] for e in entries]
    append_rows(conn, _LOG, ready)
    return len(ready)


def rows(entries: Iterable[LogEntry]) -> list[dict[str, Any]]:
    """The ``sync_log`` rows of ``entries``: payloads compressed, answers masked and cut."""
    now = utcnow()
    return [
        {
            "at": e.at or now,
            "pipeline": e.pipeline,
            "touch_key": e.touch_key,
            "email": e.email,
            "crm": e.crm,
            "crm_id": e.crm_id,
            "operation": _operation(e.operation),
            "payload": compress(e.payload),
            "answer": _answer(e.answer),
            "run_id": e.run_id,
        }
        for e in entries
    ]


def _operation(value: str) -> str:
    text = str(value)
    if text not in _OPERATIONS:
        raise ValueError(f"unknown sync log operation {text!r}; one of {sorted(_OPERATIONS)}")
    return text


def _view(row: Any) -> LogEntryView:
    return LogEntryView(
        id=row.id,
        at=row.at,
        pipeline=row.pipeline,
        touch_key=row.touch_key,
        email=row.email,
        crm=row.crm,
        crm_id=row.crm_id,
        operation=row.operation,
        payload=decompress(row.payload),
        answer=row.answer,
        run_id=row.run_id,
    )


def story(
    conn: Connection,
    *,
    email: str | None = None,
    touch_key: str | None = None,
    crm_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[LogEntryView]:
    """Every logged step of a person (``email``), a touch (``touch_key``) or a CRM record
    (``crm_id``), oldest first: the newest ``limit`` steps.

    The steps of the touches involved come along (a CRM id's story includes the steps of the
    touches written to it, a touch's story the matching of its person), and each touch the
    ledger holds adds its ``pull`` step (``id`` 0: it comes from the ``touch`` table, not the
    log)."""
    if sum(x is not None for x in (email, touch_key, crm_id)) != 1:
        raise ValueError("story needs exactly one of email, touch_key or crm_id")
    if email is not None:
        email = email.strip().lower()
        touches = select(_TOUCH.c.key).where(_TOUCH.c.email == email).limit(limit)
        keys = set(conn.execute(touches).scalars())
        condition = _LOG.c.email == email
    elif crm_id is not None:
        keys = set(
            conn.execute(
                select(_LOG.c.touch_key)
                .where(_LOG.c.crm_id == crm_id, _LOG.c.touch_key.is_not(None))
                .distinct()
                .limit(limit)
            ).scalars()
        )
        condition = _LOG.c.crm_id == crm_id
    else:
        assert touch_key is not None
        keys = {touch_key}
        condition = _LOG.c.touch_key == touch_key
        # The matching of the touch's person (logged per person, not per touch).
        person = conn.execute(
            select(_TOUCH.c.email).where(_TOUCH.c.key == touch_key)
        ).scalar_one_or_none()
        if person:
            condition = or_(condition, and_(_LOG.c.email == person, _LOG.c.touch_key.is_(None)))
    if keys:
        condition = or_(condition, _LOG.c.touch_key.in_(sorted(keys)))
    rows = conn.execute(
        select(_LOG).where(condition).order_by(_LOG.c.at.desc(), _LOG.c.id.desc()).limit(limit)
    ).all()
    views = [_view(row) for row in rows]
    views.extend(_pulled(conn, keys | {v.touch_key for v in views if v.touch_key}))
    views.sort(key=lambda v: (v.at, v.operation != "pull", v.id))
    return views[-limit:]


def _pulled(conn: Connection, keys: set[str]) -> list[LogEntryView]:
    """A ``pull`` step for each of ``keys`` the ledger's ``touch`` table holds."""
    wanted = sorted(keys)
    out: list[LogEntryView] = []
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(_TOUCH).where(_TOUCH.c.key.in_(wanted[start : start + 500]))
        ).all()
        for row in rows:
            out.append(
                LogEntryView(
                    id=0,
                    at=row.pulled_at,
                    pipeline="",
                    touch_key=row.key,
                    email=row.email,
                    crm=row.source,
                    crm_id=row.source_id,
                    operation=SyncLogOperation.PULL.value,
                    payload={
                        "kind": row.kind,
                        "occurred_at": row.occurred_at.isoformat(),
                        "campaign": row.campaign,
                        "channel": row.channel,
                        "asset": row.asset,
                        "attributes": row.attributes or {},
                    },
                    answer=None,
                    run_id=None,
                )
            )
    return out


def prune(conn: Connection, older_than: datetime) -> int:
    """Delete the log rows written before ``older_than``; returns how many went."""
    result = conn.execute(delete(_LOG).where(_LOG.c.at < older_than))
    return int(result.rowcount or 0)
