"""Dead letters: replaying refused touches through map + push, or discarding them.

A replay looks up the touch behind each open dead letter of a touches pipeline and sends it
through the same ``Deliverer`` as a run (resolve, current mapping, intended -> push ->
confirmed), recorded as a run of that pipeline. A dead letter whose touch is now confirmed in
the CRM is marked ``replayed``; one that fails again stays open with ``attempts`` + 1 and the
new reason in its delivery. A refused campaign membership's letter counts as replayed only when
the membership lands too. Records refused before they reached the ledger (file rows, webhook
items: stage ``pull``) cannot be replayed: fix the file or the sender and send them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, select, update

from connectors.errors import ConfigError
from sync.ledger.models import (
    DeadLetterRow,
    DeadLetterStatus,
    DeliveryRow,
    DeliveryState,
    RunState,
    TouchRow,
)
from sync.ledger.types import utcnow
from sync.pipelines.context import RunContext
from sync.pipelines.deliveries import Deliverer, Pending
from sync.pipelines.rows import touch_from_row
from sync.pipelines.runner import RunSummary, finish_run, run_fingerprints, start_run
from sync.synclog import LogEntry
from sync.synclog import record as log_steps

if TYPE_CHECKING:
    from sync.config import Config
    from sync.connections import Connections

__all__ = ["ReplayReport", "discard_dead_letters", "replay_dead_letters"]

_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]


@dataclass
class ReplayReport:
    """What a replay did: ids replayed, ids still failing, ids skipped with the reason."""

    replayed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def _open_letters(engine: Engine, ids: Sequence[int] | None, pipeline: str | None) -> list[Any]:
    query = select(_DEAD).where(_DEAD.c.status == DeadLetterStatus.OPEN.value)
    if ids is not None:
        query = query.where(_DEAD.c.id.in_(list(ids)))
    if pipeline is not None:
        query = query.where(_DEAD.c.pipeline == pipeline)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(_DEAD.c.id)).all())


def replay_dead_letters(
    config: Config,
    engine: Engine,
    connections: Connections,
    *,
    ids: Sequence[int] | None = None,
    pipeline: str | None = None,
) -> ReplayReport:
    """Replay open dead letters (``ids``, or every open one of ``pipeline`` / all)."""
    from sync.pipelines.touches import load_pipeline_mapping

    report = ReplayReport()
    letters = _open_letters(engine, ids, pipeline)
    if ids is not None:
        found = {row.id for row in letters}
        for missing in ids:
            if missing not in found:
                report.skipped[missing] = "no open dead letter with this id"
    by_pipeline: dict[str, list[Any]] = defaultdict(list)
    for row in letters:
        by_pipeline[row.pipeline].append(row)
    for name, rows in by_pipeline.items():
        spec = config.pipelines.get(name)
        if spec is None or spec.kind != "touches" or spec.sink is None:
            why = (
                "refused before it reached the ledger: fix the source and send it again"
                if spec is None
                else f"pipeline {name!r} is of kind {spec.kind}; only touches can be replayed"
            )
            for row in rows:
                report.skipped[row.id] = why
            continue
        run_id, started = start_run(engine, name, None, fingerprints=run_fingerprints(config, name))
        ctx = RunContext(
            config=config, name=name, pipeline=spec, engine=engine, connections=connections,
            run_id=run_id, started_at=started, fence=None, stop=None, progress=None, since=None,
        )  # fmt: skip
        summary = RunSummary(run_id, name, spec.kind, RunState.SUCCEEDED.value, started)
        try:
            _replay_rows(ctx, spec.sink, rows, report, load_pipeline_mapping(ctx))
        except Exception as exc:
            summary.state = RunState.FAILED.value
            summary.error = f"replay: {type(exc).__name__}: {exc}"
            raise
        finally:
            summary.finished_at = utcnow()
            summary.counts = {"replayed": len(report.replayed), **dict(ctx.counts)}
            finish_run(engine, summary)
    return report


def _replay_rows(
    ctx: RunContext,
    sink: str,
    rows: Sequence[Any],
    report: ReplayReport,
    mapping: object,
) -> None:
    keys = {row.record_key for row in rows if row.record_key}
    with ctx.engine.connect() as conn:
        touches = {
            r.key: r for r in conn.execute(select(_TOUCH).where(_TOUCH.c.key.in_(list(keys))))
        }
    pending = [Pending(t.id, touch_from_row(t)) for t in touches.values()]
    for row in rows:
        if row.record_key not in touches:
            report.skipped[row.id] = "its touch is not in the ledger"
    if not pending:
        return
    crm = ctx.connections.crm(sink)
    deliverer = Deliverer(ctx, crm, sink, mapping)  # type: ignore[arg-type]
    deliverer.push(deliverer.prepare(pending))
    with ctx.engine.begin() as conn:
        states: dict[str, str] = dict(
            conn.execute(
                select(_TOUCH.c.key, _DELIVERY.c.state)
                .join(
                    _DELIVERY, and_(_DELIVERY.c.touch_id == _TOUCH.c.id, _DELIVERY.c.sink == sink)
                )
                .where(_TOUCH.c.key.in_(list(touches)))
            ).all()
        )
        now = utcnow()
        steps: list[LogEntry] = []
        for row in rows:
            if row.record_key not in touches:
                continue
            ok = states.get(row.record_key) == DeliveryState.CONFIRMED.value
            if _is_member_letter(row) and row.record_key in deliverer.member_failures:
                ok = False  # the touch landed again, but its campaign membership did not
            if _is_opt_out_letter(row):
                ok = row.record_key in deliverer.opted_out  # the letter is the opt-out's
            values = {"attempts": _DEAD.c.attempts + 1}
            if ok:
                values.update(status=DeadLetterStatus.REPLAYED.value, resolved_at=now)
                report.replayed.append(row.id)
            else:
                report.failed.append(row.id)
            conn.execute(update(_DEAD).where(_DEAD.c.id == row.id).values(**values))
            steps.append(LogEntry(
                pipeline=ctx.name, crm=sink, operation="replay", touch_key=row.record_key,
                email=touches[row.record_key].email, run_id=ctx.run_id, at=ctx.started_at,
                answer=f"dead letter {row.id} replayed: "
                + ("resolved" if ok else "still failing, left open"),
            ))  # fmt: skip
        log_steps(conn, steps)


def _is_member_letter(row: Any) -> bool:
    """A dead letter of a refused campaign membership (its touch itself was delivered)."""
    return isinstance(row.payload, dict) and "campaign_member" in row.payload


def _is_opt_out_letter(row: Any) -> bool:
    """A dead letter of a refused email opt-out (its touch itself may be delivered or
    filtered)."""
    return isinstance(row.payload, dict) and "opt_out" in row.payload


def discard_dead_letters(engine: Engine, ids: Sequence[int]) -> list[int]:
    """Mark open dead letters as discarded (kept for the record); returns the ids changed."""
    if not ids:
        raise ConfigError("give the ids of the dead letters to discard")
    with engine.begin() as conn:
        changed = conn.execute(
            update(_DEAD)
            .where(_DEAD.c.id.in_(list(ids)), _DEAD.c.status == DeadLetterStatus.OPEN.value)
            .values(status=DeadLetterStatus.DISCARDED.value, resolved_at=utcnow())
            .returning(_DEAD.c.id)
        )
        return sorted(int(i) for i in changed.scalars())
