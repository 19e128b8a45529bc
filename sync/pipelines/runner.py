"""Running one pipeline once: the run record, checkpoints, fencing and the outcome.

``run_pipeline`` is the single entry point of the CLI (``closedloop sync``), the scheduler
(``closedloop serve``) and the demo. It records a ``SyncRunRow``, hands a ``RunContext`` to the
pipeline of the configured kind, and turns how the pipeline ended into the run's state:

========================  ============  =========================================
pipeline ended with       run state     what happens next
========================  ============  =========================================
nothing left to do        succeeded
``stop`` set              interrupted   the current batch was finished and committed
``RateLimited``           interrupted   the error says when to resume
a budget reached          interrupted   "budget reached; resumes at ..." (``sync.budgets``)
``FenceLost``             failed        re-raised: another replica holds the lease
anything else             failed        the message is kept in the run record
========================  ============  =========================================

Idle runs. A run that succeeds having found nothing to do (every count zero, or only touches the
ledger already had) is no news: with ``keep_idle=False`` (``closedloop serve``) its ``sync_run``
row is deleted as it finishes, so a pipeline scheduled ``every: 1s`` does not add 86,400 rows a
day. Every finished run, idle or not, updates the pipeline's ``CHECKED_STREAM`` cursor in place
with its finish time: ``closedloop runs`` and ``/metrics`` show when each pipeline last looked.

Fencing: every checkpoint (cursor and the rows it covers, intended and confirmed deliveries)
goes through ``RunContext.transaction``, which first re-reads the lease row with a conditional
UPDATE in the SAME transaction. On PostgreSQL that UPDATE also locks the lease row until the
commit, so a replica taking the lease over waits for our commit or makes us roll back; a stale
holder can never write after a new token was issued. Without a fence (the CLI on SQLite, one
process) no lease is checked.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, select, update

from connectors.base import Cursor
from connectors.errors import ClosedloopError, ConfigError, RateLimited
from sync.ledger.models import CursorRow, RunState, SyncRunRow
from sync.ledger.types import utcnow
from sync.pipelines.context import (
    Fence,
    FenceLost,
    Progress,
    RunContext,
    Stopped,
    save_cursor,
)
from sync.pipelines.memory import settle as settle_memory

if TYPE_CHECKING:
    from sync.config import Config
    from sync.connections import Connections

__all__ = [
    "CHECKED_STREAM",
    "RunSummary",
    "finish_run",
    "last_checked",
    "run_pipeline",
    "start_run",
    "summary_from_row",
]

log = structlog.get_logger(__name__)

CHECKED_STREAM = "checked"
"""The cursor stream holding, as its value, when a pipeline's last run finished (idle or not)."""
# Counts a run may have without having done anything: it read what the ledger already had.
_IDLE_COUNTS = frozenset({"pulled", "duplicates"})

_RUN = SyncRunRow.__table__  # type: ignore[attr-defined]
_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]


@dataclass
class RunSummary:
    """What one run did: counts, API calls per connection against the minimum, the outcome."""

    run_id: int
    pipeline: str
    kind: str
    state: str
    started_at: datetime
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    api_calls: dict[str, int] = field(default_factory=dict)
    minimum_calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    resume_at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        """True when the run succeeded with nothing new: no touch stored, delivered or refused."""
        return self.state == RunState.SUCCEEDED.value and not any(
            amount for name, amount in self.counts.items() if name not in _IDLE_COUNTS
        )

    @property
    def ok(self) -> bool:
        """True unless the run failed (an interrupted run is not a failure)."""
        return self.state != RunState.FAILED.value

    @property
    def duration_s(self) -> float:
        """Seconds from start to finish (to now while running)."""
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()

    def count(self, name: str) -> int:
        """One count by name (0 when the run never counted it)."""
        return self.counts.get(name, 0)


def _run_owner(fence: Fence | None) -> str:
    if fence is not None:
        return fence.owner
    return f"{socket.gethostname()}:{os.getpid()}"


def _close_abandoned_runs(engine: Engine, pipeline: str, run_id: int) -> None:
    """Runs of ``pipeline`` still "running" belong to a process that died: mark them so."""
    with engine.begin() as conn:
        conn.execute(
            update(_RUN)
            .where(
                _RUN.c.pipeline == pipeline,
                _RUN.c.state == RunState.RUNNING.value,
                _RUN.c.id != run_id,
            )
            .values(
                state=RunState.INTERRUPTED.value,
                finished_at=utcnow(),
                error="the process running it ended without finishing (crash, kill or restart)",
            )
        )


def _dispatch(kind: str) -> Callable[[RunContext], None]:
    if kind == "touches":
        from sync.pipelines.touches import run_touches

        return run_touches
    if kind == "dispositions":
        from sync.pipelines.dispositions import run_dispositions

        return run_dispositions
    if kind == "reconcile":
        from sync.pipelines.reconcile import run_reconcile

        return run_reconcile
    if kind == "recycle":
        return _recycle
    if kind == "attribution":
        from sync.writeback.pipelines import run_attribution_pipeline

        return run_attribution_pipeline
    if kind == "sla-writeback":
        from sync.writeback.pipelines import run_sla_writeback

        return run_sla_writeback
    raise ConfigError(f"unknown pipeline kind {kind!r}")


