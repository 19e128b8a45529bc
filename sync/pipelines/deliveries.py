"""Delivering stored touches to one CRM: resolve people, map, record intent, push, confirm.

The exactly-once protocol for one batch of touches and one sink:

1. resolve each email to a CRM person: the ledger's ``person`` rows first, then one batched
   ``crm.resolve_people`` for the rest (results cached in ``person``; a touches run has looked
   up the people of all its new touches before its first batch, ``resolve_ahead``, so a batch
   seldom asks the CRM); people the CRM does not
   know are created (``crm.create_people``) or held, as the mapping's ``people.unknown`` says;
2. digest and render every touch with the compiled mapping; a record the mapping cannot render
   becomes a dead letter of stage ``map``;
3. commit a delivery row in state ``intended`` for every touch about to be pushed (fenced);
4. ``crm.push_touches``: a write keyed by the touch key;
5. commit ``confirmed`` with the CRM id, or ``dead`` plus a dead letter of stage ``push`` with
   the CRM's code and message for a record it refused (fenced); a refusal the connector marks
   ``retryable`` ("not now": a record lock it could not get past) is ``failed`` instead, with
   the CRM's code and message as its last error, and is pushed again by the next run.

A crash between 3 and 5 leaves ``intended`` rows, which the next run pushes again. Where the
CRM upserts on the touch key (Salesforce Tasks on their external id) the replay is an update,
never a second record. Where creates are not idempotent (HubSpot engagements: a ``KeyedSink``)
the ledger says what it knows of each key before step 3: the record a key already has
(``RenderedTouch.crm_id``: update it), or when an earlier send of it got no answer
(``attempted_at``: the connector looks before creating); a key with neither was never sent. What
the ledger cannot know (it was lost or restored) the key audit learns from the CRM before the
first batch (``keyaudit``); those touches are confirmed with the record found, not sent. Held
touches get a ``failed`` row ("held") and are tried again on every run until the person appears;
so do the touches of a person the CRM could not create for now (still row-locked after the
retries): "not now" is never a dead letter.

Page-view style digests: a digest's key is stable per person and window, so its members already
delivered in earlier batches are read back from the ledger and rolled in again; the CRM record
is rewritten with every member, not only the newest ones.

Campaign members (Salesforce, mapping section ``campaign_members``): between 4 and 5, the touches
whose record the CRM accepted and that name a campaign and earn a member status are made
members of their Campaign (``crm.sync_campaign_members``). The sync is idempotent (it reads the
memberships first, creates only missing members, raises a status only up its order), so it
needs no record of its own: it is part of the push, and step 5 commits after it. A crash after
the Task push and before (or during) the membership sync leaves the batch ``intended``, and the
replay upserts the Tasks again and settles the memberships again. A membership Salesforce
refuses (unknown Campaign, a status that Campaign lacks) becomes a dead letter of stage ``push``
with Salesforce's code and message, keyed by the touch; the touch's delivery stays ``confirmed``.
Replaying that letter re-pushes the touch, and so retries the membership.

Person fields (mapping ``people.fields``): touches carry their person as the source knows it
(``attributes["person"]``: a Marketo lead's name, company, title, phone, country and
``updatedAt``; a file row's columns; a HubSpot form's fields; a webhook's ``person``). People
created in step 1 get the mapped values. After step 1, for the people of the batch's ready
touches that the CRM already had (once per person per run, from their newest touch), one
batched ``crm.read_person_fields`` reads the mapped fields as the CRM holds them now (with the
field-history time of each two-way field), ``plan_person`` applies the rules (a value a rule
protects is never overwritten, a blank never overwrites) and one batched ``crm.update_people``
writes what the rules allow. A person so settled is not read again until their source person
(values, ``updated_at``, or the mapping's rules) changes or the ledger's copy of the CRM record is
refreshed (a lookup, a dispositions or reconcile pull): ``person.fields_digest``, cleared by every
refresh (people created here are settled by their create). Field writes are idempotent, so a
replay after a crash writes the same values again; a person the CRM refuses to update is logged
and counted (``person_updates_refused``), and their touches flow on.

Owners (mapping ``people.owner``): people created in step 1 carry the mapping's owner (a
Salesforce User or queue as ``OwnerId``, a HubSpot ``hubspot_owner_id``), or their creates the
``Sforce-Auto-Assign`` header that runs a Salesforce assignment rule (``_owner``).

Opt-outs (mapping ``opt_out``): between 2 and 3, the people of the batch's ``email_unsubscribe``
touches (rendered or filtered alike) whose address the ledger's ``opt_out`` table does not hold
for this sink are opted out in one batched ``crm.opt_out`` (the connector reads the CRM first and
writes only where the person is not already out; nothing ever opts anyone in). The rows are
committed with the intents of step 3, so a replay of the batch finds them and writes nothing; a
crash between the CRM write and that commit costs one read on the replay. An opt-out the CRM
refuses is a dead letter of stage ``push`` keyed by the touch (its payload names ``opt_out``);
replaying it tries the opt-out again.

The conversions between ledger rows and connector records live in ``sync.pipelines.rows``;
the person-field updates in ``sync.pipelines.person_updates`` (``PersonUpdates``) and the
sync-log steps in ``sync.pipelines.delivery_log`` (``DeliveryLog``), mixins of ``Deliverer``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import ARRAY, Connection, Integer, and_, bindparam, func, literal, select
from tenacity import Retrying

from connectors.base import (
    Crm,
    DeliveryResult,
    KeyedSink,
    MemberItem,
    MemberResult,
    Person,
    PersonKind,
    RenderedTouch,
    Touch,
    TouchKind,
)
from connectors.errors import ConfigError, MappingError, RecordRejected, Transient
from connectors.registry import sink_info
from connectors.retry import RetryPolicy
from sync.ingest import insert_rejects
from sync.ledger.dialect import BULK_FROM, AnyOf, dialect_insert, update_each
from sync.ledger.engine import reading
from sync.ledger.models import (
    DeadLetterStage,
    DeliveryRow,
    DeliveryState,
    OptOutRow,
    PersonRow,
    SyncRunRow,
    TouchRow,
)
from sync.ledger.types import utcnow
from sync.mapping.digest import is_digest
from sync.pipelines.delivery_log import DeliveryLog
from sync.pipelines.keyaudit import KeyAudit
from sync.pipelines.person_updates import PersonUpdates
from sync.pipelines.rows import (
    _LOOKUP_CHUNK,
    _PERSON_CACHE_MAX,
    _email,
    _plain,
    _text,
    live_people_query,
    person_from_row,
    remember,
    source_person,
    touch_from_row,
    touch_payload,
    upsert_people,
)
from sync.synclog import LogEntry
from sync.synclog import record as log_steps
from sync.synclog import rows as log_rows

if TYPE_CHECKING:
    from sync.mapping import CompiledMapping
    from sync.mapping.lifecycle import MqlVerdict
    from sync.mapping.members import CampaignRef
    from sync.pipelines.context import RunContext

__all__ = [
    "HELD",
    "Deliverer",
    "Pending",
    "Prepared",
    "Rejection",
    "live_people_query",
    "person_from_row",
    "source_person",
    "touch_from_row",
    "touch_payload",
]

log = structlog.get_logger(__name__)

_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
_PERSON = PersonRow.__table__  # type: ignore[attr-defined]
_RUN = SyncRunRow.__table__  # type: ignore[attr-defined]
_OPT_OUT = OptOutRow.__table__  # type: ignore[attr-defined]

HELD = "held: the CRM does not know this person yet (mapping says hold)"
# Transient failures of a CRM call are retried this many times in all before the run fails.
CALL_ATTEMPTS = 4
# Emails per CRM lookup of ``resolve_ahead``: Salesforce packs them into 100,000-character SOQL
# IN lists (about 3,000 addresses each), one per object (Lead, Contact), in one Composite call.
# The answer is held whole while it is read: 6,000 people made a ~25 MB peak in the worker
# (body, text, ~190,000 decoded objects); 2,000 take a third of that, for one more call per
# 4,000 people new to the ledger (~0.7 calls per 10,000 touches in a first backfill).
AHEAD_CHUNK = 2_000


@dataclass(frozen=True)
class Rejection:
    """A refused record as ``sync.ingest.insert_rejects`` stores it."""

    key: str
    code: str
    reason: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Pending:
    """A stored touch waiting for delivery to the sink."""

    touch_id: int
    touch: Touch


@dataclass(frozen=True)
class MemberClaim:
    """A touch that makes its person a member of a Campaign once its record is delivered."""

    rendered_key: str
    touch: Touch
    campaign: CampaignRef
    person_id: str
    status: str


@dataclass
class Prepared:
    """A batch after resolve/map, with its intended deliveries committed: ready to push."""

    rendered: list[RenderedTouch] = field(default_factory=list)
    members: dict[str, list[int]] = field(default_factory=dict)  # rendered key -> touch ids
    campaign_members: list[MemberClaim] = field(default_factory=list)
    # Rendered keys the sink already holds records for (learned by a key audit): confirmed
    # with that record's id instead of being written again.
    found: dict[str, str] = field(default_factory=dict)
    digests: set[str] = field(default_factory=set)  # rendered keys that are digests
    # Rendered key -> (touch key, email) of each touch behind it, for the sync log.
    sources: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)  # steps logged with the intents


def _retrying() -> Retrying:
    return RetryPolicy(attempts=CALL_ATTEMPTS, backoff_s=0.25, backoff_max_s=8.0).retrying()


class Deliverer(PersonUpdates, DeliveryLog):
    """Resolves, maps and pushes batches of stored touches to one CRM for one pipeline."""

    def __init__(self, ctx: RunContext, crm: Crm, sink: str, mapping: CompiledMapping) -> None:
        self.ctx = ctx
        self.crm = crm
        self.sink = sink
        self.mapping = mapping
        self._people: dict[str, Person | None] = {}
        connection = ctx.config.connections.get(sink)
        per_call = getattr(crm, "touches_per_call", None)
        if not isinstance(per_call, int):
            # Records one counted push call carries, as the CRM's connector type declares it.
            per_call = sink_info(connection.type).push_capacity if connection else 0
        self.per_call: int = per_call
        self.pushed_records = 0
        # Campaign Name -> Id, resolved once per run (campaign member sync).
        self._campaign_ids: dict[str, str] = {}
        # Touch keys whose campaign membership was refused in this run (for dead-letter replay).
        self.member_failures: set[str] = set()
        # Unsubscribe touch keys whose person's opt-out the ledger holds after this run's
        # batches (written now or before; for dead-letter replay).
        self.opted_out: set[str] = set()
        # Sinks whose creates are not idempotent: the ledger vouches for each key it sends.
        self.audit = KeyAudit(ctx, crm, sink) if isinstance(crm, KeyedSink) else None
        # Emails whose person this run has logged as matched (once per run, not per batch).
        self._matched: set[str] = set()
        # Run id -> when it finished (None: it never did), for ``_sent_by``.
        self._run_ends: dict[int, datetime | None] = {}
        # Emails whose person fields this run has settled (created or updated): once a run.
        self._fields_done: set[str] = set()
        # Emails ``resolve_ahead`` asked the CRM for and it did not know: not asked again this
        # run (the batches create or hold their people).
        self._absent: set[str] = set()

    # -- identity ------------------------------------------------------------------------------

    def _cache(self, email: str, person: Person | None) -> None:
        if len(self._people) >= _PERSON_CACHE_MAX:
            self._people.clear()
        self._people[email] = person

    def _from_ledger(self, emails: Sequence[str]) -> dict[str, Person]:
        found: dict[str, Person] = {}
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(emails), _LOOKUP_CHUNK):
                chunk = emails[start : start + _LOOKUP_CHUNK]
                rows = conn.execute(live_people_query(self.sink, chunk))
                for row in rows:
                    person = person_from_row(row)
                    email = (row.email or "").lower()
                    current = found.get(email)
                    # A Contact beats a Lead for the same email (the converted record lives on).
                    if current is None or (
                        current.kind is PersonKind.LEAD and person.kind is PersonKind.CONTACT
                    ):
                        found[email] = person
        return found

    def resolve(self, emails: Iterable[str]) -> dict[str, Person]:
        """People behind ``emails``: run cache, then the ledger, then one batched CRM lookup."""
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        out: dict[str, Person] = {}
        unknown: list[str] = []
        for email in wanted:
            if email in self._people:
                person = self._people[email]
                if person is not None:
                    out[email] = person
            else:
                unknown.append(email)
        if not unknown:
            return out
        from_ledger = self._from_ledger(unknown)
        self.ctx.add("matched", len(from_ledger))
        out.update(from_ledger)
        for email, person in from_ledger.items():
            self._cache(email, person)
        ask = [e for e in unknown if e not in from_ledger and e not in self._absent]
        if ask:
            found = self._lookup(ask)
            self.ctx.add("matched", len(found))
            for email in ask:
                person = found.get(email)
                self._cache(email, person)
                if person is not None:
                    out[email] = person
        return out

    def resolve_ahead(self, emails: Iterable[str]) -> None:
        """Look up, before the first batch, the people of ``emails`` (a run's new touches) that
        neither the ledger nor this run knows: ``AHEAD_CHUNK`` at a time, so a run asks the CRM
        in a few full lookups instead of one small one per batch. ``emails`` may repeat an
        address: it is sifted against the ledger first, and only the unknown fill a lookup.
        People found go to the ledger (where the batches read them); the addresses the CRM
        lacks are remembered for the run, so the batches create (or hold) their people without
        asking again."""
        chunk: set[str] = set()
        ask: dict[str, None] = {}  # unknown to the run and the ledger: to ask the CRM
        for email in emails:
            if email and email.strip():
                chunk.add(email.strip().lower())
            if len(chunk) >= AHEAD_CHUNK:
                ask.update(dict.fromkeys(self._unknown(sorted(chunk))))
                chunk.clear()
            while len(ask) >= AHEAD_CHUNK:
                self._ask_ahead([ask.popitem()[0] for _ in range(AHEAD_CHUNK)])
        ask.update(dict.fromkeys(self._unknown(sorted(chunk))))
        if ask:
            self._ask_ahead(list(ask))

    def _unknown(self, emails: Sequence[str]) -> list[str]:
        """Those of ``emails`` that neither this run nor the ledger knows (the ledger is asked
        for the live people's addresses only: no person is built to be thrown away)."""
        fresh = [e for e in emails if e not in self._people and e not in self._absent]
        known: set[str] = set()
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(fresh), _LOOKUP_CHUNK):
                query = live_people_query(self.sink, fresh[start : start + _LOOKUP_CHUNK])
                rows = conn.execute(query.with_only_columns(_PERSON.c.email)).scalars()
                known.update((email or "").lower() for email in rows)
        return [e for e in fresh if e not in known]

    def _ask_ahead(self, emails: Sequence[str]) -> None:
        found = self._lookup(sorted(emails))
        self._absent.update(e for e in emails if e not in found)

    def _lookup(self, emails: Sequence[str]) -> dict[str, Person]:
        """Ask the CRM for the people of ``emails``; those found, by lower-cased email, are
        stored in the ledger and counted as resolved."""
        found = self._call(lambda: self.crm.resolve_people(emails))
        found = {k.strip().lower(): v for k, v in found.items()}
        if found:
            with self.ctx.transaction() as conn:
                upsert_people(conn, self.sink, found.values())
        self.ctx.add("resolved", len(found))
        return found

    def _create(
        self, touches_by_email: Mapping[str, Touch]
    ) -> tuple[dict[str, Person], set[str], dict[str, RecordRejected]]:
        """Create people the CRM lacks, per the mapping's policy: (created, held emails, the
        CRM's refusals by email, from its ``last_rejections``)."""
        plans: dict[str, Person] = {}
        held: set[str] = set()
        digests: dict[str, str] = {}  # email -> the source person its create settles
        owner_id, assignment = self._owner()
        for email, touch in touches_by_email.items():
            # The touch's own person (a Marketo lead's fields, a file's name, company and title
            # columns), for the mapping's person.first_name, person.company, person.fields.title
            given = source_person(touch, email) or Person(
                source=touch.source,
                external_id=touch.person_ref or email,
                kind=PersonKind.LEAD,
                email=email,
                updated_at=touch.occurred_at,
            )
            plan = self.mapping.plan_person(given, None)
            if plan.action != "create":
                held.add(email)
                continue
            digests[email] = self._fields_digest(given)
            fields = dict(plan.crm_updates)
            kind = PersonKind.CONTACT if plan.target == "Contact" else PersonKind.LEAD
            plans[email] = Person(
                source=self.sink,
                external_id="",
                kind=kind,
                email=email,
                first_name=_text(fields, "FirstName", "firstname"),
                last_name=_text(fields, "LastName", "lastname"),
                company=_text(fields, "Company", "company"),
                lead_source=_text(fields, "LeadSource"),
                owner_id=owner_id,
                fields=fields,
            )
        if not plans:
            return {}, held, {}
        # Never blindly retry a create: look again first, so a lost answer creates no twin.
        created: dict[str, Person] = {}
        refused: dict[str, RecordRejected] = {}
        missing = dict(plans)
        for attempt in range(CALL_ATTEMPTS):
            try:
                if assignment is None:
                    made = self.crm.create_people(list(missing.values()))
                else:
                    made = self.crm.create_people(list(missing.values()), assignment=assignment)  # type: ignore[call-arg]
                for rejection in getattr(self.crm, "last_rejections", None) or []:
                    if rejection.key:
                        refused[rejection.key.strip().lower()] = rejection
            except Transient:
                if attempt + 1 == CALL_ATTEMPTS:
                    raise
                again = self._call(lambda: self.crm.resolve_people(list(missing)))
                for email, person in again.items():
                    created[email.lower()] = person
                    missing.pop(email.lower(), None)
                if not missing:
                    break
                continue
            for person in made:
                if person.email:
                    created[person.email.lower()] = person
            break
        if created:
            with self.ctx.transaction() as conn:
                upsert_people(conn, self.sink, created.values())
                self._settled(conn, {
                    p.external_id: digests[email] for email, p in created.items()
                    if email in digests
                })  # fmt: skip
        for email, person in created.items():
            self._cache(email, person)
        self.ctx.add("created_people", len(created))
        return created, held, refused

    def _owner(self) -> tuple[str | None, str | None]:
        """(OwnerId / hubspot_owner_id for created people, the Salesforce ``Sforce-Auto-Assign``
        header for their creates) from the mapping's ``people.owner``; (None, None) unset.

        A fixed Salesforce owner goes with ``FALSE``: without the header the org's active
        assignment rule would reassign the Lead (docs/vendor-behaviour.md)."""
        owner = self.mapping.owner
        if owner is None:
            return None, None
        if owner.assignment_rule:
            rule = owner.assignment_rule
            return None, "TRUE" if rule.lower() == "active" else rule
        if owner.user or owner.queue:
            return owner.user or owner.queue, "FALSE"
        return owner.hubspot_owner_id, None

    # -- opt-outs ------------------------------------------------------------------------------

    def _opt_outs(self, work: _Batch) -> tuple[list[dict[str, Any]], list[Rejection]]:
        """Opt the people of this batch's unsubscribe touches out of email in the CRM (mapping
        ``opt_out``): (``opt_out`` rows to record with the batch's intents, refusals).

        Addresses the ledger already records for this sink are skipped (a replay writes nothing
        again); the connector reads the CRM first and leaves people it has opted out alone, so
        a crash between its write and the ledger's record costs a read, not a second write.
        Nothing ever opts anyone in: only unsubscribe touches lead here."""
        plan = self.mapping.opt_out
        if plan is None:
            return [], []
        wanted: dict[str, Pending] = {}
        for p in work.batch:
            email = _email(p.touch)
            if (
                p.touch.kind is TouchKind.EMAIL_UNSUBSCRIBE
                and p.touch.key not in work.rejected
                and email in work.people
            ):
                wanted.setdefault(email, p)
        if not wanted:
            return [], []
        apply = getattr(self.crm, "opt_out", None)
        if apply is None:
            raise ConfigError(
                f"connection {self.sink!r} cannot set email opt-outs: remove opt_out from the "
                "mapping or use a Salesforce or HubSpot sink"
            )
        recorded: set[str] = set()
        emails = sorted(wanted)
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(emails), _LOOKUP_CHUNK):
                found = conn.execute(
                    select(_OPT_OUT.c.email).where(
                        _OPT_OUT.c.sink == self.sink,
                        AnyOf(_OPT_OUT.c.email, emails[start : start + _LOOKUP_CHUNK]),
                    )
                )
                recorded.update(str(row.email).lower() for row in found)
        todo = [work.people[e] for e in emails if e not in recorded]
        self.ctx.add("opt_outs_recorded_before", len(emails) - len(todo))
        self.opted_out.update(
            p.touch.key
            for p in work.batch
            if p.touch.kind is TouchKind.EMAIL_UNSUBSCRIBE and _email(p.touch) in recorded
        )
        if not todo:
            return [], []
        results = self._call(lambda: apply(todo, plan.subscription))
        rows: list[dict[str, Any]] = []
        refusals: list[Rejection] = []
        for result in results:
            email = result.email.lower()
            pending = wanted.get(email)
            if pending is None:
                continue
            if result.ok:
                rows.append({
                    "sink": self.sink, "email": email,
                    "external_id": work.people[email].external_id or None,
                    "touch_key": pending.touch.key, "changed": result.changed,
                    "subscription": plan.subscription, "run_id": self.ctx.run_id,
                    "recorded_at": utcnow(),
                })  # fmt: skip
                continue
            code = result.error_code or "REJECTED"
            reason = (
                f"{self.sink} refused to opt {email} out of email: {code}: "
                f"{result.error_message or ''}"
            ).strip()
            payload = {**touch_payload(pending.touch), "opt_out": plan.subscription}
            refusals.append(Rejection(pending.touch.key, code, reason, payload))
        done = {r["email"] for r in rows}
        self.opted_out.update(
            p.touch.key
            for p in work.batch
            if p.touch.kind is TouchKind.EMAIL_UNSUBSCRIBE and _email(p.touch) in done
        )
        self.ctx.add("opted_out", sum(1 for r in rows if r["changed"]))
        self.ctx.add("opt_outs_already_in_crm", sum(1 for r in rows if not r["changed"]))
        self.ctx.add("opt_outs_refused", len(refusals))
        return rows, refusals

    def _record_opt_outs(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], refusals: Sequence[Rejection]
    ) -> None:
        if rows:
            statement = dialect_insert(conn, _OPT_OUT)
            conn.execute(
                statement.on_conflict_do_nothing(index_elements=["sink", "email"]), list(rows)
            )
        if refusals:
            insert_rejects(conn, self.ctx.name, DeadLetterStage.PUSH.value, refusals)

    def _call(self, fn: Callable[[], Any]) -> Any:
        for attempt in _retrying():
            with attempt:
                return fn()
        raise AssertionError("unreachable")  # pragma: no cover

    # -- prepare -------------------------------------------------------------------------------

    def _digest_members(self, work: _Batch) -> list[Touch]:
        """Touches already delivered that share a digest window with this batch's touches (their
        CRM record ids go to ``work.delivered_ids``)."""
        batch = work.batch
        kinds = set(self.mapping.digests)
        candidates = [p.touch for p in batch if p.touch.kind in kinds and p.touch.email]
        if not candidates:
            return []
        emails = sorted({t.email.lower() for t in candidates if t.email})
        low = min(t.occurred_at for t in candidates) - timedelta(days=1)
        high = max(t.occurred_at for t in candidates) + timedelta(days=1)
        ids = {p.touch_id for p in batch}
        out: list[Touch] = []
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(emails), _LOOKUP_CHUNK):
                rows = conn.execute(
                    select(_TOUCH, _DELIVERY.c.crm_id.label("delivered_crm_id"))
                    .join(
                        _DELIVERY,
                        and_(_DELIVERY.c.touch_id == _TOUCH.c.id, _DELIVERY.c.sink == self.sink),
                    )
                    .where(
                        _TOUCH.c.source.in_({t.source for t in candidates}),
                        _TOUCH.c.kind.in_([k.value for k in kinds]),
                        AnyOf(_TOUCH.c.email, emails[start : start + _LOOKUP_CHUNK]),
                        _TOUCH.c.occurred_at.between(low, high),
                        _DELIVERY.c.state == DeliveryState.CONFIRMED.value,
                    )
                )
                for row in rows:
                    if row.id in ids:
                        continue
                    touch = touch_from_row(row)
                    out.append(touch)
                    if row.delivered_crm_id:
                        work.delivered_ids[touch.key] = row.delivered_crm_id
        return out

    def prepare(self, batch: Sequence[Pending]) -> Prepared:
        """Resolve, create, digest and render ``batch``; commit its intended deliveries."""
        work = _Batch(batch)
        ready, held = self._identify(work)
        self.ctx.add("held", len(held))
        self.ctx.add("held_until_mql", sum(1 for why in held.values() if why != HELD))
        self.ctx.add("failed", sum(len(ids) for ids in work.later.values()))
        prepared = self._render(work, ready)
        opt_outs, opt_out_refusals = self._opt_outs(work)
        if self.audit is not None:
            self._vouch(prepared, self.audit)
        found: list[dict[str, Any]] = [
            {"tid": tid, "crm_id": crm_id}
            for key, crm_id in prepared.found.items()
            for tid in prepared.members[key]
        ]
        intended = [tid for r in prepared.rendered for tid in prepared.members[r.key]]
        steps = log_rows(self._prepare_log(work, prepared))
        with self.ctx.transaction() as conn:
            self._mark(conn, intended, DeliveryState.INTENDED, bump=True)
            if found:
                self._mark(conn, [f["tid"] for f in found], DeliveryState.INTENDED)
                self._confirm(conn, found)
                assert self.audit is not None
                self.audit.forget(conn, prepared.found)
                self.ctx.add("found_in_crm", len(found))
            by_reason: dict[str, list[int]] = {}
            for touch_id, why in held.items():
                by_reason.setdefault(why, []).append(touch_id)
            for why, ids in by_reason.items():
                self._mark(conn, ids, DeliveryState.FAILED, error=why)
            for error, ids in work.later.items():
                self._mark(conn, ids, DeliveryState.FAILED, error=error, bump=True)
            self._dead_letter(conn, work.rejects)
            self._record_opt_outs(conn, opt_outs, opt_out_refusals)
            log_steps(conn, steps)
            self.after_prepare(conn, batch)
        self.ctx.progress("map", len(batch))
        return prepared

    def _vouch(self, prepared: Prepared, audit: KeyAudit) -> None:
        """Tell the sink what the ledger knows of each key (``RenderedTouch.crm_id`` and
        ``attempted_at``), and set aside the keys whose records the key audit found."""
        audit.ensure({r.target for r in prepared.rendered})
        priors = self._priors([tid for ids in prepared.members.values() for tid in ids])
        learned = audit.keys_for([r.key for r in prepared.rendered])
        kept: list[RenderedTouch] = []
        for rendered in prepared.rendered:
            ids = prepared.members[rendered.key]
            crm_id = learned.get(rendered.key) or rendered.crm_id
            attempted: datetime | None = None
            for tid in ids:
                prior = priors.get(tid)
                if prior is None or not prior.attempts:
                    continue
                if prior.crm_id:
                    crm_id = crm_id or prior.crm_id
                else:
                    sent = self._sent_by(prior)
                    attempted = max(attempted or sent, sent)
            if rendered.key in learned and rendered.key not in prepared.digests:
                # The record exists with this very content: confirm it, write nothing.
                prepared.found[rendered.key] = learned[rendered.key]
                continue
            kept.append(replace(rendered, crm_id=crm_id, attempted_at=attempted))
        prepared.rendered = kept

    def _sent_by(self, prior: Any) -> datetime:
        """The latest moment the earlier attempt behind ``prior`` could have sent its write.

        ``intended_at`` is stamped before the push, and a push can send its records seconds
        later (chunks, retries, rate-limit waits). The run that stamped it sent nothing after it
        finished; a run that never finished (killed) sent nothing after this run started."""
        ended = self._run_ends.get(prior.run_id) if prior.run_id is not None else None
        if prior.run_id is not None and prior.run_id not in self._run_ends:
            with reading(self.ctx.engine) as conn:
                ended = conn.execute(
                    select(_RUN.c.finished_at).where(_RUN.c.id == prior.run_id)
                ).scalar_one_or_none()
            self._run_ends[prior.run_id] = ended
        intended: datetime = prior.intended_at
        if prior.run_id == self.ctx.run_id:
            return max(intended, utcnow())
        return max(intended, ended or self.ctx.started_at)

    def _priors(self, touch_ids: Sequence[int]) -> dict[int, Any]:
        """The delivery rows of ``touch_ids`` to this sink as they stand before this attempt."""
        found: dict[int, Any] = {}
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(touch_ids), _LOOKUP_CHUNK):
                rows = conn.execute(
                    select(
                        _DELIVERY.c.touch_id,
                        _DELIVERY.c.attempts,
                        _DELIVERY.c.intended_at,
                        _DELIVERY.c.crm_id,
                        _DELIVERY.c.run_id,
                    ).where(
                        _DELIVERY.c.sink == self.sink,
                        AnyOf(_DELIVERY.c.touch_id, touch_ids[start : start + _LOOKUP_CHUNK]),
                    )
                )
                found.update((row.touch_id, row) for row in rows)
        return found

    def _confirm(self, conn: Connection, confirmed: Sequence[Mapping[str, Any]]) -> None:
        """Mark deliveries confirmed with their CRM ids (``tid``/``crm_id`` dicts)."""
        update_each(
            conn,
            _DELIVERY,
            "touch_id",
            [{"touch_id": c["tid"], "crm_id": c["crm_id"]} for c in confirmed],
            where={"sink": self.sink},
            fixed={
                "state": DeliveryState.CONFIRMED.value,
                "confirmed_at": utcnow(),
                "last_error": None,
            },
        )

    def _mql_verdicts(
        self, emails: Iterable[str], people: Mapping[str, Person], work: _Batch
    ) -> dict[str, MqlVerdict]:
        """Whether each person is MQL now, judged on every touch the ledger holds for them
        (any source) and on the CRM's person when it has one (its score)."""
        wanted = sorted(set(emails))
        lifecycle = self.mapping.lifecycle
        history: dict[str, list[Touch]] = {email: [] for email in wanted}
        with reading(self.ctx.engine) as conn:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                rows = conn.execute(
                    select(_TOUCH).where(
                        AnyOf(_TOUCH.c.email, wanted[start : start + _LOOKUP_CHUNK]),
                        _TOUCH.c.occurred_at <= self.ctx.started_at,
                    )
                )
                for row in rows:
                    history.setdefault((row.email or "").lower(), []).append(touch_from_row(row))
        sources = {_email(p.touch): p.touch.source for p in work.batch}
        verdicts: dict[str, MqlVerdict] = {}
        for email in wanted:
            person = people.get(email) or Person(
                source=sources.get(email, ""), external_id=email, kind=PersonKind.LEAD, email=email
            )
            verdicts[email] = lifecycle.mql_verdict(person, history[email], self.ctx.started_at)
        return verdicts

    def _gate(
        self,
        work: _Batch,
        with_email: Sequence[Pending],
        people: Mapping[str, Person],
        first_touch: Mapping[str, Touch],
    ) -> dict[str, MqlVerdict]:
        """The MQL verdicts the mapping's ``mql_gate`` needs for this batch (none without one)."""
        lifecycle = self.mapping.lifecycle
        if lifecycle.gates("push_touches"):
            return self._mql_verdicts((_email(p.touch) for p in with_email), people, work)
        if lifecycle.gates("create_people") and first_touch:
            return self._mql_verdicts(first_touch, people, work)
        return {}

    def _identify(self, work: _Batch) -> tuple[list[Touch], dict[int, str]]:
        """Find or create the person of every touch: (touches ready to map, held touch ids with
        the reason each waits)."""
        with_email: list[Pending] = []
        for p in work.batch:
            if p.touch.email and p.touch.email.strip():
                with_email.append(p)
            else:
                reason = "the touch has no email address, so no CRM person can be found for it"
                work.reject(p, "NO_EMAIL", reason, DeadLetterStage.RESOLVE)
        people = self.resolve(p.touch.email or "" for p in with_email)
        first_touch: dict[str, Touch] = {}
        for p in with_email:
            email = _email(p.touch)
            if email not in people:
                first_touch.setdefault(email, p.touch)
        lifecycle = self.mapping.lifecycle
        verdicts = self._gate(work, with_email, people, first_touch)
        waiting = {email for email, verdict in verdicts.items() if not verdict.qualified}
        if lifecycle.gates("create_people"):
            first_touch = {e: t for e, t in first_touch.items() if e not in waiting}
        held_emails: set[str] = set()
        refused: dict[str, RecordRejected] = {}
        if first_touch:
            try:
                created, held_emails, refused = self._create(first_touch)
            except RecordRejected as exc:
                created = {}
                for p in with_email:
                    if _email(p.touch) in first_touch:
                        reason = f"creating the person for {_email(p.touch)} was refused: {exc}"
                        work.reject(p, exc.code, reason, DeadLetterStage.RESOLVE)
            people.update(created)
            remember(self._fields_done, created)
            work.created = set(created)
        work.people = people
        ready: list[Touch] = []
        held: dict[int, str] = {}
        for p in with_email:
            email = _email(p.touch)
            if p.touch.key in work.rejected:
                continue
            if email in waiting and (email not in people or lifecycle.gates("push_touches")):
                held[p.touch_id] = f"held until MQL (lifecycle.mql_gate): {verdicts[email].why}"
                log.info("held until MQL", touch=p.touch.key, why=verdicts[email].why)
            elif email in people:
                ready.append(p.touch)
            elif email in held_emails:
                held[p.touch_id] = HELD
            else:
                self._not_created(work, p, refused.get(email))
        self._update_people(people, ready)
        return ready, held

    def _not_created(self, work: _Batch, p: Pending, why: RecordRejected | None) -> None:
        """Set aside a touch whose person the CRM did not create: pending when the CRM said
        "not now", else a dead letter with the CRM's answer."""
        email = _email(p.touch)
        if why is not None and why.retryable:
            # "Not now" (the person still row-locked after the retries): pending, and the
            # next run looks the person up (or creates it) again.
            error = (
                f"{self.sink} could not create the person for {email} for now: "
                f"{why.code}: {why}; will retry"
            )
            work.later.setdefault(error, []).append(p.touch_id)
        elif why is not None:
            # The CRM's own answer (Salesforce INVALID_EMAIL_ADDRESS, HubSpot INVALID_EMAIL).
            reason = f"{self.sink} refused to create the person for {email}: {why.code}: {why}"
            work.reject(p, why.code, reason, DeadLetterStage.RESOLVE)
        else:
            reason = f"the CRM did not create a person for {email} and gave no reason"
            work.reject(p, "CREATE_FAILED", reason, DeadLetterStage.RESOLVE)

    def _render(self, work: _Batch, ready: list[Touch]) -> Prepared:
        """Digest and render the ready touches; records the mapping refuses are dead-lettered."""
        prepared = Prepared()
        filtered = 0
        for touch in self.mapping.digest([*ready, *self._digest_members(work)]):
            member_keys = list(touch.raw.get("touch_keys", [])) if is_digest(touch) else [touch.key]
            members = [work.by_key[k] for k in member_keys if k in work.by_key]
            if not members:
                continue  # a digest made only of touches delivered before
            # A digest rolled up again: the record its earlier members went to is rewritten.
            record = next(
                (work.delivered_ids[k] for k in member_keys if k in work.delivered_ids), None
            )
            try:
                rendered = self.mapping.render(touch, work.people.get(_email(touch)))
            except MappingError as exc:
                for p in members:
                    work.reject(p, "MAPPING", str(exc), DeadLetterStage.MAP)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the batch
                for p in members:
                    reason = f"rendering failed: {type(exc).__name__}: {exc}"
                    work.reject(p, "MAPPING", reason, DeadLetterStage.MAP)
                continue
            if rendered is None:
                filtered += len(members)
                prepared.log.extend(
                    self._step(
                        "skip", p.touch.key, p.touch.email, answer="filtered out by the mapping"
                    )
                    for p in members
                )
                continue
            if record is not None:
                rendered = replace(rendered, crm_id=record)
            if is_digest(touch):
                prepared.digests.add(rendered.key)
            prepared.rendered.append(rendered)
            prepared.members[rendered.key] = [p.touch_id for p in members]
            prepared.sources[rendered.key] = [(p.touch.key, p.touch.email) for p in members]
            self._claim_members(prepared, rendered, members)
        self.ctx.add("filtered", filtered)
        self.ctx.add("rendered", len(prepared.rendered))
        return prepared

    def _claim_members(
        self, prepared: Prepared, rendered: RenderedTouch, members: Sequence[Pending]
    ) -> None:
        """Note the campaign memberships the touches behind ``rendered`` earn, if any."""
        plan = self.mapping.campaign_members
        if plan is None or not rendered.person_id:
            return
        for p in members:
            campaign = plan.campaign_for(p.touch.campaign)
            status = plan.status_for(p.touch.kind)
            if campaign is not None and status is not None:
                prepared.campaign_members.append(
                    MemberClaim(rendered.key, p.touch, campaign, rendered.person_id, status)
                )

    def after_prepare(self, conn: Connection, batch: Sequence[Pending]) -> None:
        """Hook run inside the intent transaction (the touches pipeline moves its cursor)."""

    def _dead_letter(self, conn: Connection, rejects: Sequence[tuple[int, Rejection, str]]) -> None:
        if not rejects:
            return
        by_stage: dict[str, list[Rejection]] = {}
        for touch_id, rejection, stage in rejects:
            by_stage.setdefault(stage, []).append(rejection)
            self._mark(conn, [touch_id], DeliveryState.DEAD, error=f"{stage}: {rejection.reason}")
        for stage, items in by_stage.items():
            insert_rejects(conn, self.ctx.name, stage, items)
        self.ctx.add("dead_lettered", len(rejects))

    def _mark(
        self,
        conn: Connection,
        touch_ids: Sequence[int],
        state: DeliveryState,
        *,
        error: str | None = None,
        bump: bool = False,
    ) -> None:
        """Upsert the delivery rows of ``touch_ids`` to ``state`` (attempts+1 when ``bump``)."""
        if not touch_ids:
            return
        ids = list(dict.fromkeys(touch_ids))
        values: dict[str, Any] = {
            "sink": self.sink,
            "state": state.value,
            "last_error": error,
            "run_id": self.ctx.run_id,
            "intended_at": utcnow(),
            "attempts": 1 if bump else 0,
        }
        statement = dialect_insert(conn, _DELIVERY)
        rows: list[dict[str, Any]] | None = None
        if conn.dialect.name == "postgresql" and len(ids) >= BULK_FROM:
            # One statement over the unnested ids, not one per row (see ``update_each``).
            unnested = func.unnest(bindparam("ids", ids, type_=ARRAY(Integer)))
            constants = (literal(v, _DELIVERY.c[k].type) for k, v in values.items())
            statement = statement.from_select(["touch_id", *values], select(unnested, *constants))
        else:
            rows = [{"touch_id": tid, **values} for tid in ids]
        attempts = _DELIVERY.c.attempts + 1 if bump else _DELIVERY.c.attempts
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["touch_id", "sink"],
                set_={
                    "state": statement.excluded.state,
                    "last_error": statement.excluded.last_error,
                    "run_id": statement.excluded.run_id,
                    "intended_at": statement.excluded.intended_at,
                    "attempts": attempts,
                },
            ),
            rows,
        )

    # -- push ----------------------------------------------------------------------------------

    def push(self, prepared: Prepared) -> None:
        """Push a prepared batch (under the org's push slots) and commit the outcomes."""
        if not prepared.rendered:
            return
        with self.ctx.connections.push_slots(self.sink):
            results = self._push_all(prepared.rendered)
            landed = {r.key for r in results if r.ok}
            claims = [c for c in prepared.campaign_members if c.rendered_key in landed]
            member_rejects, member_later = self._sync_members(claims)
        by_key = {r.key: r for r in results}
        confirmed: list[dict[str, Any]] = []
        rejects: list[tuple[int, Rejection, str]] = []
        unanswered: list[int] = []
        later: dict[str, list[int]] = {}  # "not now" (a record lock): pending, by last_error
        for rendered in prepared.rendered:
            ids = prepared.members[rendered.key]
            result = by_key.get(rendered.key)
            if result is None:
                unanswered.extend(ids)
            elif result.ok and rendered.key not in member_later:
                confirmed.extend({"tid": tid, "crm_id": result.crm_id} for tid in ids)
            elif result.ok or result.retryable:
                error = member_later.get(rendered.key) or (
                    f"{self.sink} refused the record for now: {result.error_code}: "
                    f"{result.error_message or ''}; will retry"
                )
                later.setdefault(error, []).extend(ids)
            else:
                code = result.error_code or "REJECTED"
                reason = f"{self.sink} refused the record: {code}: {result.error_message or ''}"
                payload = {"key": rendered.key, "target": rendered.target,
                           "payload": _plain(dict(rendered.payload))}  # fmt: skip
                rejects.extend(
                    (tid, Rejection(rendered.key, code, reason.strip(), payload),
                     DeadLetterStage.PUSH.value)
                    for tid in ids
                )  # fmt: skip
        steps = log_rows(self._push_log(prepared, by_key, member_later))
        with self.ctx.transaction() as conn:
            self._confirm(conn, confirmed)
            if self.audit is not None:
                self.audit.forget(conn, {r.key: r.crm_id or "" for r in results if r.ok})
            self._dead_letter(conn, rejects)
            if member_rejects:
                insert_rejects(conn, self.ctx.name, DeadLetterStage.PUSH.value, member_rejects)
            if unanswered:
                self._mark(
                    conn, unanswered, DeliveryState.FAILED,
                    error=f"{self.sink} returned no result for this record; will retry",
                )  # fmt: skip
            for error, ids in later.items():
                self._mark(conn, ids, DeliveryState.FAILED, error=error, bump=True)
            log_steps(conn, steps)
        retried = sum(len(ids) for ids in later.values())
        self.pushed_records += len(prepared.rendered)
        self.ctx.add("pushed", len(confirmed))
        self.ctx.add("failed", len(unanswered) + retried)
        self.ctx.progress("push", len(confirmed) + len(rejects) + len(unanswered) + retried)

    def _sync_members(
        self, claims: Sequence[MemberClaim]
    ) -> tuple[list[Rejection], dict[str, str]]:
        """Settle the campaign memberships of delivered touches: the refused ones as rejections
        (the touches' deliveries stand), and the ones refused "not now" (a record lock) by
        rendered key with the reason (those touches stay pending and are pushed again)."""
        plan = self.mapping.campaign_members
        if plan is None or not claims:
            return [], {}
        sync = getattr(self.crm, "sync_campaign_members", None)
        if sync is None:
            raise ConfigError(
                f"connection {self.sink!r} cannot add campaign members: the mapping's "
                "campaign_members section needs a Salesforce sink"
            )
        items = [
            MemberItem(c.touch.key, c.campaign.value, c.person_id, c.status, c.campaign.by_id)
            for c in claims
        ]
        results: list[MemberResult] = self._call(
            lambda: sync(items, plan.status_order, self._campaign_ids)
        )
        rejects: list[Rejection] = []
        later: dict[str, str] = {}
        pending = 0
        done: dict[str, set[str]] = {"created": set(), "updated": set()}
        for claim, result in zip(claims, results, strict=True):
            if result.ok:
                if result.action in done and result.member_id:
                    done[result.action].add(result.member_id)
                continue
            code = result.error_code or "REJECTED"
            if result.retryable:
                later[claim.rendered_key] = (
                    f"{self.sink} could not settle the campaign member ({claim.campaign.value!r}, "
                    f"{claim.status!r}) for now: {code}: {result.error_message or ''}; will retry"
                )
                pending += 1
                continue
            reason = (
                f"{self.sink} refused the campaign member ({claim.campaign.value!r}, "
                f"{claim.status!r}): {code}: {result.error_message or ''}"
            )
            payload = {
                "key": claim.touch.key,
                "campaign_member": {
                    "campaign": claim.campaign.value,
                    "campaign_is_id": claim.campaign.by_id,
                    "person_id": claim.person_id,
                    "status": claim.status,
                },
            }
            rejects.append(Rejection(claim.touch.key, code, reason.strip(), payload))
            self.member_failures.add(claim.touch.key)
        self.ctx.add("campaign_members", len(claims) - len(rejects) - pending)
        self.ctx.add("campaign_members_created", len(done["created"]))
        self.ctx.add("campaign_members_updated", len(done["updated"]))
        self.ctx.add("campaign_members_refused", len(rejects))
        return rejects, later

    def _push_all(self, rendered: list[RenderedTouch]) -> list[DeliveryResult]:
        """``push_touches`` with retries; a record raised as RecordRejected is set aside."""
        pending = list(rendered)
        results: list[DeliveryResult] = []
        for _ in range(len(rendered) + 1):
            try:
                results.extend(self._call(partial(self.crm.push_touches, pending)))
                return results
            except RecordRejected as exc:
                keys = {exc.key} if exc.key else {r.key for r in pending}
                results.extend(
                    DeliveryResult(key, self.sink, False, error_code=exc.code,
                                   error_message=str(exc))
                    for key in keys
                )  # fmt: skip
                pending = [r for r in pending if r.key not in keys]
                if not pending:
                    return results
        return results

    def minimum_calls(self) -> int | None:
        """The fewest push calls that could carry what this run pushed, when known."""
        if not self.per_call:
            return None
        return math.ceil(self.pushed_records / self.per_call)


class _Batch:
    """One batch being prepared: its touches by key, people found, and records refused."""

    def __init__(self, batch: Sequence[Pending]) -> None:
        self.batch = batch
        self.by_key = {p.touch.key: p for p in batch}
        self.people: dict[str, Person] = {}
        self.rejects: list[tuple[int, Rejection, str]] = []
        self.rejected: set[str] = set()
        # Touches left pending for now (a person still row-locked), by last_error.
        self.later: dict[str, list[int]] = {}
        # Touch key -> CRM record id of touches delivered before and rolled into a digest again.
        self.delivered_ids: dict[str, str] = {}
        self.created: set[str] = set()  # emails of the people created for this batch

    def reject(self, pending: Pending, code: str, reason: str, stage: DeadLetterStage) -> None:
        """Set one touch aside as a dead letter of ``stage``."""
        rejection = Rejection(pending.touch.key, code, reason, touch_payload(pending.touch))
        self.rejects.append((pending.touch_id, rejection, stage.value))
        self.rejected.add(pending.touch.key)
