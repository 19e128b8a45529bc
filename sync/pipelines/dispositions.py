"""The dispositions pipeline: CRM status, stage, owner and conversion changes as an append-only
ledger of transitions, translated to the shared lifecycle.

For each page of ``crm.pull_changes("people" | "opportunities", cursor, until=run start)``:
the value each tracked field had before is the newest disposition already recorded for that
record and field (unknown when none: the first observation of a status or stage is recorded
with no old value); every field whose value differs appends one ``disposition`` row (old ->
new, owner, the CRM's change time, and ``lifecycle_stage`` =
``mapping.lifecycle.stage_for(new, field)``: a status or deal stage through the mapping's
``stages``, a HubSpot lifecycle stage through its ``lifecycle_stages``). The person /
opportunity rows are refreshed and the cursor advanced in the same fenced transaction.
Re-pulling a change is a no-op: the table is unique on (crm, object, field, time, new value).

Connectors that report field history directly name ``history_streams`` whose
``StatusChange`` records are stored as is, with the CRM's own times and old values. Those
streams are pulled first, so by the time the current values are polled every change the history
holds is already the newest disposition and polling adds nothing for it; polling only records
what history lacks (an untracked field, a change from before tracking was turned on). History
holds changes, not the value a record was created with: when a record's first recorded change
has an old value, that value is recorded as its first observation at the record's creation.

Reasons (why sales disqualified or recycled a person: the mapping's ``lifecycle.reason_field``,
or ``reason_fields`` per decision, and a Salesforce connection's ``lead_reason_fields``) arrive
as ``ReasonChange`` records: from field history each value written with its own time, from
polling a person's current value at the person's modification time. A rep often saves the
status first and fills in the reason a minute or a day later, and the two may be read in
different pages or runs. The rule:

    The reason of a disqualification or recycle is the first non-empty value written to its
    reason field at the time of the status change or later - from the start of the change's
    second, as Salesforce's field history is precise to the second and a reason saved just
    before the status in that second belongs to it - before the record's next change of that
    field, and at most ``REASON_WINDOW`` (7 days) after the change.

Seven days covers a rep who catches up on the week's paperwork before the weekly pipeline
review, and a reason typed in the next morning; a value set later than that is more likely a
data clean-up or a new judgement than the reason given when the decision was made, and the
bound keeps a stale value from attaching to an old decision. Reasons count only for the
decisions their field explains (a recycle reason field never explains a disqualification; a
field the mapping does not name explains both), and for both person fields a decision shows in
(a HubSpot contact's lead status and its lifecycle stage). A value the field still held when a
person was polled counts as written at the person's modification time (so a reason left over
from an earlier decision counts for a new one polled within the window). Reasons are not kept
apart from decisions: a reason read in a run before the status change it explains is visible
(a row committed late in the same second) explains nothing.

A reason read after its decision was stored fills that decision's empty ``reason`` in place:
transitions stay append-only (a row's values, times and stage never change and no row is
removed); only a NULL reason may later be set, once, to the first reason that explains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog
from sqlalchemy import Connection, Table, bindparam, or_, select, update

from connectors.base import Opportunity, Person, ReasonChange, StatusChange
from connectors.errors import ConfigError
from sync.ledger.dialect import dialect_insert
from sync.ledger.models import DispositionRow, OpportunityRow
from sync.ledger.types import utcnow
from sync.mapping import CompiledLifecycle
from sync.pipelines.reconcile import opportunity_values, pull_stream, upsert_rows
from sync.pipelines.rows import upsert_people

if TYPE_CHECKING:
    from sync.pipelines.context import RunContext

__all__ = [
    "DISPOSITION_STREAMS",
    "REASON_WINDOW",
    "Recorded",
    "history_streams",
    "record_changes",
    "run_dispositions",
]

log = structlog.get_logger(__name__)

DISPOSITION_STREAMS = ("people", "opportunities")
# How long after a disqualification or recycle a reason written to its field still explains it.
REASON_WINDOW = timedelta(days=7)

_DISPOSITION: Table = DispositionRow.__table__  # type: ignore[attr-defined]
_OPPORTUNITY: Table = OpportunityRow.__table__  # type: ignore[attr-defined]
_CHUNK = 500
# Person fields tracked, with whether their first observation is itself a transition.
_PERSON_FIELDS = (("status", True), ("lifecycle_stage", True), ("owner_id", False),
                  ("converted", False))  # fmt: skip
_STAGED = frozenset({"status", "lifecycle_stage", "stage"})
# The person fields a sales decision shows in, each explained by the reasons on its own.
_DECIDED = ("status", "lifecycle_stage")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _person_value(person: Person, name: str) -> str | None:
    return _text(getattr(person, name))


def _known_values(
    conn: Connection, crm: str, object_ids: Sequence[str]
) -> tuple[dict[tuple[str, str], str | None], dict[tuple[str, str], tuple[str | None, datetime]]]:
    """The value each (object id, field) had before this page (its newest disposition), and
    the old value and time of its first disposition.

    Only the disposition history counts, never the ``person`` row: other pipelines refresh
    that row (touch delivery, reconcile) and would hide a transition from this one.
    """
    known: dict[tuple[str, str], str | None] = {}
    first: dict[tuple[str, str], tuple[str | None, datetime]] = {}
    for start in range(0, len(object_ids), _CHUNK):
        chunk = object_ids[start : start + _CHUNK]
        history = conn.execute(
            select(
                _DISPOSITION.c.object_id,
                _DISPOSITION.c.field,
                _DISPOSITION.c.old_value,
                _DISPOSITION.c.new_value,
                _DISPOSITION.c.changed_at,
            )
            .where(_DISPOSITION.c.crm == crm, _DISPOSITION.c.object_id.in_(chunk))
            .order_by(_DISPOSITION.c.changed_at, _DISPOSITION.c.id)
        )
        for row in history:
            key = (row.object_id, row.field)
            known[key] = row.new_value or None
            first.setdefault(key, (row.old_value, row.changed_at))
    return known, first


def _start_of_history(
    first: Mapping[tuple[str, str], tuple[str | None, datetime]],
    key: tuple[str, str],
    created_at: datetime | None,
) -> str | None:
    """The value a record was created with, when its recorded history starts mid-way.

    Field history holds changes only (Open -> MQL, MQL -> Working): the value before the first
    change is the record's value since its creation, which no change row reports.
    """
    if key not in first or created_at is None:
        return None
    old, at = first[key]
    if old is None or created_at >= at:
        return None
    return old


def _row(
    crm: str, run_id: int, change: StatusChange, lifecycle: CompiledLifecycle
) -> dict[str, Any]:
    stage = lifecycle.stage_for(change.new_value, change.field) if change.field in _STAGED else None
    return {
        "crm": crm,
        "object_type": change.object_type,
        "object_id": change.object_id,
        "email": change.email,
        "field": change.field,
        "old_value": change.old_value,
        "new_value": change.new_value or "",
        "lifecycle_stage": stage.value if stage is not None else None,
        "reason": change.reason,
        "owner_id": change.owner_id,
        "changed_at": change.changed_at,
        "observed_at": utcnow(),
        "run_id": run_id,
    }


def _person_changes(conn: Connection, crm: str, people: Sequence[Person]) -> list[StatusChange]:
    ids = [p.external_id for p in people]
    known, first = _known_values(conn, crm, ids)
    out: list[StatusChange] = []
    for person in people:
        when = person.updated_at or utcnow()
        for name in ("status", "lifecycle_stage"):
            initial = _start_of_history(first, (person.external_id, name), person.created_at)
            if initial is not None:
                out.append(
                    StatusChange(
                        source=crm, object_type=person.kind.value, object_id=person.external_id,
                        field=name, old_value=None, new_value=initial,
                        changed_at=person.created_at or when, owner_id=person.owner_id,
                        email=person.email,
                    )
                )  # fmt: skip
        for name, first_counts in _PERSON_FIELDS:
            new = _person_value(person, name)
            seen = (person.external_id, name) in known
            old = known.get((person.external_id, name))
            if (old or None) == (new or None):
                continue
            if not seen and (not first_counts or new is None):
                continue
            if name == "converted" and new == "false" and old is None:
                continue
            out.append(
                StatusChange(
                    source=crm, object_type=person.kind.value, object_id=person.external_id,
                    field=name, old_value=old, new_value=new, changed_at=when,
                    owner_id=person.owner_id, email=person.email,
                )
            )  # fmt: skip
            known[(person.external_id, name)] = new
    return out


def _person_reasons(people: Sequence[Person], lifecycle: CompiledLifecycle) -> list[ReasonChange]:
    """The reason fields polled people hold, as written at each person's modification time."""
    out: list[ReasonChange] = []
    for person in people:
        for name in lifecycle.reason_field_names:
            value = _text(person.fields.get(name))
            if value and value.strip():
                out.append(
                    ReasonChange(
                        source=person.source, object_type=person.kind.value,
                        object_id=person.external_id, field=name, value=value,
                        changed_at=person.updated_at or utcnow(),
                    )
                )  # fmt: skip
    return out