def _recycle(ctx: RunContext) -> None:
    """The recycle pipeline kind: recycled leads -> the marketing side's nurture list."""
    from sync.recycle import run_recycle

    for key, value in run_recycle(ctx).items():
        ctx.add(key, value)


def run_fingerprints(config: Config, name: str) -> dict[str, str | None]:
    """sha256 prefixes of the effective config (secrets masked) and of pipeline ``name``'s
    mapping file: which settings a run used (shown on the sync-health page)."""
    import hashlib
    import json

    shown = json.dumps(config.display(), sort_keys=True, default=str).encode()
    mapping = getattr(config.pipelines.get(name), "mapping", None)
    mapping_digest = None
    if mapping is not None:
        try:
            mapping_digest = hashlib.sha256(mapping.read_bytes()).hexdigest()[:12]
        except OSError:
            mapping_digest = None
    return {
        "config_fingerprint": hashlib.sha256(shown).hexdigest()[:12],
        "mapping_fingerprint": mapping_digest,
    }


def start_run(
    engine: Engine,
    name: str,
    fence: Fence | None,
    *,
    clock: Callable[[], datetime] = utcnow,
    fingerprints: dict[str, str | None] | None = None,
) -> tuple[int, datetime]:
    """Insert the ``sync_run`` row of a new run of ``name``; returns its id and start time."""
    started = clock()
    with engine.begin() as conn:
        run_id = int(
            conn.execute(
                _RUN.insert()
                .values(
                    pipeline=name,
                    owner=_run_owner(fence),
                    started_at=started,
                    state=RunState.RUNNING.value,
                    counts={},
                    api_calls={},
                    **(fingerprints or {}),
                )
                .returning(_RUN.c.id)
            ).scalar_one()
        )
    if fence is not None or engine.dialect.name == "sqlite":
        _close_abandoned_runs(engine, name, run_id)
    return run_id, started


def _execute(ctx: RunContext, summary: RunSummary) -> FenceLost | None:
    """Run the pipeline and set the summary's state and error from how it ended."""
    try:
        if ctx.budget is not None:
            ctx.budget.check()  # nothing to start when the budget is already spent
        _dispatch(ctx.pipeline.kind)(ctx)
        summary.state = RunState.SUCCEEDED.value
    except Stopped:
        summary.state = RunState.INTERRUPTED.value
        summary.error = "stopped on request after committing the current batch"
    except RateLimited as exc:
        from sync.budgets import BudgetReached

        summary.state = RunState.INTERRUPTED.value
        # A connector's own guard may stop a call first: the budget then says why and when.
        reached = exc if isinstance(exc, BudgetReached) else None
        if reached is None and ctx.budget is not None:
            reached = ctx.budget.reached()
        if reached is not None:
            summary.resume_at = reached.resume_at
            summary.error = str(reached)
            return None
        summary.resume_at = exc.resume_at
        when = exc.resume_at.isoformat() if exc.resume_at else f"in {exc.retry_after:.0f} s"
        summary.error = f"rate limited: {exc} (resume {when})"
    except FenceLost as exc:
        summary.state = RunState.FAILED.value
        summary.error = str(exc)
        return exc
    except ClosedloopError as exc:
        summary.state = RunState.FAILED.value
        summary.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug in one run must not kill the scheduler
        log.exception("run crashed", pipeline=ctx.name, run_id=ctx.run_id)
        summary.state = RunState.FAILED.value
        summary.error = f"unexpected {type(exc).__name__}: {exc}"
    return None


def finish_run(engine: Engine, summary: RunSummary) -> None:
    """Write the outcome of a run into its ``sync_run`` row."""
    _finish_run(engine, summary)


