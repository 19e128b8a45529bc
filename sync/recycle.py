"""The recycle pipeline: leads sales sent back to nurture -> the marketing side's nurture list.

``recycle_once`` reads the ``disposition`` ledger of one CRM connection for status changes to
the Recycled stage since its cursor, keeps the people whose *latest* stage is still Recycled
(a lead recycled and re-qualified before the run is not nurtured), and adds them by e-mail to
a nurture list on the marketing side (a ``NurtureTarget``): a Marketo static list or a HubSpot
list. ``run_recycle(ctx)`` is the entry point of the ``recycle`` pipeline kind
(``sync.pipelines.runner``): the list id comes from ``analytics.nurture_lists.<pipeline>``.

Idempotency without a new table: the pipeline's ``cursor`` row (stream ``recycled``) holds the
time of the last recycle handled plus the keys handled at exactly that time, committed after
the list add. A crash between the add and the commit repeats the add on the next run, which
both vendors treat as a no-op for members already on the list, so each recycle reaches the
list once in effect. People the marketing side refuses (unknown there, invalid) become dead
letters (stage ``push``) with the vendor's reason, and the cursor moves on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, select, update

from connectors.base import Cursor
from connectors.errors import ConfigError
from sync.analytics.load import DEAL_OBJECTS, TASK_OBJECTS, ledger_table, stage_of, table_columns
from sync.ledger.models import (
    CursorRow,
    DeadLetterRow,
    DeadLetterStage,
    DispositionRow,
    PersonRow,
)
from sync.ledger.types import utcnow
from sync.mapping.lifecycle import CompiledLifecycle
from sync.mapping.model import Stage

__all__ = [
    "RECYCLE_STREAM",
    "HubSpotNurture",
    "MarketoNurture",
    "NurtureOutcome",
    "NurtureTarget",
    "RecycleResult",
    "RecycledLead",
    "nurture_target",
    "pending_recycles",
    "recycle_once",
    "run_recycle",
]

RECYCLE_STREAM = "recycled"
CursorSaver = Callable[[Connection, str, Cursor], None]
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class RecycledLead:
    """One person whose latest stage is Recycled, waiting to be nurtured."""

    key: str  # "<object_id>@<changed_at ISO>": the recycle event, unique per person and time
    person: str
    email: str | None
    recycled_at: datetime
    reason: str | None
    owner: str | None


@dataclass
class NurtureOutcome:
    """What the marketing side did with a batch: e-mails now on the list, e-mails refused."""

    added: list[str] = field(default_factory=list)
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)  # email -> (code, why)


class NurtureTarget(Protocol):
    """A nurture list on the marketing side that people can be added to by e-mail."""

    def add(self, emails: Sequence[str]) -> NurtureOutcome:
        """Add the people with these (lower-cased) e-mails; re-adding a member is a no-op."""
        ...


class MarketoNurture:
    """A Marketo static list: look leads up by e-mail, then add their ids (300 per call)."""

    def __init__(self, source: Any, list_id: int | str) -> None:
        self.source = source  # connectors.marketo.source.MarketoSource (or any look-alike)
        self.list_id = int(list_id)

    def add(self, emails: Sequence[str]) -> NurtureOutcome:
        """Add the leads behind ``emails``; e-mails Marketo does not know are refused."""
        outcome = NurtureOutcome()
        found = self.source.lookup_leads(emails)
        ids: dict[int, str] = {}
        for email in emails:
            lead = found.get(email)
            if lead is None:
                outcome.rejected[email] = ("not_found", "no Marketo lead has this e-mail")
            else:
                ids[int(lead.external_id)] = email
        if ids:
            change = self.source.add_to_list(self.list_id, list(ids))
            # Marketo answers "added" for new and existing members alike.
            outcome.added.extend(ids[i] for i in change.changed if i in ids)
            for rejected in change.skipped:
                refused = ids.get(int(rejected.key)) if rejected.key else None
                if refused is not None:
                    outcome.rejected[refused] = (str(rejected.code or "skipped"), str(rejected))
        return outcome


class HubSpotNurture:
    """A HubSpot list (MANUAL or SNAPSHOT) of contacts: resolve by e-mail, add record ids.

    ``connector`` needs ``resolve_people(emails) -> {email: Person}`` (the ``Crm`` protocol)
    and ``add_to_list(list_id, record_ids)`` returning the changed ids and the skipped ones
    (``PUT /crm/v3/lists/{id}/memberships/add``), like the Marketo connector's method.
    """

    def __init__(self, connector: Any, list_id: str) -> None:
        self.connector = connector
        self.list_id = str(list_id)

    def add(self, emails: Sequence[str]) -> NurtureOutcome:
        """Add the contacts behind ``emails``; unknown e-mails are refused."""
        outcome = NurtureOutcome()
        found = self.connector.resolve_people(list(emails))
        ids: dict[str, str] = {}
        for email in emails:
            person = found.get(email)
            if person is None:
                outcome.rejected[email] = ("not_found", "no HubSpot contact has this e-mail")
            else:
                ids[str(person.external_id)] = email
        if ids:
            change = self.connector.add_to_list(self.list_id, list(ids))
            missing = {str(r.key) for r in change.skipped}
            for record_id, email in ids.items():
                if record_id in missing:
                    outcome.rejected[email] = ("missing", "HubSpot refused the record id")
                else:
                    # Already a member: HubSpot lists it neither as added nor missing.
                    outcome.added.append(email)
        return outcome


@dataclass(frozen=True)
class RecycleResult:
    """One run: people added, people skipped (re-qualified since), people refused."""

    added: list[str]
    still_recycled: int
    requalified: int
    rejected: dict[str, tuple[str, str]]
    cursor: str | None


def _cursor(engine: Engine, pipeline: str) -> tuple[datetime | None, set[str]]:
    columns = table_columns(CursorRow)
    with engine.connect() as conn:
        row = conn.execute(
            select(columns.value, columns.boundary_keys).where(
                columns.pipeline == pipeline, columns.stream == RECYCLE_STREAM
            )
        ).first()
    if row is None or not row.value:
        return None, set()
    return datetime.fromisoformat(row.value), set(row.boundary_keys or [])


def _save_cursor(conn: Connection, pipeline: str, stream: str, cursor: Cursor) -> None:
    table = ledger_table(CursorRow)
    c = table.c
    values = {
        "value": cursor.value,
        "boundary_keys": sorted(cursor.boundary_keys),
        "updated_at": utcnow(),
    }
    done = conn.execute(
        update(table).where(c.pipeline == pipeline, c.stream == stream).values(**values)
    )
    if done.rowcount == 0:
        conn.execute(insert(table).values(pipeline=pipeline, stream=stream, **values))


def _candidates(
    engine: Engine,
    crm: str,
    since: datetime | None,
    lifecycle: CompiledLifecycle | None,
) -> list[Any]:
    """Recycle events of ``crm`` at or after ``since``, oldest first."""
    d = table_columns(DispositionRow)
    query = select(d).where(d.crm == crm, d.object_type.not_in(sorted(DEAL_OBJECTS | TASK_OBJECTS)))
    if since is not None:
        query = query.where(d.changed_at >= since)
    out = []
    with engine.connect() as conn:
        for row in conn.execute(query.order_by(d.changed_at, d.id)):
            if stage_of(row.lifecycle_stage, row.new_value, row.field, lifecycle) is Stage.RECYCLED:
                out.append(row)
    return out


def _latest_stages(
    engine: Engine, crm: str, people: Sequence[str], lifecycle: CompiledLifecycle | None
) -> dict[str, tuple[datetime, int, Stage]]:
    """Each person's latest stage-carrying disposition (time, row id, stage)."""
    d = table_columns(DispositionRow)
    latest: dict[str, tuple[datetime, int, Stage]] = {}
    with engine.connect() as conn:
        for start in range(0, len(people), _CHUNK):
            chunk = people[start : start + _CHUNK]
            query = select(d).where(d.crm == crm, d.object_id.in_(chunk))
            for row in conn.execute(query):
                stage = stage_of(row.lifecycle_stage, row.new_value, row.field, lifecycle)
                if stage is None:
                    continue
                mark = (row.changed_at, row.id, stage)
                seen = latest.get(row.object_id)
                if seen is None or mark[:2] > seen[:2]:
                    latest[row.object_id] = mark
    return latest


