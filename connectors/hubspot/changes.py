"""Change pulls from HubSpot: contacts, companies, deals, deal associations and owners, and
the property history of contacts and deals (``connectors.hubspot.history``).

CRM search is the only way to ask HubSpot "what changed since": it stops at 10,000 results per
query (``after`` cannot pass 10,000) and has its own low request rate (5 per second, outside
the 10-second window; the client's search window keeps to ``search_per_second``).
``WindowedSearch`` reads a time range
in windows that each match at most 10,000 records, so the cap is never reached:

1. A window ``[lo, hi]`` on the object's modification time is probed with its first page (200
   records, sorted by ``hs_object_id``), whose ``total`` says how many records it holds. Contacts
   keep that time in ``lastmodifieddate``; companies, deals and the other objects in
   ``hs_lastmodifieddate`` (``modified_property``); integrators report that a contacts search
   filtered on ``hs_lastmodifieddate`` answers 200 without the contacts that changed, so the
   wrong name would lose changes silently.
2. Above 10,000 the probe's page is discarded and the range is cut into equal time slices of
   about 5,000 expected records each, each handled the same way; when a single millisecond holds
   more than 10,000 records, that instant is cut on ``hs_object_id`` ranges instead.
3. A window within the cap is read with key-set paging on ``hs_object_id`` (``GT`` the last id
   seen), never with offsets, so a record edited during the pull cannot shift an unread record out
   of reach. Windows are read in time order, contiguous, to ``until``.

The cursor is the ISO time (UTC, milliseconds) of the end of the last window read completely,
never beyond ``until``. The search index trails the modification time by seconds, so the next
pull starts ``reread_lag_seconds`` before the cursor; its ``boundary_keys`` are the versions (id
and modification time) already yielded inside that lag, which the re-read drops
(``connectors.lagwindow``). Records changed again since carry a later time and are read normally.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import Account, ContactRole, Cursor, Opportunity, Owner, Page
from connectors.errors import ConfigError
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.history import HISTORY_STREAMS, history_changes, read_history
from connectors.hubspot.identity import (
    CONTACT_MODIFIED,
    CONTACT_PROPERTIES,
    parse_hubspot_time,
    person_from_contact,
    primary_targets,
    read_associations,
)
from connectors.lagwindow import SeenVersions

__all__ = [
    "SEARCH_RESULT_CAP",
    "STREAMS",
    "ChangePuller",
    "Owner",
    "WindowStats",
    "WindowedSearch",
    "format_cursor_time",
    "modified_property",
]

SEARCH_RESULT_CAP = 10_000
SEARCH_PAGE = 200
# Records a split window aims at: half the cap, so uneven time density rarely overflows it.
_WINDOW_TARGET = 5_000
# The modification time of companies, deals and most objects; contacts have their own
# (``CONTACT_MODIFIED``). Default properties per object in the CRM search guide:
# https://developers.hubspot.com/docs/api/crm/search
MODIFIED = "hs_lastmodifieddate"
_MODIFIED_BY_TYPE = {"contacts": CONTACT_MODIFIED}
_COMPANY_PROPERTIES = ("name", "domain", "hubspot_owner_id", "createdate", MODIFIED)
_DEAL_PROPERTIES = (
    "dealname",
    "dealstage",
    "amount",
    "closedate",
    "pipeline",
    "hubspot_owner_id",
    "hs_campaign",
    "createdate",
    MODIFIED,
)
# Primary deal -> company association (HUBSPOT_DEFINED).
_PRIMARY_DEAL_COMPANY = 5
STREAMS = ("people", "accounts", "opportunities", "contact_roles", "owners", *HISTORY_STREAMS)


@dataclass
class WindowStats:
    """What a windowed search did: windows read, the largest, oversized probes discarded."""

    windows: int = 0
    largest_window: int = 0
    oversized_probes: int = 0
    calls: int = 0


def format_cursor_time(ms: int) -> str:
    """Epoch milliseconds as the cursor's ISO form (UTC, milliseconds, Z)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def modified_property(object_type: str) -> str:
    """The property holding the last modification time of ``object_type``'s records."""
    return _MODIFIED_BY_TYPE.get(object_type, MODIFIED)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _cursor_ms(value: str) -> int:
    moment = parse_hubspot_time(value)
    if moment is None:
        raise ConfigError(f"unreadable HubSpot cursor value {value!r}: expected an ISO time")
    return _ms(moment)


def _record_ms(record: Mapping[str, Any], modified: str) -> int | None:
    moment = parse_hubspot_time((record.get("properties") or {}).get(modified))
    return _ms(moment) if moment else None


