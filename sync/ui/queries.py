"""What the page reads from the ledger: pipelines at a glance, error groups, records, runs, audit.

Every query is bounded by an index (see ``benchmarks/bench_health.py``): the last run of a
pipeline by ``(pipeline, started_at)``, the retry backlog by ``delivery (sink, state)``, new
touches from the deliver cursor on, error groups by ``dead_letter (status, group_key,
created_at)``. Lag is as /metrics defines it: now minus the pipeline's newest cursor commit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from sync.backlog import DELIVER_STREAM, BacklogReader
from sync.leases import TICK_STREAM
from sync.ledger.models import (
    CursorRow,
    DeadLetterRow,
    DeadLetterStatus,
    DeliveryRow,
    SyncRunRow,
    TouchRow,
    UiAuditRow,
)
from sync.ledger.types import aggregate_time
from sync.ui.grouping import fill_groups

if TYPE_CHECKING:
    from sync.config import Config

__all__ = [
    "ErrorGroup",
    "PipelineStatus",
    "api_calls_today",
    "audit_entries",
    "error_groups",
    "group_letters",
    "letter_detail",
    "pipeline_statuses",
    "run_detail",
    "runs",
]

_RUN = SyncRunRow.__table__  # type: ignore[attr-defined]
_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]
_AUDIT = UiAuditRow.__table__  # type: ignore[attr-defined]
_OPEN = DeadLetterStatus.OPEN.value
_SENDING = ("create", "update", "refuse")  # sync log operations that carry what was sent
OPEN_CAP = 10_000  # open dead letters counted per pipeline on the overview


@dataclass
class PipelineStatus:
    """One pipeline on the overview."""

    name: str
    kind: str
    enabled: bool
    schedule: str | None
    next_run: datetime | None = None
    last_run: Any = None
    backlog: int | None = None  # touches waiting for the sink (touches pipelines)
    oldest_waiting: datetime | None = None
    lag_seconds: float | None = None
    open_letters: int = 0
    sink: str | None = None


def _next_run(spec: Any, now: datetime) -> datetime | None:
    if spec.schedule is None or not spec.enabled:
        return None
    from sync.scheduler import pipeline_trigger

    fire: datetime | None = pipeline_trigger(spec.schedule).get_next_fire_time(None, now)
    return fire


def pipeline_statuses(config: Config, engine: Engine, now: datetime) -> list[PipelineStatus]:
    """Every pipeline of ``config``: last run, next run, backlog, lag and open dead letters."""
    out: list[PipelineStatus] = []
    with engine.connect() as conn:
        # One count per pipeline from the (pipeline, status) index, stopping past OPEN_CAP: the
        # overview says "over 10,000" and the errors page has the exact figures.
        open_by_pipeline = {
            name: int(
                conn.execute(
                    select(func.count()).select_from(
                        select(_DEAD.c.id)
                        .where(_DEAD.c.pipeline == name, _DEAD.c.status == _OPEN)
                        .limit(OPEN_CAP + 1)
                        .subquery()
                    )
                ).scalar_one()
            )
            for name in config.pipelines
        }
        # The cursor table is small (a row per pipeline and stream): read it once.
        lags: dict[str, datetime] = {}
        delivered: dict[str, int] = {}
        for pipeline, stream, value, updated in conn.execute(
            select(_CURSOR.c.pipeline, _CURSOR.c.stream, _CURSOR.c.value, _CURSOR.c.updated_at)
        ):
            moment = aggregate_time(updated)
            if stream != TICK_STREAM and moment is not None:
                lags[pipeline] = max(lags.get(pipeline, moment), moment)
            if stream == DELIVER_STREAM and value and str(value).isdigit():
                delivered[pipeline] = int(value)
        backlogs = BacklogReader(conn, delivered)
        for name, spec in config.pipelines.items():
            schedule = None
            if spec.schedule is not None:
                schedule = (
                    f"every {spec.schedule.every}" if spec.schedule.every else spec.schedule.cron
                )
            status = PipelineStatus(name, spec.kind, spec.enabled, schedule, sink=spec.sink)
            status.next_run = _next_run(spec, now)
            status.last_run = conn.execute(
                select(_RUN)
                .where(_RUN.c.pipeline == name)
                .order_by(_RUN.c.started_at.desc())
                .limit(1)
            ).first()
            status.open_letters = int(open_by_pipeline.get(name, 0))
            newest = lags.get(name)
            if newest is not None:
                status.lag_seconds = max(0.0, (now - newest).total_seconds())
            if spec.kind == "touches" and spec.source and spec.sink:
                backlog = backlogs.backlog(name, spec.source, spec.sink)
                status.backlog, status.oldest_waiting = backlog.waiting, backlog.oldest
            out.append(status)
    return out


def api_calls_today(config: Config, engine: Engine, now: datetime) -> dict[str, int]:
    """API calls per connection counted by the runs that started today (UTC)."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    total: Counter[str] = Counter()
    with engine.connect() as conn:
        for name in config.pipelines:
            for (calls,) in conn.execute(
                select(_RUN.c.api_calls).where(
                    _RUN.c.pipeline == name, _RUN.c.started_at >= midnight
                )
            ):
                for connection, count in (calls or {}).items():
                    if isinstance(count, int):
                        total[connection] += count
    return dict(total)


