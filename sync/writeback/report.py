"""What a write-back did, and where its refused records go (the dead-letter table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, insert

from connectors.errors import RecordRejected
from sync.ledger.models import DeadLetterRow, DeadLetterStage

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
) -> None:
    """Record each refusal (the CRM's code and message) as a dead letter of ``pipeline``."""
    if not rejected:
        return
    rows = [
        {
            "pipeline": pipeline,
            "stage": DeadLetterStage.PUSH.value,
            "record_key": r.key,
            "code": r.code,
            "reason": str(r),
            "payload": dict(payload),
        }
        for r in rejected
    ]
    with engine.begin() as conn:
        conn.execute(insert(_DEAD), rows)