def run_pipeline(
    config: Config,
    name: str,
    engine: Engine,
    *,
    fence: Fence | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    connections: Connections | None = None,
    since: datetime | None = None,
    clock: Callable[[], datetime] = utcnow,
    keep_idle: bool = True,
    pulled_since: datetime | None = None,
) -> RunSummary:
    """Run pipeline ``name`` once, batch by batch, and record the run; see the module doc.

    ``clock`` dates the run; its start is the ``until`` of every pull (the demo passes the
    clock of its sandbox's world). ``keep_idle=False`` deletes the run's row when it was idle.
    ``pulled_since``: a source another pipeline pulled up to this moment is not pulled again
    (the scheduler passes the tick; default: the run's start)."""
    from sync.budgets import BudgetGate, record_calls
    from sync.connections import Connections

    settle_memory()  # once per process: see sync.pipelines.memory
    pipeline = config.pipelines.get(name)
    if pipeline is None:
        known = ", ".join(sorted(config.pipelines)) or "(none)"
        raise ConfigError(f"no pipeline named {name!r}; configured pipelines: {known}")
    run_id, started = start_run(
        engine, name, fence, clock=clock, fingerprints=run_fingerprints(config, name)
    )
    own_connections = connections is None
    conns = connections if connections is not None else Connections(config)
    calls_before = conns.api_calls()
    gate = BudgetGate(config, engine, conns, name, backfill=since is not None)
    ctx = RunContext(
        config=config,
        name=name,
        pipeline=pipeline,
        engine=engine,
        connections=conns,
        run_id=run_id,
        started_at=started,
        fence=fence,
        stop=stop,
        progress=progress,
        since=since,
        budget=gate if gate.names and not conns.dry_run else None,
        pulled_since=pulled_since,
    )
    summary = RunSummary(run_id, name, pipeline.kind, RunState.RUNNING.value, started)
    log.info("run started", pipeline=name, run_id=run_id, kind=pipeline.kind)
    try:
        lost = _execute(ctx, summary)
    finally:
        calls_after = conns.api_calls()
        # Today's calls, in the ledger for every process's budget and forecast.
        for conn_name in [] if conns.dry_run else gate.names:
            spent = conns.unrecorded_calls(conn_name, take=True)
            try:
                record_calls(engine, config, conn_name, spent, connector=conns.built(conn_name))
            except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more
                log.warning("calls not counted", connection=conn_name, error=type(exc).__name__)
        if own_connections:
            conns.close()
    summary.finished_at = clock()
    summary.counts = dict(ctx.counts)
    summary.api_calls = {
        conn_name: calls_after[conn_name] - calls_before.get(conn_name, 0)
        for conn_name in calls_after
        if calls_after[conn_name] - calls_before.get(conn_name, 0) > 0
    }
    summary.minimum_calls = dict(ctx.minimum_calls)
    summary.notes = list(ctx.notes)
    token = fence.token if fence is not None else None
    _finish_run(engine, summary, keep=keep_idle or not summary.idle, token=token)
    log.info(
        "run finished",
        pipeline=name,
        run_id=run_id,
        state=summary.state,
        counts=summary.counts,
        api_calls=summary.api_calls,
        error=summary.error,
    )
    if lost is not None:
        raise lost
    return summary


def _finish_run(
    engine: Engine, summary: RunSummary, *, keep: bool = True, token: int | None = None
) -> None:
    if not keep:
        try:
            with engine.begin() as conn:
                conn.execute(_RUN.delete().where(_RUN.c.id == summary.run_id))
                _checked(conn, summary, token)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a row that points at it: keep the run
            log.warning("idle run kept", run_id=summary.run_id, error=type(exc).__name__)
    counts: dict[str, Any] = dict(summary.counts)
    counts["kind"] = summary.kind
    if summary.minimum_calls:
        counts["minimum_calls"] = dict(summary.minimum_calls)
    if summary.notes:
        counts["notes"] = list(summary.notes)
    if summary.resume_at is not None:
        counts["resume_at"] = summary.resume_at.isoformat()
    with engine.begin() as conn:
        conn.execute(
            update(_RUN)
            .where(_RUN.c.id == summary.run_id)
            .values(
                state=summary.state,
                finished_at=summary.finished_at,
                counts=counts,
                api_calls=dict(summary.api_calls),
                error=summary.error,
            )
        )
        _checked(conn, summary, token)


def _checked(conn: Connection, summary: RunSummary, token: int | None) -> None:
    """Update the pipeline's ``CHECKED_STREAM`` cursor in place: when its last run finished."""
    when = summary.finished_at or utcnow()
    cursor = Cursor(when.isoformat())
    save_cursor(conn, summary.pipeline, CHECKED_STREAM, cursor, fencing_token=token)


def last_checked(engine: Engine) -> dict[str, datetime]:
    """When each pipeline's last run finished (idle runs included), by pipeline."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_CURSOR.c.pipeline, _CURSOR.c.value).where(_CURSOR.c.stream == CHECKED_STREAM)
        ).all()
    return {row.pipeline: datetime.fromisoformat(row.value) for row in rows if row.value}


def summary_from_row(row: Any) -> RunSummary:
    """A ``RunSummary`` rebuilt from a ``sync_run`` row (``closedloop runs``, /metrics)."""
    counts = dict(row.counts or {})
    minimum = counts.pop("minimum_calls", {}) or {}
    notes = counts.pop("notes", []) or []
    resume = counts.pop("resume_at", None)
    return RunSummary(
        run_id=row.id,
        pipeline=row.pipeline,
        kind=str(counts.pop("kind", "")),
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts={k: int(v) for k, v in counts.items() if isinstance(v, int)},
        api_calls={k: int(v) for k, v in (row.api_calls or {}).items() if isinstance(v, int)},
        minimum_calls={k: int(v) for k, v in minimum.items()},
        error=row.error,
        resume_at=datetime.fromisoformat(resume) if isinstance(resume, str) else None,
        notes=[str(n) for n in notes],
    )