@dataclass
class ErrorGroup:
    """Open dead letters that read alike."""

    key: str
    pipeline: str
    stage: str
    code: str
    template: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    replayable: bool = field(default=True)


def error_groups(engine: Engine) -> list[ErrorGroup]:
    """The groups of open dead letters, largest first."""
    fill_groups(engine)
    with engine.connect() as conn:
        counted = conn.execute(
            select(
                _DEAD.c.group_key,
                func.count(),
                func.min(_DEAD.c.created_at),
                func.max(_DEAD.c.created_at),
            )
            .where(_DEAD.c.status == _OPEN)
            .group_by(_DEAD.c.group_key)
        ).all()
        groups: list[ErrorGroup] = []
        keys = [row[0] for row in counted]
        names: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for row in conn.execute(
                select(_DEAD.c.group_key, _DEAD.c.pipeline, _DEAD.c.stage, _DEAD.c.code,
                       _DEAD.c.template)
                .where(_DEAD.c.id.in_(
                    select(func.min(_DEAD.c.id))
                    .where(_DEAD.c.status == _OPEN, _DEAD.c.group_key.in_(chunk))
                    .group_by(_DEAD.c.group_key)
                ))
            ):  # fmt: skip
                names[row.group_key] = row
    for key, count, first, last in counted:
        head = names.get(key)
        if head is None:
            continue
        groups.append(
            ErrorGroup(key, head.pipeline, head.stage, head.code, head.template or "", int(count),
                       aggregate_time(first), aggregate_time(last), replayable=head.stage != "pull")
        )  # fmt: skip
    groups.sort(key=lambda g: (-g.count, g.pipeline, g.stage, g.code, g.template))
    return groups


def group_letters(
    engine: Engine, key: str, limit: int = 200
) -> tuple[ErrorGroup | None, list[Any]]:
    """A group and its open letters (the oldest ``limit``)."""
    fill_groups(engine)
    with engine.connect() as conn:
        count, first, last = conn.execute(
            select(func.count(), func.min(_DEAD.c.created_at), func.max(_DEAD.c.created_at)).where(
                _DEAD.c.status == _OPEN, _DEAD.c.group_key == key
            )
        ).one()
        rows = list(
            conn.execute(
                select(_DEAD)
                .where(_DEAD.c.status == _OPEN, _DEAD.c.group_key == key)
                .order_by(_DEAD.c.created_at, _DEAD.c.id)
                .limit(limit)
            ).all()
        )
    if not rows:
        return None, []
    head = rows[0]
    group = ErrorGroup(key, head.pipeline, head.stage, head.code, head.template or "", int(count),
                       aggregate_time(first), aggregate_time(last),
                       replayable=head.stage != "pull")  # fmt: skip
    return group, rows


