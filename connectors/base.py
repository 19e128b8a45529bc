"""The connector contract: record types every connector speaks, and the Protocols it implements.

Record types are plain frozen dataclasses: cheap to build by the hundred thousand, hashable,
and free of any vendor or ledger type. Times are timezone-aware UTC ``datetime`` values.

A connector plays one or more roles:

- ``ActivitySource``: yields marketing touches since a cursor (Marketo, HubSpot marketing,
  file imports, webhooks).
- ``Crm``: resolves people by email, writes touches to timelines idempotently (keyed by the
  touch key), and yields changes since a cursor (dispositions, accounts, opportunities, ...).

Connectors never own state: the engine hands them a ``Cursor`` and commits the records they
yield together with the advanced cursor in one transaction.

A record a source cannot read (no id, an unreadable time, a wrong type: a "poison record")
never stops a pull: the source leaves it out of ``Page.records`` and puts it in
``Page.rejects`` instead, as a ``RecordRejected`` built by ``source_reject`` (the record's key,
a code naming what is wrong, a reason a person can act on, and the raw record as the vendor
sent it). The engine stores those as dead letters of stage ``pull`` in the same transaction as
the page's records and cursor, so the cursor moves past the record and the rest flows.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from connectors.errors import RecordRejected

__all__ = [
    "Account",
    "ActivitySource",
    "Campaign",
    "CheckResult",
    "ContactRole",
    "Crm",
    "Cursor",
    "DeliveryResult",
    "KeyedRecord",
    "KeyedSink",
    "ListChange",
    "MemberAction",
    "MemberItem",
    "MemberResult",
    "Opportunity",
    "OptOutResult",
    "Owner",
    "Page",
    "Person",
    "PersonKind",
    "PersonSnapshot",
    "PersonUpdate",
    "Program",
    "ReasonChange",
    "RenderedTouch",
    "StatusChange",
    "Touch",
    "TouchKind",
    "source_reject",
    "touch_key",
]

T = TypeVar("T")


class TouchKind(enum.StrEnum):
    """The kinds of marketing touch (DOMAIN.md section 1); sources map their own types to these."""

    EMAIL_SENT = "email_sent"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    EMAIL_BOUNCE = "email_bounce"
    EMAIL_UNSUBSCRIBE = "email_unsubscribe"
    FORM_FILL = "form_fill"
    PAGE_VIEW = "page_view"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    EVENT_ATTENDED = "event_attended"
    CONTENT_DOWNLOAD = "content_download"
    AD_CLICK = "ad_click"
    LIST_IMPORT = "list_import"
    SCORE_CHANGE = "score_change"
    OTHER = "other"


class PersonKind(enum.StrEnum):
    """Which CRM record a person is: a Lead (not yet converted) or a Contact."""

    LEAD = "lead"
    CONTACT = "contact"


def touch_key(source: str, source_id: str) -> str:
    """The deterministic key of a touch, ``<source>:<source_activity_id>``; writes upsert on it."""
    return f"{source}:{source_id}"


@dataclass(frozen=True, slots=True)
class Touch:
    """One marketing activity by one person, as pulled from a source (raw payload kept)."""

    source: str
    source_id: str
    kind: TouchKind
    occurred_at: datetime
    email: str | None
    person_ref: str | None = None
    campaign: str | None = None
    channel: str | None = None
    asset: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The touch key, unique across sources."""
        return touch_key(self.source, self.source_id)


@dataclass(frozen=True, slots=True)
class Person:
    """A Lead or Contact as the CRM (or a source) knows it."""

    source: str
    external_id: str
    kind: PersonKind
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    status: str | None = None
    lifecycle_stage: str | None = None
    lead_source: str | None = None
    score: float | None = None
    converted: bool = False
    converted_contact_id: str | None = None
    converted_account_id: str | None = None
    converted_opportunity_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PersonSnapshot:
    """Some fields of a CRM person as the CRM holds them now (``read_person_fields``).

    ``changed_at`` holds, per field, when its value last changed, where the CRM keeps field
    history (Salesforce LeadHistory / ContactHistory of tracked fields, HubSpot property
    history); a field without one falls back to ``updated_at``, the record's last change.
    """

    external_id: str
    values: Mapping[str, Any]
    changed_at: Mapping[str, datetime] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PersonUpdate:
    """Field values to write on one existing Lead or Contact (``update_people``); ``person``
    names the record (its CRM id, kind and email)."""

    person: Person
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Account:
    """A company in the CRM."""

    source: str
    external_id: str
    name: str
    domain: str | None = None
    owner_id: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Opportunity:
    """A deal: stage, amount and dates are what attribution and ROI need."""

    source: str
    external_id: str
    name: str
    account_id: str | None
    stage: str
    amount: Decimal | None = None
    currency: str | None = None
    is_closed: bool = False
    is_won: bool = False
    close_date: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    campaign_id: str | None = None
    owner_id: str | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ContactRole:
    """A person's role on an opportunity (Salesforce OpportunityContactRole, HubSpot assoc.)."""

    source: str
    external_id: str
    opportunity_id: str
    person_id: str
    role: str | None = None
    is_primary: bool = False
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Campaign:
    """A marketing campaign or program, with its channel and cost (for ROI)."""

    source: str
    external_id: str
    name: str
    channel: str | None = None
    actual_cost: Decimal | None = None
    budgeted_cost: Decimal | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Owner:
    """A CRM user records are assigned to (Salesforce User, HubSpot owner): the rep behind the
    owner ids of people, accounts and deals. Users are deactivated, not deleted (``deleted``:
    inactive or archived)."""

    source: str
    external_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    updated_at: datetime | None = None
    deleted: bool = False

    @property
    def name(self) -> str | None:
        """First and last name, or None when the CRM gives neither."""
        text = " ".join(part for part in (self.first_name, self.last_name) if part).strip()
        return text or None


