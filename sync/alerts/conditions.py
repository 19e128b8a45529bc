"""The alert conditions as the ledger shows them now, one ``Condition`` per trigger and subject.

- ``run_failed:<pipeline>``: the pipeline's last finished run failed (clears when one succeeds);
- ``dead_letters:<pipeline>``: more open dead letters than ``triggers.dead_letters``;
- ``error_group:<pipeline>:<stage>:<code>``: open dead letters of a (pipeline, stage, code) not
  seen open before (clears when none of the group is open any more);
- ``budget:<connection>``: today's calls of a budgeted connection reached
  ``triggers.budget_share`` of its cap (``sync.budgets``: the vendor's own usage figure where it
  reports one, else closedloop's calls counted in the ledger);
- ``lag:<pipeline>``: the pipeline's last successful run ended longer ago than ``triggers.lag``;
- ``backlog_age:<pipeline>``: the oldest touch waiting for the pipeline's CRM (a retry since its
  last attempt, a touch never attempted since it was pulled: ``sync.backlog``, as the health page
  shows it) has waited longer than ``triggers.backlog_age``;
- ``lease_lost:<pipeline>``: a replica lost the pipeline's lease in the middle of a run (only the
  scheduler that saw it knows: it passes what it saw, and a later run with the lease held clears
  it).

``read_conditions`` also says which triggers it read completely: a condition of such a trigger
that was active and is no longer listed has cleared (an error group with no open letter left).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, select

from sync.backlog import BacklogReader
from sync.durations import parse_duration
from sync.ledger.models import (
    DeadLetterRow,
    DeadLetterStatus,
    RunState,
    SyncRunRow,
)
from sync.ledger.types import aggregate_time
from sync.logs import redact

if TYPE_CHECKING:
    from sync.config import Config

__all__ = [
    "Condition",
    "read_conditions",
]

_RUN = SyncRunRow.__table__  # type: ignore[attr-defined]
_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
_ERROR_MAX = 300


@dataclass(frozen=True)
class Condition:
    """One condition as it stands: whether it holds, with figures and words for a notice."""

    key: str
    trigger: str
    pipeline: str | None
    active: bool
    title: str  # what a notice says when it starts (or, active False, when it clears)
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 72 else f"{hours // 24} d"


def read_conditions(
    conn: Connection,
    config: Config,
    now: datetime,
    *,
    lease_lost: Mapping[str, bool] | None = None,
) -> tuple[list[Condition], set[str]]:
    """The conditions the config's triggers ask for, and the triggers read completely."""

    triggers = config.alerts.triggers
    names = sorted(config.pipelines)
    out: list[Condition] = []
    complete: set[str] = set()
    if triggers.run_failed:
        out.extend(_run_failed(conn, names))
    if triggers.dead_letters is not None or triggers.new_error_group:
        open_counts = _open_letters(conn)
        if triggers.dead_letters is not None:
            out.extend(_dead_letters(open_counts, names, triggers.dead_letters))
        if triggers.new_error_group:
            out.extend(_error_groups(open_counts))
            complete.add("error_group")
    if triggers.budget_share is not None:
        out.extend(_budgets(conn, config, now, triggers.budget_share))
    if triggers.lag is not None:
        out.extend(_lag(conn, names, now, parse_duration(triggers.lag).total_seconds()))
    if triggers.backlog_age is not None:
        limit = parse_duration(triggers.backlog_age).total_seconds()
        out.extend(_backlog(conn, config, now, limit))
    if triggers.lease_lost:
        for name, lost in sorted((lease_lost or {}).items()):
            title = (
                f"{name}: a replica lost its lease in the middle of a run"
                if lost
                else f"{name}: runs hold their lease again"
            )
            detail = (
                "another replica took the pipeline over (the database was slow or the replica "
                "stalled longer than the lease period)"
                if lost
                else "the last run kept its lease to the end"
            )
            out.append(Condition(f"lease_lost:{name}", "lease_lost", name, lost, title, detail))
    return out, complete


def _run_failed(conn: Connection, names: list[str]) -> list[Condition]:
    finished = (RunState.SUCCEEDED.value, RunState.FAILED.value)
    latest = (
        select(_RUN.c.pipeline, func.max(_RUN.c.id).label("id"))
        .where(_RUN.c.state.in_(finished), _RUN.c.pipeline.in_(names))
        .group_by(_RUN.c.pipeline)
        .subquery()
    )
    rows = conn.execute(
        select(_RUN.c.id, _RUN.c.pipeline, _RUN.c.state, _RUN.c.finished_at, _RUN.c.error).join(
            latest, and_(latest.c.id == _RUN.c.id)
        )
    ).all()
    out = []
    for row in rows:
        failed = row.state == RunState.FAILED.value
        error = redact(row.error or "")[:_ERROR_MAX]
        figures: dict[str, Any] = {"run": row.id, "finished": _when(row.finished_at)}
        if failed:
            title = f"{row.pipeline}: the last run failed"
            why = error or "no reason given"
            detail = f"run {row.id} failed at {_when(row.finished_at)}: {why}"
        else:
            title = f"{row.pipeline}: runs succeed again"
            detail = f"run {row.id} succeeded at {_when(row.finished_at)}"
        out.append(
            Condition(f"run_failed:{row.pipeline}", "run_failed", row.pipeline, failed, title,
                      detail, figures)
        )  # fmt: skip
    return out