def _emails(engine: Engine, crm: str, people: Sequence[str]) -> dict[str, str]:
    p = table_columns(PersonRow)
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(people), _CHUNK):
            chunk = people[start : start + _CHUNK]
            query = select(p.external_id, p.email).where(p.crm == crm, p.external_id.in_(chunk))
            for external_id, email in conn.execute(query):
                if email:
                    found[external_id] = email
    return found


def pending_recycles(
    engine: Engine,
    *,
    pipeline: str,
    crm: str,
    lifecycle: CompiledLifecycle | None = None,
) -> tuple[list[RecycledLead], int, datetime | None, set[str]]:
    """Leads to nurture now, how many were re-qualified since, and the cursor to commit after."""
    since, done = _cursor(engine, pipeline)
    events = [
        e
        for e in _candidates(engine, crm, since, lifecycle)
        if f"{e.object_id}@{e.changed_at.isoformat()}" not in done
    ]
    if not events:
        return [], 0, None, set()
    last = events[-1].changed_at
    keys_at_last = {
        f"{e.object_id}@{e.changed_at.isoformat()}" for e in events if e.changed_at == last
    }
    if since is not None and last == since:
        keys_at_last |= done
    newest: dict[str, Any] = {}
    for event in events:
        newest[event.object_id] = event  # ordered by time: the last wins
    people = sorted(newest)
    latest = _latest_stages(engine, crm, people, lifecycle)
    emails = _emails(engine, crm, people)
    leads: list[RecycledLead] = []
    requalified = 0
    for person in people:
        event = newest[person]
        current = latest.get(person)
        if current is not None and current[2] is not Stage.RECYCLED:
            requalified += 1
            continue
        leads.append(
            RecycledLead(
                key=f"{person}@{event.changed_at.isoformat()}",
                person=person,
                email=(event.email or emails.get(person) or None),
                recycled_at=event.changed_at,
                reason=event.reason,
                owner=event.owner_id,
            )
        )
    return leads, requalified, last, keys_at_last