@dataclass(frozen=True, slots=True)
class Program:
    """A marketing source's program (Marketo) as its touches name it (``external_id``), with
    the CRM campaign it is synced to, when it is (Marketo's Salesforce Campaign Sync)."""

    source: str
    external_id: str
    name: str
    channel: str | None = None
    crm_campaign_id: str | None = None
    crm_campaign_name: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One observed change of a lead status, lifecycle stage or deal stage (a disposition)."""

    source: str
    object_type: str
    object_id: str
    field: str
    old_value: str | None
    new_value: str | None
    changed_at: datetime
    reason: str | None = None
    owner_id: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class ReasonChange:
    """A value written to a reason field (why sales disqualified or recycled a person) at the
    CRM's time; the dispositions pipeline gives it to the decision it explains."""

    source: str
    object_type: str
    object_id: str
    field: str  # the CRM field, e.g. Disqualified_Reason__c
    value: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class RenderedTouch:
    """A touch after mapping: the exact CRM payload to write, keyed by the touch key.

    ``crm_id`` and ``attempted_at`` say what the ledger knows of this key at the sink, for CRMs
    whose creates are not idempotent (HubSpot engagements): ``crm_id`` is the record the key
    already has (a digest rolled up again: update it, do not create another);
    ``attempted_at`` is when an earlier write of the key was sent with no answer recorded (a
    crash or lost answer: look for the record before creating). Neither set: the ledger vouches
    that the key was never sent, so a create is safe. CRMs that upsert on the key ignore both.
    """

    key: str
    target: str
    payload: Mapping[str, Any]
    person_id: str | None = None
    account_id: str | None = None
    opportunity_id: str | None = None
    crm_id: str | None = None
    attempted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of writing one touch to one sink.

    A refusal with ``retryable`` (the CRM said "not now", e.g. a record lock, and the connector's
    own retries did not get past it) is left pending for the next run, never dead-lettered.
    """

    key: str
    sink: str
    ok: bool
    crm_id: str | None = None
    created: bool | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class OptOutResult:
    """The outcome of opting one person out of email in a CRM (``opt_out``).

    ``changed`` is False when the CRM already had the person opted out (nothing was written);
    a refusal carries the CRM's code and message.
    """

    email: str
    ok: bool
    changed: bool = False
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a stream has been read: a value plus the keys seen at exactly that value.

    Records at the boundary value are re-read on the next pull (the cursor is inclusive and
    capped at the run's start); ``boundary_keys`` lets the engine drop those duplicates.
    """

    value: str | None = None
    boundary_keys: frozenset[str] = frozenset()

    def advance(self, value: str, keys: Iterable[str]) -> Cursor:
        """The cursor after records at ``value`` with ``keys`` were read."""
        if value == self.value:
            return Cursor(value, self.boundary_keys | frozenset(keys))
        return Cursor(value, frozenset(keys))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A batch of records and the cursor that covers them; committed together by the engine.

    ``rejects`` are the records of the range the source could not read (see ``source_reject``);
    the touches pipeline dead-letters them in the same transaction as the page, so the cursor
    never stops at them (CRM change streams yield none so far).
    """

    records: Sequence[T]
    cursor: Cursor
    rejects: Sequence[RecordRejected] = ()


def source_reject(
    source: str,
    code: str,
    reason: str,
    payload: Mapping[str, Any],
    source_id: str | None = None,
) -> RecordRejected:
    """A source record that cannot become a touch, as ``Page.rejects`` carries it.

    Its ``key`` is the touch key the record would have had (``source_id`` given), else
    ``<source>:raw-<digest>``: a SHA-256 of the payload, so the same bad record read again
    (a re-read boundary, a re-run) is the same dead letter, not a new one.
    """
    if source_id is None:
        try:
            text = json.dumps(payload, sort_keys=True, default=repr, ensure_ascii=True)
        except (TypeError, ValueError):  # keys of mixed types, a cycle: still one stable text
            text = repr(sorted(repr(item) for item in payload.items()))
        source_id = (
            "raw-" + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:32]
        )
    return RecordRejected(
        reason, code=code, key=touch_key(source, source_id), payload=dict(payload)
    )


@dataclass(frozen=True, slots=True)
class KeyedRecord:
    """A CRM record that carries a touch key, as ``KeyedSink`` lists them."""

    key: str
    crm_id: str
    target: str


MemberAction = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class MemberItem:
    """One delivered touch's claim: ``person_id`` is a member of ``campaign`` with ``status``.

    ``campaign`` is a Campaign Id when ``by_id``, else a Campaign Name. ``key`` (the touch key)
    names the result.
    """

    key: str
    campaign: str
    person_id: str
    status: str
    by_id: bool = False


@dataclass(frozen=True, slots=True)
class MemberResult:
    """The outcome for one item: the member's id and what was done, or Salesforce's refusal."""

    key: str
    ok: bool
    member_id: str | None = None
    action: MemberAction | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False  # "not now" (a record lock): settle it again on the next run


@dataclass(frozen=True)
class ListChange(Generic[T]):
    """The outcome of a list add or remove: members changed, and members the vendor skipped.

    Adding a member already on the list changes nothing and is neither changed nor skipped.
    """

    changed: list[T] = field(default_factory=list)
    skipped: list[RecordRejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of a ``closedloop check``: what was checked, whether it passed, how to fix it."""

    name: str
    ok: bool
    detail: str = ""
    remedy: str = ""