def _explained(rows: Sequence[Any], at: datetime) -> Any:
    """The change of one field a reason written at ``at`` explains: the newest change from the
    reason's second or before, if the reason came within ``REASON_WINDOW`` of it (else None)."""
    newest = None
    for row in rows:  # in time order
        if row.changed_at.replace(microsecond=0) > at:
            break
        newest = row
    if newest is None or at - newest.changed_at > REASON_WINDOW:
        return None
    return newest


def _attach_reasons(
    conn: Connection, crm: str, reasons: Sequence[ReasonChange], lifecycle: CompiledLifecycle
) -> int:
    """Give each decision still without a reason the first reason that explains it (the rule
    in the module docstring); returns how many decisions got one."""
    given = sorted((r for r in reasons if r.value.strip()), key=lambda r: r.changed_at)
    if not given:
        return 0
    ids = sorted({r.object_id for r in given})
    changes: dict[tuple[str, str, str], list[Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(
                _DISPOSITION.c.id,
                _DISPOSITION.c.object_type,
                _DISPOSITION.c.object_id,
                _DISPOSITION.c.field,
                _DISPOSITION.c.lifecycle_stage,
                _DISPOSITION.c.reason,
                _DISPOSITION.c.changed_at,
            )
            .where(
                _DISPOSITION.c.crm == crm,
                _DISPOSITION.c.object_id.in_(ids[start : start + _CHUNK]),
                _DISPOSITION.c.field.in_(_DECIDED),
            )
            .order_by(_DISPOSITION.c.changed_at, _DISPOSITION.c.id)
        )
        for row in rows:
            changes.setdefault((row.object_type, row.object_id, row.field), []).append(row)
    filled: dict[int, str] = {}
    for reason in given:
        outcomes = {stage.value for stage in lifecycle.reason_outcomes(reason.field)}
        for name in _DECIDED:
            decision = _explained(
                changes.get((reason.object_type, reason.object_id, name), ()), reason.changed_at
            )
            if (
                decision is None
                or decision.lifecycle_stage not in outcomes
                or (decision.reason or "").strip()
                or decision.id in filled
            ):
                continue
            filled[decision.id] = reason.value
    if filled:
        empty = or_(_DISPOSITION.c.reason.is_(None), _DISPOSITION.c.reason == "")
        conn.execute(
            update(_DISPOSITION)
            .where(_DISPOSITION.c.id == bindparam("row_id"), empty)
            .values(reason=bindparam("given")),
            [{"row_id": row_id, "given": value} for row_id, value in filled.items()],
        )
        log.info("dispositions.reasons_given", crm=crm, decisions=len(filled))
    return len(filled)


def _opportunity_changes(
    conn: Connection, crm: str, opps: Sequence[Opportunity]
) -> list[StatusChange]:
    known, first = _known_values(conn, crm, [o.external_id for o in opps])
    out: list[StatusChange] = []
    for opp in opps:
        initial = _start_of_history(first, (opp.external_id, "stage"), opp.created_at)
        if initial is not None:
            out.append(
                StatusChange(
                    source=crm, object_type="opportunity", object_id=opp.external_id,
                    field="stage", old_value=None, new_value=initial,
                    changed_at=opp.created_at or utcnow(), owner_id=opp.owner_id,
                )
            )  # fmt: skip
        old = known.get((opp.external_id, "stage"))
        if (old or None) == (opp.stage or None):
            continue
        out.append(
            StatusChange(
                source=crm, object_type="opportunity", object_id=opp.external_id,
                field="stage", old_value=old, new_value=opp.stage,
                changed_at=opp.updated_at or utcnow(), owner_id=opp.owner_id,
            )
        )  # fmt: skip
        known[(opp.external_id, "stage")] = opp.stage
    return out


class Recorded(NamedTuple):
    """What one page added: new disposition rows, and decisions that got their reason."""

    dispositions: int
    reasons: int


def record_changes(
    conn: Connection, crm: str, run_id: int, records: Iterable[Any], lifecycle: CompiledLifecycle
) -> Recorded:
    """Append the transitions a page of CRM records shows, then give the decisions the reasons
    it shows (``ReasonChange``); refresh people and deals."""
    items = list(records)
    people = [r for r in items if isinstance(r, Person)]
    opps = [r for r in items if isinstance(r, Opportunity)]
    changes = [r for r in items if isinstance(r, StatusChange)]
    reasons = [r for r in items if isinstance(r, ReasonChange)]
    if people:
        changes.extend(_person_changes(conn, crm, people))
        reasons.extend(_person_reasons(people, lifecycle))
        upsert_people(conn, crm, people)
    if opps:
        changes.extend(_opportunity_changes(conn, crm, opps))
        upsert_rows(
            conn, _OPPORTUNITY, [opportunity_values(crm, o) for o in opps], ("crm", "external_id")
        )
    added = 0
    if changes:
        statement = dialect_insert(conn, _DISPOSITION).on_conflict_do_nothing()
        result = conn.execute(
            statement.returning(_DISPOSITION.c.id),
            [_row(crm, run_id, c, lifecycle) for c in changes],
        )
        added = len(result.all())
    return Recorded(added, _attach_reasons(conn, crm, reasons, lifecycle))


def _lifecycle(ctx: RunContext) -> CompiledLifecycle:
    if ctx.pipeline.mapping is None:
        return CompiledLifecycle()
    from sync.mapping import load_lifecycle

    # Only the lifecycle is used here, and nothing is written to the CRM; the whole file is
    # checked against the org by `mappings validate`, `config check` and `check <crm>`.
    return load_lifecycle(ctx.pipeline.mapping)


def history_streams(crm: Any) -> tuple[str, ...]:
    """The streams in which ``crm`` reports field history as ``StatusChange`` records.

    A connector offers them by naming them in a ``history_streams`` attribute.
    """
    names = getattr(crm, "history_streams", ())
    return tuple(n for n in names if isinstance(n, str)) if isinstance(names, tuple) else ()


def run_dispositions(ctx: RunContext) -> None:
    """Run a dispositions pipeline once: the CRM's field history first (exact times and old
    values), then the people and opportunities streams, whose current values fill what the
    history does not hold (untracked fields, changes from before tracking began)."""
    source = ctx.pipeline.source
    if source is None:
        raise ConfigError(f"pipeline {ctx.name!r} needs a CRM as its source")
    crm = ctx.connections.crm(source)
    lifecycle = _lifecycle(ctx)
    include_reasons = getattr(crm, "include_reason_fields", None)
    if lifecycle.reason_field_names and callable(include_reasons):
        include_reasons(list(lifecycle.reason_field_names))
    for stream in (*history_streams(crm), *DISPOSITION_STREAMS):
        pages = pull_stream(ctx, crm, stream)
        if pages is None:
            continue
        for page in pages:
            with ctx.transaction() as conn:
                recorded = record_changes(conn, source, ctx.run_id, page.records, lifecycle)
                ctx.save_cursor(conn, stream, page.cursor)
            ctx.add("pulled", len(page.records))
            ctx.add("dispositions", recorded.dispositions)
            ctx.add("reasons", recorded.reasons)
            ctx.progress(stream, len(page.records))
            ctx.check_stop()
