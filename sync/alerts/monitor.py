"""Turning conditions into notices: one when a condition starts, one when it clears.

``AlertMonitor.evaluate`` reads the conditions (``sync.alerts.conditions``), compares each with
its ``alert_state`` row and claims every change with a conditional update (``... WHERE active =
<what it read>``), so that of several replicas evaluating at once only one sends the notice.
While a condition holds nothing more is sent, whatever its figures do. A notice goes to every
channel; when no channel took it the claim is undone, so the next evaluation tries again.

The scheduler evaluates after each tick (``sync.scheduler.Upkeep``), ``closedloop sync`` after
its runs. A config without channels evaluates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, select, update

from sync.alerts.channels import AlertError, Notice, send
from sync.alerts.conditions import Condition, read_conditions
from sync.ledger.dialect import dialect_insert
from sync.ledger.models import AlertStateRow
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.config import Config

__all__ = ["AlertMonitor"]

_STATE = AlertStateRow.__table__  # type: ignore[attr-defined]
_log = structlog.get_logger("closedloop.alerts")


class AlertMonitor:
    """Evaluates the alert triggers of ``config`` on ``engine`` and sends the notices."""

    def __init__(
        self, config: Config, engine: Engine, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        # Pipeline -> whether this process's last run of it lost its lease (scheduler only).
        self.lease_lost: dict[str, bool] = {}

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured (else nothing is evaluated)."""
        return bool(self.config.alerts.channels)

    def after_run(self, pipeline: str, *, lease_lost: bool | None = None) -> list[Notice]:
        """Note what a scheduled run saw of its lease, then evaluate."""
        if lease_lost is not None:
            self.lease_lost[pipeline] = lease_lost
        return self.evaluate()

    def evaluate(self) -> list[Notice]:
        """Send a notice for every condition that started or cleared; returns those sent."""
        if not self.enabled:
            return []
        now = self.clock()
        with self.engine.connect() as conn:
            conditions, complete = read_conditions(conn, self.config, now,
                                                   lease_lost=self.lease_lost)  # fmt: skip
            states = {row.key: row for row in conn.execute(select(_STATE)).all()}
        listed = {c.key for c in conditions}
        for row in states.values():
            if row.active and row.trigger in complete and row.key not in listed:
                conditions.append(self._gone(row))
        sent: list[Notice] = []
        for condition in conditions:
            state = states.get(condition.key)
            was = bool(state.active) if state is not None else False
            if condition.active == was:
                continue
            notice = self._notice(condition, now)
            with self.engine.begin() as conn:
                claimed = self._claim(conn, condition, state is not None, was, now)
            if not claimed:
                continue  # another replica announced it
            if self._deliver(notice):
                sent.append(notice)
            else:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(_STATE)
                        .where(_STATE.c.key == condition.key, _STATE.c.active == condition.active)
                        .values(active=was)
                    )
        return sent

    def _gone(self, row: Any) -> Condition:
        """A condition of a completely read trigger that is no longer listed: it cleared."""
        what = row.key.split(":", 1)[1] if ":" in row.key else row.key
        return Condition(
            row.key, row.trigger, row.pipeline, False, f"{row.pipeline or what}: cleared ({what})",
            "nothing of it is open any more", dict(row.figures or {}),
        )  # fmt: skip

    def _claim(
        self, conn: Connection, condition: Condition, exists: bool, was: bool, now: datetime
    ) -> bool:
        values = {"active": condition.active, "since": now, "figures": condition.figures,
                  "notified_at": now}  # fmt: skip
        if not exists:
            statement = dialect_insert(conn, _STATE).on_conflict_do_nothing(index_elements=["key"])
            done = conn.execute(
                statement,
                {"key": condition.key, "trigger": condition.trigger,
                 "pipeline": condition.pipeline, **values},
            )  # fmt: skip
            return bool(done.rowcount)
        done = conn.execute(
            update(_STATE)
            .where(_STATE.c.key == condition.key, _STATE.c.active == was)
            .values(**values)
        )
        return bool(done.rowcount)

    def _notice(self, condition: Condition, now: datetime) -> Notice:
        return Notice(
            key=condition.key, trigger=condition.trigger, pipeline=condition.pipeline,
            started=condition.active, title=condition.title, detail=condition.detail,
            figures=dict(condition.figures), page_url=self.config.alerts.page_url, at=now,
        )  # fmt: skip

    def _deliver(self, notice: Notice) -> bool:
        """Send ``notice`` to every channel; True when at least one took it."""
        delivered = False
        for name, channel in self.config.alerts.channels.items():
            try:
                send(name, channel, notice)
            except AlertError as exc:
                _log.warning("alert not delivered", channel=name, key=notice.key, error=str(exc))
                continue
            delivered = True
            _log.info("alert sent", channel=name, key=notice.key, started=notice.started)
        return delivered