@runtime_checkable
class ActivitySource(Protocol):
    """A marketing platform or feed that yields touches."""

    name: str

    def check(self) -> list[CheckResult]:
        """Verify credentials and access; never raises for a failed check."""
        ...

    def pull_touches(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        """Yield touches that occurred after ``cursor`` and at or before ``until``."""
        ...


@runtime_checkable
class Crm(Protocol):
    """A CRM: identity lookups, idempotent timeline writes, and change pulls.

    Optional, for the mapping's ``people.fields`` rules on people the CRM already has (a CRM
    without them gets its people's fields on create only): ``read_person_fields(people, fields,
    history) -> dict[id, PersonSnapshot]`` and ``update_people(updates: Sequence[PersonUpdate])
    -> list[RecordRejected]`` (refusals keyed by e-mail), both batched.
    """

    name: str

    def check(self) -> list[CheckResult]:
        """Verify credentials, API version and the objects and fields the mapping needs."""
        ...

    def resolve_people(self, emails: Sequence[str]) -> dict[str, Person]:
        """Find the Lead or Contact behind each email (lower-cased); absent emails are omitted."""
        ...

    def create_people(self, people: Sequence[Person]) -> list[Person]:
        """Create people not yet in the CRM; returns them with their new CRM ids.

        People the CRM refuses are left out of the result. A connector that can say why keeps
        them in a ``last_rejections`` attribute until its next call: ``RecordRejected`` keyed by
        the lower-cased e-mail, with the CRM's own code and message (the engine puts them on
        the dead letters of the touches of those people).
        """
        ...

    def push_touches(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Write rendered touches. A key sent again never makes a second record when the touch
        says what the ledger knows (``attempted_at``: an earlier send got no answer; ``crm_id``:
        the record the key has); a CRM that upserts on the key may ignore both."""
        ...

    def pull_changes(self, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        """Yield records of ``stream`` (e.g. "people", "opportunities") changed since ``cursor``."""
        ...


@runtime_checkable
class KeyedSink(Protocol):
    """A CRM whose creates are not idempotent: the records it holds per touch key can be listed.

    The engine reads them newest first to tell whether the ledger still knows every keyed record
    of the sink and, when it does not (a lost or restored ledger, another writer), to learn the
    ones it lacks before creating anything; see ``sync.pipelines.keyaudit``.
    """

    def keyed_targets(self, targets: Iterable[str]) -> list[str]:
        """The mapping targets among ``targets`` that are written as keyed records."""
        ...

    def scan_keyed(self, target: str) -> Iterator[list[KeyedRecord]]:
        """The records of ``target`` carrying a touch key, newest first, a page at a time."""
        ...