def recycle_once(
    engine: Engine,
    target: NurtureTarget,
    *,
    pipeline: str,
    crm: str,
    lifecycle: CompiledLifecycle | None = None,
    batch_size: int = 300,
    on_progress: Callable[[int], None] | None = None,
    save_cursor: CursorSaver | None = None,
) -> RecycleResult:
    """Add newly recycled leads of ``crm`` to ``target``; safe to run again at any time."""
    leads, requalified, last, keys = pending_recycles(
        engine, pipeline=pipeline, crm=crm, lifecycle=lifecycle
    )
    added: list[str] = []
    rejected: dict[str, tuple[str, str]] = {}
    by_email: dict[str, list[RecycledLead]] = defaultdict(list)
    for lead in leads:
        if lead.email:
            by_email[lead.email.strip().lower()].append(lead)
        else:
            rejected[f"(no e-mail) {lead.person}"] = ("no_email", "the CRM record has no e-mail")
    emails = sorted(by_email)
    for start in range(0, len(emails), batch_size):
        outcome = target.add(emails[start : start + batch_size])
        added.extend(outcome.added)
        rejected.update(outcome.rejected)
        if on_progress is not None:
            on_progress(len(outcome.added))
    with engine.begin() as conn:
        if rejected:
            _dead_letters(conn, pipeline, rejected, by_email)
        if last is not None:
            cursor = Cursor(last.isoformat(), frozenset(keys))
            if save_cursor is not None:
                save_cursor(conn, RECYCLE_STREAM, cursor)
            else:
                _save_cursor(conn, pipeline, RECYCLE_STREAM, cursor)
    return RecycleResult(
        added=added,
        still_recycled=len(leads),
        requalified=requalified,
        rejected=rejected,
        cursor=last.isoformat() if last is not None else None,
    )


def _dead_letters(
    conn: Connection,
    pipeline: str,
    rejected: Mapping[str, tuple[str, str]],
    by_email: Mapping[str, list[RecycledLead]],
) -> None:
    rows = []
    for email, (code, reason) in rejected.items():
        leads = by_email.get(email, [])
        rows.append(
            {
                "pipeline": pipeline,
                "stage": DeadLetterStage.PUSH.value,
                "record_key": leads[0].key if leads else email,
                "code": code,
                "reason": f"nurture list refused {email}: {reason}",
                "payload": {"email": email, "people": [lead.person for lead in leads]},
            }
        )
    conn.execute(insert(ledger_table(DeadLetterRow)), rows)


def nurture_target(connection_type: str, connector: Any, list_id: str) -> NurtureTarget:
    """The nurture list of a marketing-side connector of ``connection_type``."""
    if connection_type == "marketo":
        return MarketoNurture(connector, list_id)
    if connection_type == "hubspot":
        return HubSpotNurture(connector, list_id)
    raise ConfigError(
        f"a recycle pipeline cannot add people to lists on a {connection_type!r} connection "
        "(supported: marketo static lists, hubspot lists)"
    )


def run_recycle(ctx: Any) -> dict[str, int]:
    """The ``recycle`` pipeline kind, as ``sync.pipelines.runner`` runs it (one ``RunContext``).

    The list comes from ``analytics.nurture_lists.<pipeline name>``; the stage translation
    from the pipeline's mapping (else from the CRM's dispositions pipeline mapping).
    """
    from sync.report.build import report_inputs

    name, pipeline, config = ctx.name, ctx.pipeline, ctx.config
    lists = config.analytics.nurture_lists
    if name not in lists:
        raise ConfigError(
            f"recycle pipeline {name!r} has no nurture list: add analytics.nurture_lists."
            f"{name}: <the Marketo static list id or HubSpot list id>"
        )
    crm, sink = pipeline.source, pipeline.sink
    lifecycle: CompiledLifecycle | None = None
    if pipeline.mapping is not None:
        from sync.mapping.validate import load_lifecycle

        lifecycle = load_lifecycle(pipeline.mapping)
    else:
        lifecycle = report_inputs(config).lifecycles.get(crm)
    target = nurture_target(config.connections[sink].type, ctx.connections.get(sink), lists[name])
    result = recycle_once(
        ctx.engine,
        target,
        pipeline=name,
        crm=crm,
        lifecycle=lifecycle,
        on_progress=lambda n: ctx.progress("nurtured", n),
        save_cursor=ctx.save_cursor,
    )
    return {
        "nurtured": len(result.added),
        "requalified": result.requalified,
        "refused": len(result.rejected),
    }
