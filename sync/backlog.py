"""The backlog of a touches pipeline: the touches of its source still waiting for its sink.

Two kinds wait: deliveries intended or failed (a crash's leftovers, "not now" answers, touches
held until MQL), and touches past the pipeline's deliver cursor that have no delivery to the
sink yet (pulled, never attempted). The health page shows the count and the oldest; the
``backlog_age`` alert fires on the oldest; both read it here, so a pipeline that stopped
delivering ages its alert even when it never attempted its new touches.

The age of a retry is counted from its last attempt (``intended_at``), of a new touch from
when it was pulled. Every query is an index range: retries by ``delivery (sink, state)``, new
touches from the cursor on by the primary key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from sync.ledger.models import CursorRow, DeliveryRow, DeliveryState, TouchRow
from sync.ledger.types import aggregate_time

__all__ = ["DELIVER_STREAM", "Backlog", "BacklogReader"]

# The touches pipeline's cursor of the highest touch id it prepared (``sync.pipelines.touches``).
DELIVER_STREAM = "deliver"

_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]
_WAITING = (DeliveryState.INTENDED.value, DeliveryState.FAILED.value)


@dataclass(frozen=True)
class Backlog:
    """How many touches wait, and since when the oldest does (None when none waits)."""

    waiting: int
    oldest: datetime | None


class BacklogReader:
    """Backlogs read in one connection: each sink's retries and the cursors read once."""

    def __init__(self, conn: Any, cursors: Mapping[str, int] | None = None) -> None:
        self.conn = conn
        self.cursors = dict(cursors) if cursors is not None else deliver_cursors(conn)
        self._retries: dict[str, dict[str, tuple[int, datetime | None]]] = {}

    def backlog(self, pipeline: str, source: str, sink: str) -> Backlog:
        """The backlog of ``pipeline`` (reading ``source`` into ``sink``)."""
        if sink not in self._retries:
            self._retries[sink] = _retries(self.conn, sink)
        retry_count, retry_oldest = self._retries[sink].get(source, (0, None))
        after = self.cursors.get(pipeline, 0)
        # After a cursor, ``source || ''`` (which no index serves) makes the database read the
        # short range of the primary key past it, not every touch of the source through the
        # (source, source_id) index that SQLite picks for a plain ``source = ?``.
        by_source = _TOUCH.c.source.concat("") if after else _TOUCH.c.source
        new_count, new_oldest = self.conn.execute(
            select(func.count(), func.min(_TOUCH.c.pulled_at))
            .select_from(
                _TOUCH.outerjoin(
                    _DELIVERY, and_(_DELIVERY.c.touch_id == _TOUCH.c.id, _DELIVERY.c.sink == sink)
                )
            )
            .where(by_source == source, _TOUCH.c.id > after, _DELIVERY.c.id.is_(None))
        ).one()
        oldest = [t for t in (retry_oldest, aggregate_time(new_oldest)) if t is not None]
        return Backlog(retry_count + int(new_count), min(oldest) if oldest else None)


def deliver_cursors(conn: Any) -> dict[str, int]:
    """Each touches pipeline's deliver cursor (the highest touch id it prepared)."""
    return {
        pipeline: int(value)
        for pipeline, value in conn.execute(
            select(_CURSOR.c.pipeline, _CURSOR.c.value).where(_CURSOR.c.stream == DELIVER_STREAM)
        )
        if value and str(value).isdigit()
    }


def _retries(conn: Any, sink: str) -> dict[str, tuple[int, datetime | None]]:
    """Deliveries to ``sink`` waiting for a retry, per touch source: count and oldest attempt."""
    return {
        source: (int(count), aggregate_time(oldest))
        for source, count, oldest in conn.execute(
            select(_TOUCH.c.source, func.count(), func.min(_DELIVERY.c.intended_at))
            .select_from(_DELIVERY.join(_TOUCH, _TOUCH.c.id == _DELIVERY.c.touch_id))
            .where(_DELIVERY.c.sink == sink, _DELIVERY.c.state.in_(_WAITING))
            .group_by(_TOUCH.c.source)
        )
    }