def _open_letters(conn: Connection) -> dict[tuple[str, str, str], int]:
    rows = conn.execute(
        select(_DEAD.c.pipeline, _DEAD.c.stage, _DEAD.c.code, func.count().label("n"))
        .where(_DEAD.c.status == DeadLetterStatus.OPEN.value)
        .group_by(_DEAD.c.pipeline, _DEAD.c.stage, _DEAD.c.code)
    ).all()
    return {(r.pipeline, r.stage, r.code): int(r.n) for r in rows}


def _dead_letters(
    counts: Mapping[tuple[str, str, str], int], names: list[str], threshold: int
) -> list[Condition]:
    per_pipeline: dict[str, int] = dict.fromkeys(names, 0)
    for (pipeline, _stage, _code), n in counts.items():
        per_pipeline[pipeline] = per_pipeline.get(pipeline, 0) + n
    out = []
    for pipeline, n in sorted(per_pipeline.items()):
        over = n > threshold
        title = (
            f"{pipeline}: {n:,} open dead letters"
            if over
            else f"{pipeline}: open dead letters back to {n:,}"
        )
        detail = f"{n:,} refused records not replayed or discarded (threshold {threshold:,})"
        out.append(Condition(f"dead_letters:{pipeline}", "dead_letters", pipeline, over, title,
                             detail, {"open": n, "threshold": threshold}))  # fmt: skip
    return out


def _error_groups(counts: Mapping[tuple[str, str, str], int]) -> list[Condition]:
    out = []
    for (pipeline, stage, code), n in sorted(counts.items()):
        title = f"{pipeline}: new error {code} at stage {stage}"
        detail = f"{n:,} open dead letter(s) of {pipeline} refused at {stage} with {code}"
        figures = {"open": n, "stage": stage, "code": code}
        out.append(Condition(f"error_group:{pipeline}:{stage}:{code}", "error_group", pipeline,
                             True, title, detail, figures))  # fmt: skip
    return out


def _budgets(conn: Connection, config: Config, now: datetime, threshold: float) -> list[Condition]:
    from sync.budgets import forecasts

    shares = {f.connection: f.used / f.cap for f in forecasts(config, conn, now=now) if f.cap}
    out = []
    for name, share in sorted(shares.items()):
        reached = share >= threshold
        title = (
            f"{name}: {share:.0%} of today's API budget used"
            if reached
            else f"{name}: API budget use back to {share:.0%}"
        )
        detail = f"{share:.0%} of the daily API budget used (alert at {threshold:.0%})"
        out.append(Condition(f"budget:{name}", "budget", None, reached, title, detail,
                             {"share": round(share, 3), "threshold": threshold}))  # fmt: skip
    return out


def _lag(conn: Connection, names: list[str], now: datetime, limit: float) -> list[Condition]:
    rows = conn.execute(
        select(_RUN.c.pipeline, func.max(_RUN.c.finished_at).label("last"))
        .where(_RUN.c.state == RunState.SUCCEEDED.value, _RUN.c.pipeline.in_(names))
        .group_by(_RUN.c.pipeline)
    ).all()
    out = []
    for row in rows:
        last = aggregate_time(row.last)
        if last is None:
            continue
        lag = (now - last).total_seconds()
        behind = lag > limit
        title = (
            f"{row.pipeline}: no successful run for {_age(lag)}"
            if behind
            else f"{row.pipeline}: caught up"
        )
        detail = f"last successful run ended {_when(last)} (alert after {_age(limit)})"
        out.append(Condition(f"lag:{row.pipeline}", "lag", row.pipeline, behind, title, detail,
                             {"lag_s": int(lag), "threshold_s": int(limit)}))  # fmt: skip
    return out


def _backlog(conn: Connection, config: Config, now: datetime, limit: float) -> list[Condition]:
    out = []
    backlogs = BacklogReader(conn)
    for name, spec in sorted(config.pipelines.items()):
        if spec.kind != "touches" or not spec.source or not spec.sink:
            continue
        backlog = backlogs.backlog(name, spec.source, spec.sink)
        oldest = backlog.oldest
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        old = age > limit
        title = (
            f"{name}: touches have waited {_age(age)} for {spec.sink}"
            if old
            else f"{name}: the backlog is fresh again"
        )
        detail = f"{backlog.waiting:,} touches waiting; the oldest since {_when(oldest)}"
        out.append(Condition(f"backlog_age:{name}", "backlog_age", name, old, title, detail,
                             {"waiting": backlog.waiting, "oldest_age_s": int(age),
                              "threshold_s": int(limit)}))  # fmt: skip
    return out
