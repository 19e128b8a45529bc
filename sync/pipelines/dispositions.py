"""The dispositions pipeline: CRM status, stage, owner and conversion changes as an append-only
ledger of transitions, translated to the shared lifecycle.

For each page of ``crm.pull_changes("people" | "opportunities", cursor, until=run start)``:
the value each tracked field had before is the newest disposition already recorded for that
record and field (unknown when none: the first observation of a status or stage is recorded
with no old value); every field whose value differs appends one ``disposition`` row (old ->
new, the mapping's reason field, owner, the CRM's change time, and ``lifecycle_stage`` =
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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select

from connectors.base import Opportunity, Person, StatusChange
from connectors.errors import ConfigError
from sync.ledger.dialect import dialect_insert
from sync.ledger.models import DispositionRow, OpportunityRow
from sync.ledger.types import utcnow
from sync.mapping import CompiledLifecycle
from sync.pipelines.deliveries import upsert_people
from sync.pipelines.reconcile import opportunity_values, pull_stream, upsert_rows

if TYPE_CHECKING:
    from sync.pipelines.runner import RunContext

__all__ = ["DISPOSITION_STREAMS", "history_streams", "record_changes", "run_dispositions"]

DISPOSITION_STREAMS = ("people", "opportunities")

_DISPOSITION: Table = DispositionRow.__table__  # type: ignore[attr-defined]
_OPPORTUNITY: Table = OpportunityRow.__table__  # type: ignore[attr-defined]
_CHUNK = 500
# Person fields tracked, with whether their first observation is itself a transition.
_PERSON_FIELDS = (("status", True), ("lifecycle_stage", True), ("owner_id", False),
                  ("converted", False))  # fmt: skip
_STAGED = frozenset({"status", "lifecycle_stage", "stage"})


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


def _person_changes(
    conn: Connection, crm: str, people: Sequence[Person], lifecycle: CompiledLifecycle
) -> list[StatusChange]:
    ids = [p.external_id for p in people]
    known, first = _known_values(conn, crm, ids)
    out: list[StatusChange] = []
    for person in people:
        when = person.updated_at or utcnow()
        reason = None
        if lifecycle.reason_field:
            value = person.fields.get(lifecycle.reason_field)
            reason = _text(value) if value not in (None, "") else None
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
                    reason=reason if name in _STAGED else None, owner_id=person.owner_id,
                    email=person.email,
                )
            )  # fmt: skip
            known[(person.external_id, name)] = new
    return out


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


def record_changes(
    conn: Connection, crm: str, run_id: int, records: Iterable[Any], lifecycle: CompiledLifecycle
) -> int:
    """Append the transitions a page of CRM records shows; refresh people and deals. Returns
    how many disposition rows were new."""
    items = list(records)
    people = [r for r in items if isinstance(r, Person)]
    opps = [r for r in items if isinstance(r, Opportunity)]
    changes = [r for r in items if isinstance(r, StatusChange)]
    if people:
        changes.extend(_person_changes(conn, crm, people, lifecycle))
        upsert_people(conn, crm, people)
    if opps:
        changes.extend(_opportunity_changes(conn, crm, opps))
        upsert_rows(
            conn, _OPPORTUNITY, [opportunity_values(crm, o) for o in opps], ("crm", "external_id")
        )
    if not changes:
        return 0
    statement = dialect_insert(conn, _DISPOSITION).on_conflict_do_nothing()
    result = conn.execute(
        statement.returning(_DISPOSITION.c.id), [_row(crm, run_id, c, lifecycle) for c in changes]
    )
    return len(result.all())


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
    if lifecycle.reason_field and callable(include_reasons):
        include_reasons([lifecycle.reason_field])
    for stream in (*history_streams(crm), *DISPOSITION_STREAMS):
        pages = pull_stream(ctx, crm, stream)
        if pages is None:
            continue
        for page in pages:
            with ctx.transaction() as conn:
                added = record_changes(conn, source, ctx.run_id, page.records, lifecycle)
                ctx.save_cursor(conn, stream, page.cursor)
            ctx.add("pulled", len(page.records))
            ctx.add("dispositions", added)
            ctx.progress(stream, len(page.records))
            ctx.check_stop()