class WindowedSearch:
    """Reads one object type's records changed in a time range, in windows under the cap."""

    def __init__(self, client: HubSpotClient, object_type: str, properties: Sequence[str]) -> None:
        self.client = client
        self.object_type = object_type
        self.modified = modified_property(object_type)
        self.properties = list(dict.fromkeys([*properties, self.modified]))
        self.stats = WindowStats()

    def pages(
        self, cursor: Cursor, until: datetime
    ) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
        """Record pages changed after ``cursor`` up to ``until``, each with the cursor so far."""
        hi = _ms(until)
        at = _cursor_ms(cursor.value) if cursor.value else None
        if at is not None and at > hi:
            return
        progress = _Progress(
            cursor, at, self.client.settings.reread_lag_seconds * 1000, self.modified
        )
        lo = progress.seen.start(at) if at is not None else 0
        yield from self._window(lo, hi, None, progress)

    def _search(
        self, lo: int, hi: int, after_id: int, ids: tuple[int, int] | None, limit: int
    ) -> dict[str, Any]:
        filters: list[dict[str, Any]] = [
            {"propertyName": self.modified, "operator": "GTE", "value": str(lo)},
            {"propertyName": self.modified, "operator": "LTE", "value": str(hi)},
        ]
        if after_id:
            filters.append(
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(after_id)}
            )
        if ids is not None:
            filters.append(
                {"propertyName": "hs_object_id", "operator": "GTE", "value": str(ids[0])}
            )
            filters.append(
                {"propertyName": "hs_object_id", "operator": "LTE", "value": str(ids[1])}
            )
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": limit,
        }
        api = self.client.api("objects_search")
        self.stats.calls += 1
        return self.client.call(
            f"{self.object_type} search", api.do_search, self.object_type, body,
            idempotent=True, search=True,
        )  # fmt: skip

    def _edge(
        self, lo: int, hi: int, ids: tuple[int, int] | None, name: str, direction: str
    ) -> int:
        """The smallest or largest ``name`` (a time or an id) among the window's records."""
        api = self.client.api("objects_search")
        filters: list[dict[str, Any]] = [
            {"propertyName": self.modified, "operator": "GTE", "value": str(lo)},
            {"propertyName": self.modified, "operator": "LTE", "value": str(hi)},
        ]
        if ids is not None:
            filters.append(
                {"propertyName": "hs_object_id", "operator": "GTE", "value": str(ids[0])}
            )
            filters.append(
                {"propertyName": "hs_object_id", "operator": "LTE", "value": str(ids[1])}
            )
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": name, "direction": direction}],
            "properties": [name],
            "limit": 1,
        }
        self.stats.calls += 1
        answer = self.client.call(
            f"{self.object_type} search", api.do_search, self.object_type, body,
            idempotent=True, search=True,
        )  # fmt: skip
        results = answer.get("results") or []
        if not results:
            return lo if name == self.modified else 0
        if name == self.modified:
            found = _record_ms(results[0], self.modified)
            return found if found is not None else lo
        return int(results[0]["id"])

    def _empty(
        self, lo: int, hi: int, state: _Progress
    ) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
        """A range known to hold no records of the window being split: just move the cursor."""
        del lo
        state.window_done(hi)
        yield [], state.cursor

    def _window(
        self, lo: int, hi: int, ids: tuple[int, int] | None, state: _Progress
    ) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
        first = self._search(lo, hi, 0, ids, SEARCH_PAGE)
        total = int(first.get("total") or 0)
        if total > SEARCH_RESULT_CAP:
            self.stats.oversized_probes += 1
            parts = max(2, math.ceil(total / _WINDOW_TARGET))
            if hi > lo:
                # Narrow to the times records really have (two 1-record searches): a burst in
                # one millisecond is then found at once, not after many halvings.
                first_ms = self._edge(lo, hi, ids, self.modified, "ASCENDING")
                last_ms = self._edge(lo, hi, ids, self.modified, "DESCENDING")
                if first_ms > lo:
                    yield from self._empty(lo, first_ms - 1, state)
                if last_ms > first_ms:
                    width = (last_ms - first_ms + 1) / parts
                    cuts = {first_ms + int(i * width) for i in range(parts)} | {last_ms + 1}
                    for start, end in itertools.pairwise(sorted(cuts)):
                        yield from self._window(start, end - 1, ids, state)
                else:
                    yield from self._window(first_ms, first_ms, ids, state)
                if hi > last_ms:
                    yield from self._empty(last_ms + 1, hi, state)
                return
            low, high = ids if ids is not None else (0, 0)
            if ids is None:
                low = self._edge(lo, hi, None, "hs_object_id", "ASCENDING")
                high = self._edge(lo, hi, None, "hs_object_id", "DESCENDING")
            if high <= low:
                raise ConfigError(
                    f"HubSpot {self.object_type}: more than {SEARCH_RESULT_CAP} records at one "
                    "millisecond with one id: the search cannot be narrowed further"
                )
            width = (high - low + 1) / parts
            edges = sorted({low + int(i * width) for i in range(parts)} | {high + 1})
            for start, end in itertools.pairwise(edges):
                yield from self._window(lo, hi, (start, end - 1), state)
            return
        self.stats.windows += 1
        self.stats.largest_window = max(self.stats.largest_window, total)
        answer = first
        while True:
            results = list(answer.get("results") or [])
            kept = [r for r in results if state.keep(r)]
            last_page = len(results) < SEARCH_PAGE or not (answer.get("paging") or {}).get("next")
            if last_page:
                # An id slice of one instant ends at the same time: the boundary keys carry
                # the ids read so far, so a restart re-reads only the remaining slices.
                state.window_done(hi)
                yield kept, state.cursor
                return
            if kept:
                yield kept, state.cursor
            after_id = int(results[-1]["id"])
            answer = self._search(lo, hi, after_id, ids, SEARCH_PAGE)


