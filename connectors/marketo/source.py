"""The Marketo connector: activities as touches, lead lookups, static list membership, checks.

Incremental pull (``pull_touches``), in as few calls as Marketo allows:

- one ``activities/types.json`` per connector (cached), one ``pagingtoken.json`` per pull from
  the cursor's time, reused as the starting token of every group of at most 10 activity types;
- ``activities.json`` pages of 300 per group, followed while ``moreResult`` is true (Marketo
  returns empty pages while it scans), stopping at ``until``; the groups are read interleaved,
  always advancing the one that is furthest behind, so the cursor can move forward safely;
- activities carry only a lead id: emails come from ``leads.json?filterType=id`` lookups of
  exactly 300 ids at a time (a touch waits until its lead's batch is full, or the pull ends),
  each lead once per pull: what the pull looked up waits in a temporary on-disk database
  (``connectors.marketo.leadbook``), not in memory. The same lookup reads the lead's name,
  company, title, phone, country and ``updatedAt`` (``PERSON_FIELDS``), which each touch
  carries as ``attributes["person"]`` for the people fields of the mapping. Lead lookups
  follow ``nextPageToken`` while ``moreResult`` says there is more (an e-mail address may
  belong to several leads).

The cursor value is the activity time (ISO, UTC) up to which every activity has been yielded;
``boundary_keys`` are the keys yielded at exactly that time (Marketo times have second
precision, so the next pull re-reads that second and drops them).

Pulls spanning more than ``bulk_backfill_days`` use the bulk activity extract instead: one job
per 31-day window (Marketo's maximum), created and enqueued once each
(``connectors.marketo.exports``), polled until complete (at most once a minute by default: the
status changes no faster), downloaded as CSV, checked against the job's SHA-256
``fileChecksum`` and parsed into the same touches.

An activity that cannot be read (``activities``: no id, an unreadable ``activityDate``, no
integer type or lead) never stops a pull: it goes into the next page's ``rejects`` with its raw
payload (a dead letter of stage ``pull``) and the pull goes on past it. One whose date is
readable counts at that time for the cursor, like a touch, so the re-read boundary second does
not refuse it twice.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import httpx

from connectors.base import (
    CheckResult,
    Cursor,
    ListChange,
    Page,
    Person,
    PersonKind,
    Program,
    Touch,
)
from connectors.errors import ClosedloopError, ConfigError, Fatal, RecordRejected, Transient
from connectors.marketo.activities import (
    ActivityType,
    activity_head,
    activity_time,
    bulk_csv_dates,
    format_marketo_time,
    parse_bulk_csv,
    parse_marketo_time,
    resolve_types,
    to_touch,
)
from connectors.marketo.client import MarketoClient
from connectors.marketo.exports import EXPORTS, export_field, start_export
from connectors.marketo.leadbook import LeadBook, LeadDetails
from connectors.marketo.settings import MarketoSettings
from connectors.ratelimit import Clock

__all__ = ["MarketoSource"]

# Marketo's own limits (developer docs; ARCHITECTURE.md "Limits").
MAX_TYPES_PER_CALL = 10
MAX_IDS_PER_CALL = 300
# Get Programs returns at most 200 a call (maxReturn), paged by offset.
PROGRAMS_PER_CALL = 200
MAX_EXPORT_DAYS = 31
# Keep comma-separated filter values well under Marketo's 8 KB URL limit.
_MAX_FILTER_CHARS = 6000
# Touches per page of a bulk backfill (the CSV is read row by row; pages keep commits small).
_BULK_PAGE = 3000
# Bytes hashed at a time when checking a downloaded export file.
_HASH_CHUNK = 1024 * 1024
_LEAD_FIELDS = "id,email,firstName,lastName,company,leadScore,createdAt,updatedAt"
# Marketo lead field (REST API name) -> the person field a touch carries in
# ``attributes["person"]`` (the names files use too); read with every activity's email.
PERSON_FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "company": "company",
    "title": "title",
    "phone": "phone",
    "country": "country",
    "updatedAt": "updated_at",
}
_DETAIL_FIELDS = ",".join(["id", "email", *PERSON_FIELDS])
_BULK_FIELDS = [
    "marketoGUID",
    "leadId",
    "activityDate",
    "activityTypeId",
    "campaignId",
    "primaryAttributeValueId",
    "primaryAttributeValue",
    "attributes",
]


@dataclass
class _Group:
    """One group of at most 10 activity types being paged through."""

    type_ids: list[int]
    token: str
    progress: datetime
    done: bool = False


class _Pending:
    """Activities waiting for their lead's email, and the cursor that is safe to commit.

    What it remembers in memory is bounded whatever the pull's size: the keys read and emitted
    only at the seconds the cursor may still stand on (from ``at``, or from the window's end
    while a window ``hold``s it), and the leads of the activities queued since the last
    ``take``. Every lead the pull looked up goes into ``book`` (on disk), which ``resolve``
    reads before asking Marketo: each lead is looked up once per pull.
    """

    def __init__(
        self, source: MarketoSource, cursor: Cursor, since: datetime, book: LeadBook
    ) -> None:
        self.source = source
        self.cursor = cursor
        self.floor = since
        self.book = book
        self.items: list[tuple[datetime, dict[str, Any], ActivityType]] = []
        self.rejects: list[RecordRejected] = []
        self.unknown: dict[int, None] = {}  # insertion-ordered set: not looked for in the book
        self.missing: dict[int, None] = {}  # not in the book: to look up in Marketo
        self.emails: dict[int, str | None] = {}  # the queued activities' leads that are known
        self.people: dict[int, dict[str, str]] = {}  # lead id -> its person fields
        self.emitted_at: dict[datetime, set[str]] = {}
        self.seen_at: dict[datetime, set[str]] = {}  # keys read, by their time
        self.seen: set[str] = set()  # keys of refusals without a time
        self.max_emitted: datetime | None = None
        self.at = since  # the time the cursor stands at
        self.keep_from = since  # keys of earlier times are not remembered

    def hold(self, until: datetime) -> None:
        """The cursor stays put until it moves to ``until``: forget keys of earlier times."""
        self.keep_from = max(self.keep_from, until)
        self._forget_before(self.keep_from)

    def read(
        self, when: datetime, activity: dict[str, Any], by_id: Mapping[int, ActivityType]
    ) -> None:
        """Queue an activity read at ``when`` (one of a type not pulled is passed over)."""
        try:
            head = activity_head(self.source.name, activity)
        except RecordRejected as refused:
            self.reject(refused, when)
            return
        atype = by_id.get(head.type_id)
        if atype is None or self._known(self.source.touch_key(head.key), when):
            return
        lead = head.lead_id
        if lead not in self.emails and lead not in self.missing:
            self.unknown[lead] = None
        self.items.append((when, activity, atype))

    def reject(self, refused: RecordRejected, when: datetime | None = None) -> None:
        """Set an unreadable activity aside for the next page (``when``: its time, if known)."""
        key = refused.key or ""
        if when is None:
            if key in self.seen:
                return
            self.seen.add(key)
        elif self._known(key, when):
            return
        else:
            self._emitted(when, key)
        self.rejects.append(refused)

    def _known(self, key: str, when: datetime) -> bool:
        """Whether the touch ``key`` was read already (in this pull, or at the cursor's boundary
        second by the pull before); marks it read. Keys of times before ``keep_from`` are not
        remembered: the cursor is past them, and the ledger drops a touch stored twice."""
        seen = self.seen_at.get(when)
        if seen is not None and key in seen:
            return True
        at_boundary = self.cursor.value is not None and when == self.floor
        if at_boundary and key in self.cursor.boundary_keys:
            return True
        if when >= self.keep_from:
            self.seen_at.setdefault(when, set()).add(key)
        return False

    def _emitted(self, when: datetime, key: str) -> None:
        if when >= self.keep_from:
            self.emitted_at.setdefault(when, set()).add(key)
        if self.max_emitted is None or when > self.max_emitted:
            self.max_emitted = when

    def _forget_before(self, bound: datetime) -> None:
        for table in (self.emitted_at, self.seen_at):
            for when in [w for w in table if w < bound]:
                del table[when]

    def _know(self, lead: int, details: LeadDetails) -> None:
        email, person = details
        self.emails[lead] = email
        if person:
            self.people[lead] = person

    def resolve(self, final: bool) -> None:
        """Find the queued activities' leads in the book; look up the others in Marketo 300 at
        a time (the remainder too when ``final``) and write what it answered into the book (a
        lead it does not know as one without email or fields, not to be asked again)."""
        if self.unknown:
            held = self.book.get(self.unknown)
            for lead in self.unknown:
                details = held.get(lead)
                if details is None:
                    self.missing[lead] = None
                else:
                    self._know(lead, details)
            self.unknown.clear()
        while len(self.missing) >= MAX_IDS_PER_CALL or (final and self.missing):
            batch = list(itertools.islice(self.missing, MAX_IDS_PER_CALL))
            found = self.source.lead_details(batch)
            answered = {lead: found.get(lead) or (None, {}) for lead in batch}
            self.book.put(answered)
            for lead, details in answered.items():
                self._know(lead, details)
                del self.missing[lead]

    def take(self, safe: datetime | None, idle: datetime | None = None) -> Page[Touch] | None:
        """Touches whose email is known, and the cursor up to ``safe`` (None: everything read).

        ``idle`` is where the cursor goes when the whole pull found nothing at all, so that a
        quiet instance is not rescanned from the same old time on every run.
        """
        ready: list[Touch] = []
        waiting: list[tuple[datetime, dict[str, Any], ActivityType]] = []
        for when, activity, atype in self.items:
            lead = _lead_id(activity)
            if lead is not None and lead not in self.emails:
                waiting.append((when, activity, atype))
                continue
            email = self.emails.get(lead) if lead is not None else None
            try:
                touch = to_touch(self.source.name, activity, atype, email)
            except RecordRejected as refused:
                self.rejects.append(refused)
                continue
            person = self.people.get(lead) if lead is not None else None
            if person:
                # The lead's own fields travel with the touch (``PERSON_FIELDS``): the mapping's
                # person.first_name, person.company, person.fields.title ... at delivery.
                touch = replace(touch, attributes={**touch.attributes, "person": person})
            ready.append(touch)
            self._emitted(when, touch.key)
        self.items = waiting
        # The waiting activities' leads are not known yet: every known one is in the book.
        self.emails.clear()
        self.people.clear()
        rejects, self.rejects = self.rejects, []
        bound = safe
        if waiting:
            oldest = min(when for when, _, _ in waiting)
            bound = oldest if bound is None else min(bound, oldest)
        if bound is None:
            bound = self.max_emitted if self.max_emitted is not None else idle
        old = self.cursor
        if bound is not None and bound >= self.at:
            self.at = bound
            self.cursor = self._cursor_at(bound)
        if not ready and not rejects and self.cursor == old:
            return None
        return Page(records=ready, cursor=self.cursor, rejects=rejects)

    def _cursor_at(self, bound: datetime) -> Cursor:
        keys = frozenset(self.emitted_at.get(bound, set()))
        self.keep_from = max(self.keep_from, bound)
        self._forget_before(self.keep_from)
        value = format_marketo_time(bound)
        if value == self.cursor.value:
            return Cursor(value, self.cursor.boundary_keys | keys)
        return Cursor(value, keys)


def _lead_id(activity: Mapping[str, Any]) -> int | None:
    value = activity.get("leadId")
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _chunks(values: Sequence[Any], size: int, max_chars: int | None = None) -> Iterator[list[Any]]:
    """Consecutive chunks of at most ``size`` values (and ``max_chars`` when comma-joined)."""
    chunk: list[Any] = []
    chars = 0
    for value in values:
        width = len(str(value)) + 1
        if chunk and (len(chunk) >= size or (max_chars is not None and chars + width > max_chars)):
            yield chunk
            chunk, chars = [], 0
        chunk.append(value)
        chars += width
    if chunk:
        yield chunk


class MarketoSource:
    """A Marketo instance as an ``ActivitySource``, plus lead lookups and static list changes."""

    def __init__(
        self,
        name: str,
        settings: MarketoSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.client = MarketoClient(settings, clock=clock, transport=transport)
        self.clock = self.client.clock
        self._types: list[ActivityType] | None = None

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()

    def __enter__(self) -> MarketoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def touch_key(self, source_id: str) -> str:
        """The touch key of an activity id from this connection."""
        return f"{self.name}:{source_id}"

    # -- activity types ---------------------------------------------------------------------

    def activity_types(self) -> list[ActivityType]:
        """Every activity type of the instance (one call, cached for the connector's life)."""
        if self._types is None:
            body = self.client.call("GET", "/rest/v1/activities/types.json")
            self._types = [ActivityType.from_api(item) for item in body.get("result") or []]
        return self._types

    def selected_types(self) -> list[ActivityType]:
        """The types this connection pulls (``activity_types`` or every standard type mapped)."""
        return resolve_types(self.settings.activity_types, self.activity_types())

    # -- pulling ----------------------------------------------------------------------------

    def pull_touches(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        """Yield touches from ``cursor`` (minus its boundary keys) up to and including ``until``."""
        until = until.astimezone(UTC)
        if cursor.value:
            since = parse_marketo_time(cursor.value)
        else:
            since = until - timedelta(days=self.settings.initial_lookback_days)
        if since > until:
            return
        types = self.selected_types()
        bulk_days = self.settings.bulk_backfill_days
        if bulk_days is not None and until - since > timedelta(days=bulk_days):
            pull = self._pull_bulk
        else:
            pull = self._pull_rest
        with LeadBook() as book:  # the leads this pull looked up, gone with it
            yield from pull(cursor, since, until, types, book)

    def _pull_rest(
        self,
        cursor: Cursor,
        since: datetime,
        until: datetime,
        types: list[ActivityType],
        book: LeadBook,
    ) -> Iterator[Page[Touch]]:
        by_id = {t.id: t for t in types}
        body = self.client.call(
            "GET",
            "/rest/v1/activities/pagingtoken.json",
            params={"sinceDatetime": format_marketo_time(since)},
        )
        start_token = body.get("nextPageToken")
        if not isinstance(start_token, str) or not start_token:
            raise Fatal("Marketo GET /rest/v1/activities/pagingtoken.json returned no token")
        ids = [t.id for t in types]
        groups = [
            _Group(ids[i : i + MAX_TYPES_PER_CALL], start_token, since)
            for i in range(0, len(ids), MAX_TYPES_PER_CALL)
        ]
        pending = _Pending(self, cursor, since, book)
        while True:
            active = [g for g in groups if not g.done]
            if not active:
                break
            group = min(active, key=lambda g: g.progress)
            self._read_page(group, by_id, until, pending)
            pending.resolve(final=False)
            still = [g.progress for g in groups if not g.done]
            page = pending.take(min(still) if still else None)
            if page is not None:
                yield page
        pending.resolve(final=True)
        page = pending.take(None, idle=until)
        if page is not None:
            yield page

    def _read_page(
        self,
        group: _Group,
        by_id: Mapping[int, ActivityType],
        until: datetime,
        pending: _Pending,
    ) -> None:
        body = self.client.call(
            "GET",
            "/rest/v1/activities.json",
            params={
                "nextPageToken": group.token,
                "activityTypeIds": ",".join(str(i) for i in group.type_ids),
                "batchSize": self.settings.page_size,
            },
        )
        result = body.get("result") or []
        if not isinstance(result, list):
            # Not one bad record but a bad page: skipping it could lose every activity on it.
            raise Fatal("Marketo GET /rest/v1/activities.json answered a result that is no list")
        for activity in result:
            try:
                when = activity_time(self.name, activity)
            except RecordRejected as refused:
                pending.reject(refused)
                continue
            if when > until:
                # Activities come in time order, so the group ends with this page; the rest of
                # the page is still read, in case one activity is out of order.
                group.done = True
                continue
            pending.read(when, activity, by_id)
            group.progress = max(group.progress, when)
        token = body.get("nextPageToken")
        if isinstance(token, str) and token:
            group.token = token
        if not body.get("moreResult", False):
            group.done = True

    def _pull_bulk(
        self,
        cursor: Cursor,
        since: datetime,
        until: datetime,
        types: list[ActivityType],
        book: LeadBook,
    ) -> Iterator[Page[Touch]]:
        by_id = {t.id: t for t in types}
        pending = _Pending(self, cursor, since, book)
        start = since
        while start < until:
            end = min(start + timedelta(days=MAX_EXPORT_DAYS), until)
            with self.export_file(start, end, [t.id for t in types]) as file:
                yield from self._pull_file(file, (since, until, end), by_id, pending)
            # The window is read entirely: the next pull may start at its end.
            page = pending.take(end)
            if page is not None:
                yield page
            start = end

    def _pull_file(
        self,
        file: BinaryIO,
        span: tuple[datetime, datetime, datetime],
        by_id: Mapping[int, ActivityType],
        pending: _Pending,
    ) -> Iterator[Page[Touch]]:
        """Pages of ``_BULK_PAGE`` touches of one export file, read row by row (``span``: the
        pull's since and until, the window's end).

        In a file in time order (one pass over its dates says so first), everything before a
        page's last second is in once the page is: the cursor moves with every page, as the
        REST pull's does. In a file out of order the cursor stays where the window began until
        the window is read through (``pending.hold``): a crash re-reads the window, and the
        ledger drops the touches stored twice on their key.
        """
        since, until, end = span  # the pull's, and the window's end
        in_order = _in_time_order(file)
        file.seek(0)
        if not in_order:
            pending.hold(end)
        read = 0
        last: datetime | None = None
        for row in parse_bulk_csv(file):
            try:
                when = activity_time(self.name, row)
            except RecordRejected as refused:
                pending.reject(refused)
                continue
            if not since <= when <= until:
                continue
            pending.read(when, row, by_id)
            read += 1
            last = when
            if read % _BULK_PAGE == 0:
                page = self._bulk_page(pending, last if in_order else None)
                if page is not None:
                    yield page
        if last is not None and read % _BULK_PAGE:
            page = self._bulk_page(pending, last if in_order else None)
            if page is not None:
                yield page

    @staticmethod
    def _bulk_page(pending: _Pending, safe: datetime | None) -> Page[Touch] | None:
        """Resolve the page's leads and take its touches; the cursor moves to ``safe`` (None:
        it stays where it is).

        Every lead, the last few too: a page ends with a short lookup (~170 of the 856 Marketo
        calls of a 1,000,000-activity backfill). Letting the few wait for a later page's full
        call saved those calls but raised the worker's peak RSS by ~20 MB at 1,000,000 touches
        (190 -> 211 MB, side by side in one run), so the pages stay self-contained."""
        pending.resolve(final=True)
        return pending.take(safe if safe is not None else pending.at)

    @contextmanager
    def export_file(
        self, start: datetime, end: datetime, type_ids: Sequence[int]
    ) -> Iterator[BinaryIO]:
        """Run one bulk activity export for ``[start, end]`` (at most 31 days) and download its
        CSV to a temporary file, checked against the job's SHA-256 ``fileChecksum`` before a
        row is read (a file cut short never becomes touches); the file is gone afterwards."""
        if end - start > timedelta(days=MAX_EXPORT_DAYS):
            raise ConfigError(f"a Marketo bulk export spans at most {MAX_EXPORT_DAYS} days")
        request = {
            "format": "CSV",
            "fields": _BULK_FIELDS,
            "filter": {
                "createdAt": {
                    "startAt": format_marketo_time(start),
                    "endAt": format_marketo_time(end),
                },
                "activityTypeIds": list(type_ids),
            },
        }
        export_id = start_export(self.client, request)
        job = self._wait_for(export_id)
        with tempfile.TemporaryFile() as spool:
            self.client.download_to(f"{EXPORTS}/{export_id}/file.json", spool)
            _check_file(export_id, spool, job.get("fileChecksum"))
            spool.seek(0)
            yield spool

    def bulk_export(
        self, start: datetime, end: datetime, type_ids: Sequence[int]
    ) -> list[dict[str, Any]]:
        """Every row of one bulk activity export for ``[start, end]`` (``export_file``)."""
        with self.export_file(start, end, type_ids) as file:
            return list(parse_bulk_csv(file))

    def _wait_for(self, export_id: str) -> Mapping[str, Any]:
        """Poll the job until it is Completed; its status (Transient when it fails or lasts)."""
        base = f"{EXPORTS}/{export_id}"
        waited = 0.0
        # A small job (or the sandbox) is done within seconds: poll after 1 s, 2 s, 4 s, ...
        # up to bulk_poll_interval_s, so a big job costs only a few extra status calls.
        pause = min(self.settings.bulk_poll_first_s, self.settings.bulk_poll_interval_s)
        while True:
            answer = self.client.call("GET", f"{base}/status.json")
            status = export_field(answer, "status")
            if status == "Completed":
                job: Mapping[str, Any] = answer["result"][0]
                return job
            if status in ("Failed", "Cancelled", "Canceled"):
                raise Transient(f"Marketo bulk export {export_id} ended as {status}")
            if waited >= self.settings.bulk_poll_timeout_s:
                raise Transient(
                    f"Marketo bulk export {export_id} still {status} after {waited:.0f} s; "
                    "the next run will try again"
                )
            self.clock.sleep(pause)
            waited += pause
            pause = min(pause * 2, self.settings.bulk_poll_interval_s)

    # -- leads and lists --------------------------------------------------------------------

    def programs(self) -> list[Program]:
        """Every program (asset API, 200 a call), with the Salesforce campaign each is synced to
        (``sfdcId``/``sfdcName``, present only for a program with Salesforce Campaign Sync)."""
        found: list[Program] = []
        offset = 0
        while True:
            params = {"maxReturn": PROGRAMS_PER_CALL, "offset": offset}
            answer = self.client.call("GET", "/rest/asset/v1/programs.json", params=params)
            rows = [r for r in answer.get("result") or [] if isinstance(r, dict) and "id" in r]
            for row in rows:
                found.append(
                    Program(
                        source=self.name,
                        external_id=str(row["id"]),
                        name=str(row.get("name") or row["id"]),
                        channel=row.get("channel") or None,
                        crm_campaign_id=row.get("sfdcId") or None,
                        crm_campaign_name=row.get("sfdcName") or None,
                    )
                )
            if len(rows) < PROGRAMS_PER_CALL:
                return found
            offset += PROGRAMS_PER_CALL

    def lead_details(self, lead_ids: Sequence[int]) -> dict[int, tuple[str | None, dict[str, str]]]:
        """(email, person fields) of the leads with ``lead_ids``, 300 per call; unknown leads
        are omitted. Person fields are ``PERSON_FIELDS`` names with a value, plus ``updated_at``
        (the lead's ``updatedAt``: when the source last changed the person)."""
        found: dict[int, tuple[str | None, dict[str, str]]] = {}
        for chunk in _chunks(list(dict.fromkeys(lead_ids)), MAX_IDS_PER_CALL):
            params = {
                "filterType": "id",
                "filterValues": ",".join(str(i) for i in chunk),
                "fields": _DETAIL_FIELDS,
                "batchSize": MAX_IDS_PER_CALL,
            }
            for lead in self._leads(params):
                email = lead.get("email")
                person = {
                    name: value.strip()
                    for field_name, name in PERSON_FIELDS.items()
                    if isinstance(value := lead.get(field_name), str) and value.strip()
                }
                found[int(lead["id"])] = (
                    email.strip().lower() if isinstance(email, str) else None,
                    person,
                )
        return found

    def lookup_leads(self, emails: Iterable[str]) -> dict[str, Person]:
        """Leads by email (lower-cased) with company and score, for enrichment; unknown omitted."""
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        people: dict[str, Person] = {}
        for chunk in _chunks(wanted, MAX_IDS_PER_CALL, _MAX_FILTER_CHARS):
            params = {
                "filterType": "email",
                "filterValues": ",".join(chunk),
                "fields": _LEAD_FIELDS,
                "batchSize": MAX_IDS_PER_CALL,
            }
            for lead in self._leads(params):
                person = _person(self.name, lead)
                if person.email and person.email not in people:
                    people[person.email] = person
        return people

    def _leads(self, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Every lead of a Get Leads by Filter Type query, page after page."""
        token: str | None = None
        while True:
            page = dict(params, nextPageToken=token) if token else dict(params)
            body = self.client.call("GET", "/rest/v1/leads.json", params=page)
            yield from body.get("result") or []
            token = body.get("nextPageToken")
            if not (isinstance(token, str) and token and body.get("moreResult", True)):
                return

    def add_to_list(self, list_id: int, lead_ids: Sequence[int]) -> ListChange[int]:
        """Add leads to a static list (300 per call); re-adding a member changes nothing."""
        return self._list_change("POST", list_id, lead_ids, "added")

    def remove_from_list(self, list_id: int, lead_ids: Sequence[int]) -> ListChange[int]:
        """Remove leads from a static list (300 per call); removing a non-member changes nothing."""
        return self._list_change("DELETE", list_id, lead_ids, "removed")

    def _list_change(
        self, method: str, list_id: int, lead_ids: Sequence[int], done_status: str
    ) -> ListChange[int]:
        changed: list[int] = []
        skipped: list[RecordRejected] = []
        for chunk in _chunks(list(dict.fromkeys(lead_ids)), MAX_IDS_PER_CALL):
            body = self.client.call(
                method,
                f"/rest/v1/lists/{int(list_id)}/leads.json",
                json_body={"input": [{"id": int(i)} for i in chunk]},
                retry_safe=True,  # list membership changes are idempotent in Marketo
            )
            for item in body.get("result") or []:
                lead = int(item["id"])
                if item.get("status") == done_status:
                    changed.append(lead)
                    continue
                reasons = item.get("reasons") or [{}]
                code = str(reasons[0].get("code", item.get("status", "skipped")))
                message = str(reasons[0].get("message", item.get("status", "skipped")))
                skipped.append(
                    RecordRejected(
                        f"Marketo skipped lead {lead} for list {list_id}: {code} {message}",
                        code=code,
                        key=str(lead),
                    )
                )
        return ListChange[int](changed, skipped)

    # -- checks -----------------------------------------------------------------------------

    def check(self) -> list[CheckResult]:
        """Token, activity types and daily quota, each with a remedy; never raises."""
        results: list[CheckResult] = []
        try:
            self.client.refresh_token()
        except ClosedloopError as exc:
            results.append(
                CheckResult(
                    "marketo.token",
                    False,
                    str(exc),
                    "check base_url, client_id and client_secret (Admin > LaunchPoint > View "
                    "Details of the API-only user's service)",
                )
            )
            return results
        results.append(CheckResult("marketo.token", True, "client credentials accepted"))
        try:
            chosen = self.selected_types()
            names = ", ".join(t.name for t in chosen)
            results.append(
                CheckResult(
                    "marketo.activity_types",
                    True,
                    f"{len(chosen)} of {len(self.activity_types())} types pulled: {names}",
                )
            )
        except ClosedloopError as exc:
            results.append(
                CheckResult(
                    "marketo.activity_types",
                    False,
                    str(exc),
                    "give the API-only user's role Read-Only Activity and fix activity_types",
                )
            )
        results.append(self._check_quota())
        return results

    def _check_quota(self) -> CheckResult:
        try:
            body = self.client.call("GET", "/rest/v1/stats/usage.json")
        except ClosedloopError as exc:
            # Not fatal: pulls still work, and closedloop counts its own calls.
            quota = self.client.quota
            return CheckResult(
                "marketo.daily_quota",
                True,
                f"could not read today's API usage ({exc}); closedloop's own count today: "
                f"{quota.used} of {quota.limit}",
                "give the API-only user's role access to usage statistics to see the "
                "instance-wide count",
            )
        used = sum(int(item.get("total") or 0) for item in body.get("result") or [])
        self.client.quota.observe(used)
        left = self.client.quota.remaining
        ok = left > self.settings.daily_quota // 10
        return CheckResult(
            "marketo.daily_quota",
            ok,
            f"{used} of {self.settings.daily_quota} calls used today, {left} left (resets "
            f"{self.client.quota.resets_at().isoformat()})",
            ""
            if ok
            else "other integrations use most of the quota: lower their usage, ask "
            "Adobe for a higher quota, or pull less often",
        )


def _check_file(export_id: str, file: BinaryIO, checksum: Any) -> None:
    """Transient when the file differs from the job's SHA-256 ``fileChecksum`` (if it has one)."""
    if not isinstance(checksum, str) or not checksum:
        return
    expected = checksum.removeprefix("sha256:").strip().lower()
    file.seek(0)
    digest = hashlib.sha256()
    while chunk := file.read(_HASH_CHUNK):
        digest.update(chunk)
    if digest.hexdigest() != expected:
        raise Transient(
            f"Marketo bulk export {export_id}: the downloaded file does not match its SHA-256 "
            "checksum (a truncated download?); the next run will fetch it again"
        )


def _in_time_order(file: BinaryIO) -> bool:
    """Whether the export file's readable activity dates never go back (one pass over them).

    Marketo does not document the order of a bulk export file (the sandbox writes it in time
    order); the pull moves its cursor within a file only when this says so.
    """
    file.seek(0)
    latest: datetime | None = None
    for when in bulk_csv_dates(file):
        if when is None:
            continue
        if latest is not None and when < latest:
            return False
        latest = when
    return True


def _person(source: str, lead: Mapping[str, Any]) -> Person:
    email = lead.get("email")
    score = lead.get("leadScore")
    created = lead.get("createdAt")
    updated = lead.get("updatedAt")
    return Person(
        source=source,
        external_id=str(lead["id"]),
        kind=PersonKind.LEAD,
        email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
        first_name=lead.get("firstName"),
        last_name=lead.get("lastName"),
        company=lead.get("company"),
        score=float(score) if isinstance(score, int | float) and not math.isnan(score) else None,
        created_at=parse_marketo_time(created) if isinstance(created, str) and created else None,
        updated_at=parse_marketo_time(updated) if isinstance(updated, str) and updated else None,
    )