def group_ids(engine: Engine, key: str) -> list[int]:
    """The ids of every open letter of a group."""
    with engine.connect() as conn:
        return [
            int(i)
            for i in conn.execute(
                select(_DEAD.c.id).where(_DEAD.c.status == _OPEN, _DEAD.c.group_key == key)
            ).scalars()
        ]


@dataclass
class LetterDetail:
    """One dead letter with its touch, its deliveries and its history."""

    letter: Any
    touch: Any = None
    deliveries: list[Any] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    sent: dict[str, Any] | None = None  # the newest payload the log says was sent (or refused)


def letter_detail(engine: Engine, letter_id: int) -> LetterDetail | None:
    """A dead letter in full, or None."""
    with engine.connect() as conn:
        letter = conn.execute(select(_DEAD).where(_DEAD.c.id == letter_id)).first()
        if letter is None:
            return None
        detail = LetterDetail(letter)
        if letter.record_key:
            detail.touch = conn.execute(
                select(_TOUCH).where(_TOUCH.c.key == letter.record_key)
            ).first()
            if detail.touch is not None:
                detail.deliveries = list(
                    conn.execute(
                        select(_DELIVERY).where(_DELIVERY.c.touch_id == detail.touch.id)
                    ).all()
                )
            for other in conn.execute(
                select(_DEAD)
                .where(_DEAD.c.record_key == letter.record_key)
                .order_by(_DEAD.c.created_at, _DEAD.c.id)
            ):
                detail.history.append(
                    {"at": other.created_at, "what": f"{other.stage} refused ({other.code})",
                     "detail": other.reason, "status": other.status, "run_id": other.run_id,
                     "payload": None, "crm_id": None}
                )  # fmt: skip
    logged = _sync_log(engine, letter.record_key)
    sent = [h for h in logged if h["payload"] and h["what"].split(" ")[0] in _SENDING]
    detail.sent = sent[-1] if sent else None
    detail.history.extend(logged)
    detail.history.sort(key=lambda h: h["at"] or datetime.min.replace(tzinfo=UTC))
    return detail


def _sync_log(engine: Engine, touch_key: str | None) -> list[dict[str, Any]]:
    """The record's story from the row-level sync log (``sync.synclog``)."""
    if not touch_key:
        return []
    from sync.synclog import story

    with engine.connect() as conn:
        entries = story(conn, touch_key=touch_key, limit=100)
    return [
        {"at": e.at, "what": f"{e.operation} ({e.crm})" if e.crm else e.operation,
         "detail": e.answer, "payload": e.payload, "status": None, "run_id": e.run_id,
         "crm_id": e.crm_id}
        for e in entries
    ]  # fmt: skip


def runs(engine: Engine, *, before: int | None = None, limit: int = 50) -> list[Any]:
    """Runs newest first (``before``: older than that run id)."""
    query = select(_RUN).order_by(_RUN.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(_RUN.c.id < before)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def run_detail(engine: Engine, run_id: int, limit: int = 200) -> tuple[Any, list[Any]]:
    """A run and the dead letters its pipeline wrote while it ran."""
    with engine.connect() as conn:
        run = conn.execute(select(_RUN).where(_RUN.c.id == run_id)).first()
        if run is None:
            return None, []
        query = select(_DEAD).where(
            _DEAD.c.pipeline == run.pipeline, _DEAD.c.created_at >= run.started_at
        )
        if run.finished_at is not None:
            query = query.where(_DEAD.c.created_at <= run.finished_at)
        letters = list(conn.execute(query.order_by(_DEAD.c.id).limit(limit)).all())
    return run, letters


def audit_entries(engine: Engine, limit: int = 30) -> list[Any]:
    """The latest actions taken on the page."""
    with engine.connect() as conn:
        return list(conn.execute(select(_AUDIT).order_by(_AUDIT.c.id.desc()).limit(limit)).all())


def since(moment: datetime | None, now: datetime) -> timedelta | None:
    """How long ago ``moment`` was."""
    return None if moment is None else now - moment