class _Progress:
    """The cursor of a windowed read: window ends reached, and the versions seen in the lag."""

    def __init__(self, cursor: Cursor, cursor_ms: int | None, lag_ms: int, modified: str) -> None:
        self.cursor = cursor
        self.modified = modified
        self.seen = SeenVersions(cursor.boundary_keys, cursor_ms, lag_ms)

    def keep(self, record: Mapping[str, Any]) -> bool:
        moment = _record_ms(record, self.modified)
        return moment is None or self.seen.first_sight(str(record.get("id")), moment)

    def window_done(self, hi: int) -> None:
        self.cursor = Cursor(format_cursor_time(hi), self.seen.keys_until(hi))


class ChangePuller:
    """``pull_changes`` streams of one portal, as record types of ``connectors.base``."""

    def __init__(self, client: HubSpotClient, source: str) -> None:
        self.client = client
        self.source = source
        self.last_stats: WindowStats | None = None
        # Contact properties giving why sales disqualified or recycled (a mapping's
        # lifecycle.reason_field / reason_fields): read with people and with their history.
        self.reason_properties: tuple[str, ...] = ()

    def pull(self, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        """Yield pages of ``stream`` changed since ``cursor`` and at or before ``until``."""
        until = until.astimezone(UTC)
        handlers: dict[str, Callable[[Cursor, datetime], Iterator[Page[Any]]]] = {
            "people": self._people,
            "accounts": self._accounts,
            "opportunities": self._opportunities,
            "contact_roles": self._contact_roles,
            "owners": self._owners,
            **{name: self._history(name) for name in HISTORY_STREAMS},
        }
        handler = handlers.get(stream)
        if handler is None:
            raise ConfigError(
                f"HubSpot has no change stream {stream!r}; streams: {', '.join(STREAMS)}"
            )
        return handler(cursor, until)

    def _search(self, object_type: str, properties: Sequence[str]) -> WindowedSearch:
        search = WindowedSearch(self.client, object_type, properties)
        self.last_stats = search.stats
        return search

    def _people(self, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        search = self._search("contacts", (*CONTACT_PROPERTIES, *self.reason_properties))
        for records, at in _batched(search.pages(cursor, until), 1000, cursor):
            companies = primary_targets(
                self.client, "contacts", "companies", [str(r["id"]) for r in records], 1
            ) if records else {}  # fmt: skip
            yield Page(
                [person_from_contact(self.source, r, companies.get(str(r["id"]))) for r in records],
                at,
            )

    def _history(self, stream: str) -> Callable[[Cursor, datetime], Iterator[Page[Any]]]:
        """A history stream: the records changed in the range, with their property history
        (``connectors.hubspot.history``) as ``StatusChange`` records."""
        object_type, kind, properties = HISTORY_STREAMS[stream]

        def pull(cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
            reasons = self.reason_properties if object_type == "contacts" else ()
            read = [*properties, *(r for r in reasons if r not in properties)]
            search = self._search(object_type, tuple(properties))
            for records, at in _batched(search.pages(cursor, until), 1000, cursor):
                ids = [str(r["id"]) for r in records]
                found = read_history(self.client, object_type, ids, read) if ids else []
                changes = [
                    change
                    for record in found
                    for change in history_changes(self.source, kind, record, properties, reasons)
                ]
                yield Page(changes, at)

        return pull

    def _accounts(self, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        search = self._search("companies", _COMPANY_PROPERTIES)
        for records, at in search.pages(cursor, until):
            yield Page([self._account(r) for r in records], at)

    def _account(self, record: Mapping[str, Any]) -> Account:
        props = record.get("properties") or {}
        return Account(
            source=self.source,
            external_id=str(record["id"]),
            name=str(props.get("name") or ""),
            domain=props.get("domain") or None,
            owner_id=props.get("hubspot_owner_id") or None,
            updated_at=parse_hubspot_time(props.get(MODIFIED)),
        )

    def _opportunities(self, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        search = self._search("deals", _DEAL_PROPERTIES)
        for records, at in _batched(search.pages(cursor, until), 1000, cursor):
            ids = [str(r["id"]) for r in records]
            companies = (
                primary_targets(self.client, "deals", "companies", ids, _PRIMARY_DEAL_COMPANY)
                if ids
                else {}
            )
            yield Page([self._deal(r, companies.get(str(r["id"]))) for r in records], at)

    def _deal(self, record: Mapping[str, Any], account_id: str | None) -> Opportunity:
        props = record.get("properties") or {}
        stage = str(props.get("dealstage") or "")
        amount: Decimal | None = None
        if props.get("amount") not in (None, ""):
            try:
                amount = Decimal(str(props["amount"]))
            except InvalidOperation:
                amount = None
        return Opportunity(
            source=self.source,
            external_id=str(record["id"]),
            name=str(props.get("dealname") or ""),
            account_id=account_id,
            stage=stage,
            amount=amount,
            is_closed=stage in ("closedwon", "closedlost"),
            is_won=stage == "closedwon",
            close_date=parse_hubspot_time(props.get("closedate")),
            created_at=parse_hubspot_time(props.get("createdate")),
            updated_at=parse_hubspot_time(props.get(MODIFIED)),
            campaign_id=props.get("hs_campaign") or None,
            owner_id=props.get("hubspot_owner_id") or None,
        )

    def _contact_roles(self, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        # Deal-contact links of the deals changed in the range, read 1,000 deals per call.
        search = self._search("deals", ("dealname",))
        for records, at in _batched(search.pages(cursor, until), 1000, cursor):
            stamps = {
                str(r["id"]): parse_hubspot_time((r.get("properties") or {}).get(MODIFIED))
                for r in records
            }
            links = (
                read_associations(self.client, "deals", "contacts", list(stamps)) if stamps else {}
            )
            roles = [
                ContactRole(
                    source=self.source,
                    external_id=f"{deal}:{contact}",
                    opportunity_id=deal,
                    person_id=contact,
                    updated_at=stamps.get(deal),
                )
                for deal, targets in links.items()
                for contact, _types in targets
            ]
            yield Page(roles, at)

    def _owners(self, cursor: Cursor, until: datetime) -> Iterator[Page[Any]]:
        # Owners have no change search: list them all (500 a page), keep those changed since.
        api = self.client.api("owners")
        since = parse_hubspot_time(cursor.value) if cursor.value else None
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": 500}
            if after:
                kwargs["after"] = after
            answer = self.client.call("owners list", api.get_page, idempotent=True, **kwargs)
            owners = []
            for row in answer.get("results") or []:
                updated = parse_hubspot_time(row.get("updatedAt"))
                if since is not None and updated is not None and updated < since:
                    continue
                owners.append(
                    Owner(
                        source=self.source,
                        external_id=str(row.get("id")),
                        email=(row.get("email") or "").lower() or None,
                        first_name=row.get("firstName"),
                        last_name=row.get("lastName"),
                        updated_at=updated,
                        deleted=bool(row.get("archived", False)),
                    )
                )
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                yield Page(owners, Cursor(format_cursor_time(_ms(until))))
                return
            yield Page(owners, cursor)


def _batched(
    pages: Iterator[tuple[list[dict[str, Any]], Cursor]], size: int, start: Cursor
) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
    """Regroup search pages into batches of at most ``size`` records (for 1,000-id reads).

    A batch carries the newest cursor only when it empties the buffer: earlier batches carry
    the cursor from before the page that filled it, so no cursor ever passes unyielded records.
    """
    buffer: list[dict[str, Any]] = []
    before = start
    sent = start
    latest = start
    for records, cursor in pages:
        buffer.extend(records)
        latest = cursor
        if len(buffer) >= size:
            chunks = [buffer[i : i + size] for i in range(0, len(buffer), size)]
            for chunk in chunks[:-1]:
                yield chunk, before
            yield chunks[-1], cursor
            buffer, sent = [], cursor
        before = cursor
    if buffer or latest != sent:
        yield buffer, latest
