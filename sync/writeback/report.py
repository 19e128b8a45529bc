"""What a write-back did, and where its refused records go (the dead-letter table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, insert, select, update

from connectors.errors import RecordRejected
from sync.ledger.models import DeadLetterRow, DeadLetterStage, DeadLetterStatus
from sync.ledger.types import utcnow

__all__ = ["WritebackReport", "dead_letter"]

_DEAD: Table = DeadLetterRow.__table__  # type: ignore[attr-defined]


@dataclass
class WritebackReport:
    """One write-back to one CRM connection: what changed, what was refused, the calls made."""

    crm: str
    target: str  # what was written, as a user says it ("Campaign Influence", "deal properties")
    dry_run: bool
    records: int = 0  # opportunities / people the write-back speaks for
    counts: dict[str, int] = field(default_factory=dict)  # created, updated, deleted, ...
    rejected: list[RecordRejected] = field(default_factory=list)
    # Refused "not now" (a record lock the connector's retries did not get past): the next
    # run writes them; never dead letters.
    deferred: list[RecordRejected] = field(default_factory=list)
    read_calls: int = 0
    write_calls: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """Records written (or, dry, to write)."""
        return sum(n for name, n in self.counts.items() if name != "unchanged")

    def line(self) -> str:
        """One line for the terminal."""
        verb = "would change" if self.dry_run else "changed"
        parts = [f"{name} {n:,}" for name, n in self.counts.items()]
        refused = f", {len(self.rejected):,} refused" if self.rejected else ""
        if self.deferred:
            refused += f", {len(self.deferred):,} locked by another process (next run)"
        return (
            f"{self.crm}: {self.target}: {verb} {self.changes:,} record(s) "
            f"({', '.join(parts) or 'nothing to do'}){refused}; "
            f"{self.read_calls} read and {self.write_calls} write API call(s)"
        )


def dead_letter(
    engine: Engine,
    pipeline: str,
    rejected: Sequence[RecordRejected],
    payload: Mapping[str, Any],
    *,
    deferred: Sequence[RecordRejected] = (),
) -> None:
    """Keep the dead letters of one write-back to one CRM (``payload["crm"]``) in step with its
    latest run.

    A write-back writes the whole wanted state every run, so an open letter of that CRM whose
    record was not refused this time has been written since (or is no longer wanted): it is
    marked replayed. A record refused again keeps its one open letter (one more attempt, the
    newest reason), so a write-back on a schedule does not pile up a letter per run. A
    ``deferred`` record (locked, not written this time) gets no letter and leaves an open one
    as it is.
    """
    crm = payload.get("crm")
    now = utcnow()
    with engine.begin() as conn:
        mine = [
            row
            for row in conn.execute(
                select(_DEAD.c.id, _DEAD.c.record_key, _DEAD.c.payload).where(
                    _DEAD.c.pipeline == pipeline,
                    _DEAD.c.status == DeadLetterStatus.OPEN.value,
                )
            )
            if isinstance(row.payload, dict) and row.payload.get("crm") == crm
        ]
        refused_keys = {r.key for r in (*rejected, *deferred) if r.key is not None}
        settled = [row.id for row in mine if row.record_key not in refused_keys]
        if settled:
            conn.execute(
                update(_DEAD)
                .where(_DEAD.c.id.in_(settled))
                .values(status=DeadLetterStatus.REPLAYED.value, resolved_at=now)
            )
        open_by_key = {row.record_key: row.id for row in mine if row.record_key is not None}
        new_rows = []
        for r in rejected:
            values = {"code": r.code, "reason": str(r), "payload": dict(payload)}
            known = open_by_key.get(r.key) if r.key is not None else None
            if known is None:
                new_rows.append(
                    {"pipeline": pipeline, "stage": DeadLetterStage.PUSH.value,
                     "record_key": r.key, **values}
                )  # fmt: skip
            else:
                conn.execute(
                    update(_DEAD)
                    .where(_DEAD.c.id == known)
                    .values(attempts=_DEAD.c.attempts + 1, **values)
                )
        if new_rows:
            conn.execute(insert(_DEAD), new_rows)
