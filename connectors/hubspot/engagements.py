"""Touches onto HubSpot timelines as engagements, exactly once.

HubSpot does not de-duplicate engagements, its batch create is neither idempotent nor retried by
the SDK, and it offers unique-value properties only for contacts, companies, deals, tickets and
custom objects, never for activities (developers.hubspot.com/changelog/
unique-properties-for-contacts). So HubSpot cannot refuse a second engagement with the same key:
exactly-once rests on the ledger, which knows what it sent, and on a key HubSpot can search for.

1. **A searchable property holding the touch key.** Every engagement carries its touch key in
   ``touch_key_property`` (``closedloop_touch_key``), a custom text property on each engagement
   type, created by ``closedloop check hubspot --fix``. CRM search filters on it (``IN``, 100 keys
   per search). The writer does not read the property before writing: HubSpot refuses a record
   naming a property it does not have (``PROPERTY_DOESNT_EXIST``) and creates nothing of it, so
   a refusal naming the key is the check. The writer then creates the property and sends the
   refused records again, once; if HubSpot refuses the creation (no schema write scope) or the
   records a second time, it stops with a ``ConfigError``. A search on the key that HubSpot
   refuses is checked against the property definition: without the property no engagement can
   carry a key, so nothing is found.
2. **What the ledger knows decides the call** (``RenderedTouch.crm_id`` / ``attempted_at``,
   set by ``sync.pipelines.deliveries``):

   - neither: the ledger vouches that the key was never sent, so it is created (batch create,
     100 per call) without a look first;
   - ``attempted_at``: an earlier write of the key got no recorded answer (a crash between intent
     and confirm, a lost answer). Search finds only what its index has caught up with, and the
     index trails writes by seconds, so the writer first waits until ``search_settle_seconds``
     have passed since that attempt, then searches the keys, reports the records found
     (``created=False``) and creates only the missing ones;
   - ``crm_id``: the key already has that record (a digest rolled up again, a record the engine
     learned from the portal): it is updated in place (batch update by id, 100 per call); if
     HubSpot no longer has it, it is created again.
3. **Per-record answers.** Each create input carries ``objectWriteTraceId`` = its touch key, so
   HubSpot answers per record (developers.hubspot.com/docs/api-reference/error-handling,
   "Multi-status errors"): ``201`` every input created; ``207`` the valid inputs created and each
   refused one named in ``errors[].context.objectWriteTraceId`` (it fails alone: a dead letter
   with HubSpot's category and message, while the rest are confirmed). A ``400`` for the whole
   call (a malformed batch) is split in halves until the bad input stands alone. A ``429`` applied
   nothing: the client waits and repeats. A 5xx, a read timeout or a connection dropped after
   sending leaves the outcome unknown: the writer never re-sends blindly; once the settle time has
   passed it searches the chunk's keys and creates only what is missing.

Costs: a first push is one call per 100 touches (on a portal without the property, one refused
call and one property creation more); a replay of unknown outcomes is one search per 100 keys
plus the creates of what is missing. What the ledger cannot know (it was lost, restored from a
backup, or another writer uses the same keys) is found by ``sync.pipelines.keyaudit`` through
``scan`` (newest first) before anything is created; that first search also stands in for a read
of the property (a refused search is checked against it, see 1.).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from connectors.base import DeliveryResult, KeyedRecord, RenderedTouch
from connectors.errors import ConfigError
from connectors.hubspot.client import CallError, HubSpotClient

__all__ = [
    "ASSOCIATION_TYPE_IDS",
    "BATCH_LIMIT",
    "ENGAGEMENT_TYPES",
    "SEARCH_KEYS",
    "EngagementWriter",
]

BATCH_LIMIT = 100
# Keys per IN filter of one search. HubSpot documents no cap on IN values; 100 keeps every
# search's matches within one 200-record page even when an old duplicate exists (assumed).
SEARCH_KEYS = 100
# Records per search page, and results one query can page through
# (developers.hubspot.com/docs/api/crm/search: limit up to 200; 10,000 results per query).
SEARCH_PAGE = 200
SEARCH_CAP = 10_000
# Mapping targets -> HubSpot object types.
ENGAGEMENT_TYPES: dict[str, str] = {
    "note": "notes",
    "task": "tasks",
    "email": "emails",
    "meeting": "meetings",
    "call": "calls",
}
# HUBSPOT_DEFINED association type ids from each engagement type to (contact, company, deal).
ASSOCIATION_TYPE_IDS: dict[str, tuple[int, int, int]] = {
    "notes": (202, 190, 214),
    "tasks": (204, 192, 216),
    "emails": (198, 186, 210),
    "meetings": (200, 188, 212),
    "calls": (194, 182, 206),
}
_FIX = "run `closedloop check hubspot --fix` to create it"


class _NoKeyProperty(Exception):
    """HubSpot refused a search on the key property, which it does not have: no engagement
    carries a touch key."""


def chunks(items: Sequence[RenderedTouch], size: int) -> Iterator[list[RenderedTouch]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class EngagementWriter:
    """Writes rendered touches as engagements of their target type, keyed by the touch key."""

    def __init__(
        self,
        client: HubSpotClient,
        sink: str,
        key_property: str,
        settle_seconds: float,
        create_key_property: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.sink = sink
        self.key_property = key_property
        self.settle_seconds = settle_seconds
        # Creates the key property on an engagement type (raises CallError); None: never create.
        self.create_key_property = create_key_property
        # Engagement types this writer created the key property on (each is created once).
        self._created: set[str] = set()
        self._creating = threading.Lock()

    def push(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Write ``touches`` (first of each key wins); one result per distinct key, in order."""
        unique: dict[str, RenderedTouch] = {}
        for touch in touches:
            unique.setdefault(touch.key, touch)
        results: dict[str, DeliveryResult] = {}
        by_type: dict[str, list[RenderedTouch]] = {}
        for touch in unique.values():
            object_type = ENGAGEMENT_TYPES.get(touch.target.lower())
            if object_type is None:
                results[touch.key] = self._failed(
                    touch.key,
                    "UNKNOWN_TARGET",
                    f"{touch.target!r} is not a HubSpot engagement type; use one of "
                    f"{', '.join(ENGAGEMENT_TYPES)}",
                )
                continue
            by_type.setdefault(object_type, []).append(touch)
        for object_type, group in by_type.items():
            self._write(object_type, group, results)
        return [results[key] for key in unique]

    def _write(
        self, object_type: str, group: list[RenderedTouch], results: dict[str, DeliveryResult]
    ) -> None:
        """Update known records, look up unknown outcomes, create the rest."""
        known = [t for t in group if t.crm_id]
        unsure = [t for t in group if not t.crm_id and t.attempted_at is not None]
        fresh = [t for t in group if not t.crm_id and t.attempted_at is None]
        gone = self._update(object_type, known, results)
        missing = self._recover(object_type, unsure, results, attempted=_latest(unsure))
        unknown: list[RenderedTouch] = []
        for chunk in chunks([*fresh, *gone, *missing], BATCH_LIMIT):
            unknown.extend(self._create(object_type, chunk, results))
        if unknown:
            # The outcome of these creates is unknown: look, after the index caught up, then
            # create what is still missing (a second unknown outcome is left to the next run).
            self.client.clock.sleep(self.settle_seconds)
            still = self._recover(object_type, unknown, results, attempted=None)
            for chunk in chunks(still, BATCH_LIMIT):
                for touch in self._create(object_type, chunk, results):
                    # Lost twice: pending, and the next run looks before sending it again.
                    results[touch.key] = DeliveryResult(
                        touch.key, self.sink, False, error_code="OUTCOME_UNKNOWN",
                        error_message="HubSpot's answer to the create was lost twice",
                        retryable=True,
                    )  # fmt: skip

    # -- the key property ---------------------------------------------------------------------

    def _has_key_property(self, object_type: str) -> bool:
        """Whether ``object_type`` has the touch-key property (read only after a refusal)."""
        api = self.client.api("properties")
        try:
            self.client.call(
                f"{object_type} property get",
                api.get_by_name,
                object_type,
                self.key_property,
                idempotent=True,
                raw_failures=True,
            )
        except CallError as exc:
            if exc.failure.status == 404:
                return False
            raise exc.error from None
        return True

    def _lacks_key_property(self, message: str) -> bool:
        """Whether HubSpot's refusal says the touch-key property does not exist."""
        return "PROPERTY_DOESNT_EXIST" in message and f'"{self.key_property}"' in message

    def _add_key_property(self, object_type: str, *, retried: bool) -> None:
        """Create the key property after HubSpot refused records for lacking it (once per type,
        whichever push saw the refusal first); a ConfigError when it cannot be created, or when
        HubSpot refuses the records again after it was."""
        if retried or self.create_key_property is None:
            raise ConfigError(
                f"HubSpot {object_type} lack {self.key_property!r}, which holds the touch key "
                f"that keeps writes exactly-once: {_FIX}"
            )
        with self._creating:
            if object_type in self._created:
                return
            try:
                self.create_key_property(object_type)
            except CallError as exc:
                raise ConfigError(
                    f"HubSpot {object_type} lack {self.key_property!r}, which holds the touch key "
                    f"that keeps writes exactly-once, and creating it failed ({exc.error}): {_FIX}"
                ) from None
            self._created.add(object_type)

    # -- writing ------------------------------------------------------------------------------

    def _input(self, object_type: str, touch: RenderedTouch) -> dict[str, Any]:
        properties = {k: v for k, v in touch.payload.items() if v is not None}
        properties[self.key_property] = touch.key
        contact, company, deal = ASSOCIATION_TYPE_IDS[object_type]
        associations = []
        for target, type_id in (
            (touch.person_id, contact),
            (touch.account_id, company),
            (touch.opportunity_id, deal),
        ):
            if target:
                associations.append(
                    {
                        "to": {"id": str(target)},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
                        ],
                    }
                )
        return {
            "properties": properties,
            "associations": associations,
            "objectWriteTraceId": touch.key,
        }

    def _create(
        self,
        object_type: str,
        chunk: list[RenderedTouch],
        results: dict[str, DeliveryResult],
        *,
        retried: bool = False,
    ) -> list[RenderedTouch]:
        """One batch create; returns the touches whose outcome is unknown. ``retried``: the
        chunk is sent again after the key property was created for it."""
        if not chunk:
            return []
        api = self.client.api("objects_batch")
        body = {"inputs": [self._input(object_type, t) for t in chunk]}
        try:
            answer = self.client.call(
                f"{object_type} batch create",
                api.create,
                object_type,
                body,
                idempotent=False,
                raw_failures=True,
            )
        except CallError as exc:
            failure = exc.failure
            if failure.applied_unknown:
                return chunk
            if failure.status == 400:
                return self._split(
                    object_type, chunk, failure.category, failure.message, results, retried=retried
                )
            raise exc.error from None
        by_key = {t.key: t for t in chunk}
        for record in answer.get("results") or []:
            key = str(record.get("objectWriteTraceId") or "")
            if key in by_key:
                results[key] = self._ok(key, str(record.get("id")), True)
        lacking: list[RenderedTouch] = []
        for error in answer.get("errors") or []:
            for key in (error.get("context") or {}).get("objectWriteTraceId") or []:
                if key in by_key and key not in results:
                    category = str(error.get("category") or "VALIDATION_ERROR")
                    message = str(error.get("message") or "")
                    if self._lacks_key_property(message):
                        lacking.append(by_key[key])
                    else:
                        results[key] = self._failed(key, category, message)
        refused = {t.key for t in lacking}
        unknown = [t for t in chunk if t.key not in results and t.key not in refused]
        if lacking:
            # Refused, so not created: send them again once the property exists.
            self._add_key_property(object_type, retried=retried)
            unknown.extend(self._create(object_type, lacking, results, retried=True))
        # An input HubSpot neither created nor refused: its outcome is unknown.
        return unknown

    def _split(
        self,
        object_type: str,
        chunk: list[RenderedTouch],
        category: str,
        message: str,
        results: dict[str, DeliveryResult],
        *,
        retried: bool,
    ) -> list[RenderedTouch]:
        """A 400 for the whole batch: halve until the bad input stands alone."""
        if self._lacks_key_property(message):
            # Nothing of the batch was written: send it again once the property exists.
            self._add_key_property(object_type, retried=retried)
            return self._create(object_type, chunk, results, retried=True)
        if len(chunk) == 1:
            touch = chunk[0]
            results[touch.key] = self._failed(touch.key, category or "VALIDATION_ERROR", message)
            return []
        middle = len(chunk) // 2
        unknown: list[RenderedTouch] = []
        for half in (chunk[:middle], chunk[middle:]):
            unknown.extend(self._create(object_type, half, results, retried=retried))
        return unknown

    def _update(
        self,
        object_type: str,
        known: list[RenderedTouch],
        results: dict[str, DeliveryResult],
        *,
        retried: bool = False,
    ) -> list[RenderedTouch]:
        """Rewrite records the key already has; returns those HubSpot no longer has."""
        api = self.client.api("objects_batch")
        gone: list[RenderedTouch] = []
        lacking: list[RenderedTouch] = []
        for chunk in chunks(known, BATCH_LIMIT):
            by_id = {str(t.crm_id): t for t in chunk}
            inputs = [
                {"id": crm_id, "properties": self._input(object_type, t)["properties"]}
                for crm_id, t in by_id.items()
            ]
            answer = self.client.call(
                f"{object_type} batch update",
                api.update,
                object_type,
                {"inputs": inputs},
                idempotent=True,
            )
            for record in answer.get("results") or []:
                touch = by_id.get(str(record.get("id")))
                if touch is not None:
                    results[touch.key] = self._ok(touch.key, str(record.get("id")), False)
            for error in answer.get("errors") or []:
                ids = [str(i) for i in (error.get("context") or {}).get("ids") or []]
                for crm_id in ids:
                    touch = by_id.get(crm_id)
                    if touch is None or touch.key in results:
                        continue
                    if error.get("category") == "OBJECT_NOT_FOUND":
                        gone.append(touch)
                    elif self._lacks_key_property(str(error.get("message") or "")):
                        lacking.append(touch)
                    else:
                        category = str(error.get("category") or "VALIDATION_ERROR")
                        results[touch.key] = self._failed(
                            touch.key, category, str(error.get("message") or "")
                        )
        if lacking:
            # The property was removed since these records were written: put it back.
            self._add_key_property(object_type, retried=retried)
            gone.extend(self._update(object_type, lacking, results, retried=True))
        return gone

    def _recover(
        self,
        object_type: str,
        unsure: list[RenderedTouch],
        results: dict[str, DeliveryResult],
        *,
        attempted: datetime | None,
    ) -> list[RenderedTouch]:
        """Report the records that already carry these keys; returns the touches still missing."""
        if not unsure:
            return []
        if attempted is not None:
            wait = self.settle_seconds - (self.client.clock.now() - attempted).total_seconds()
            if wait > 0:
                self.client.clock.sleep(wait)
        found = self.find(object_type, [t.key for t in unsure])
        for touch in unsure:
            if touch.key in found:
                results[touch.key] = self._ok(touch.key, found[touch.key], False)
        return [t for t in unsure if t.key not in found]

    # -- reading ------------------------------------------------------------------------------

    def find(self, object_type: str, keys: Sequence[str]) -> dict[str, str]:
        """The ids of the engagements carrying ``keys`` (the oldest one per key)."""
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), SEARCH_KEYS):
            chunk = wanted[start : start + SEARCH_KEYS]
            in_filter = {"propertyName": self.key_property, "operator": "IN", "values": chunk}
            try:
                for record in self._search(object_type, [in_filter], sort="hs_object_id"):
                    if record.key in chunk:
                        found.setdefault(record.key, record.crm_id)
            except _NoKeyProperty:
                break  # the rest carry no key either (what was found stands)
        return found

    def scan(self, object_type: str, target: str) -> Iterator[list[KeyedRecord]]:
        """Engagements of ``object_type`` carrying a touch key, newest first, 200 per search
        (windowed on the record id, since one query pages through at most 10,000 results)."""
        has_key = {"propertyName": self.key_property, "operator": "HAS_PROPERTY"}
        below: int | None = None
        while True:
            window: list[dict[str, Any]] = [has_key]
            if below is not None:
                window.append({"propertyName": "hs_object_id", "operator": "LT",
                               "value": str(below)})  # fmt: skip
            read = 0
            try:
                for page in self._pages(object_type, window, target, sort="-hs_object_id"):
                    read += len(page)
                    if page:
                        below = min(int(r.crm_id) for r in page)
                    yield [r for r in page if r.key]
            except _NoKeyProperty:
                return
            if read < SEARCH_CAP:
                return

    def _search(
        self, object_type: str, filters: list[dict[str, Any]], *, sort: str
    ) -> Iterator[KeyedRecord]:
        for page in self._pages(object_type, filters, "", sort=sort):
            yield from page

    def _pages(
        self, object_type: str, filters: list[dict[str, Any]], target: str, *, sort: str
    ) -> Iterator[list[KeyedRecord]]:
        """Search pages (up to 10,000 results, the cap HubSpot sets on one query); raises
        ``_NoKeyProperty`` when HubSpot refuses the search for lacking the key property."""
        after: str | None = None
        read = 0
        while True:
            body = self._body(filters, sort=sort, limit=SEARCH_PAGE)
            if after is not None:
                body["after"] = after
            try:
                answer = self._call_search(object_type, body)
            except CallError as exc:
                if exc.failure.status != 400 or self._has_key_property(object_type):
                    raise exc.error from None
                raise _NoKeyProperty from None
            page = self._records(answer, target)
            read += len(page)
            yield page
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after or read >= SEARCH_CAP:
                return

    def _body(self, filters: list[dict[str, Any]], *, sort: str, limit: int) -> dict[str, Any]:
        direction = "DESCENDING" if sort.startswith("-") else "ASCENDING"
        return {
            "filterGroups": [{"filters": filters}],
            "properties": [self.key_property],
            "sorts": [{"propertyName": sort.lstrip("-"), "direction": direction}],
            "limit": limit,
        }

    def _call_search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        api = self.client.api("objects_search")
        return self.client.call(
            f"{object_type} search", api.do_search, object_type, body,
            idempotent=True, search=True, raw_failures=True,
        )  # fmt: skip

    def _records(self, answer: dict[str, Any], target: str) -> list[KeyedRecord]:
        return [
            KeyedRecord(
                str((r.get("properties") or {}).get(self.key_property) or ""),
                str(r.get("id")),
                target,
            )
            for r in answer.get("results") or []
        ]

    def _ok(self, key: str, crm_id: str, created: bool | None) -> DeliveryResult:
        return DeliveryResult(key, self.sink, True, crm_id=crm_id, created=created)

    def _failed(self, key: str, code: str, message: str) -> DeliveryResult:
        return DeliveryResult(key, self.sink, False, error_code=code, error_message=message)


def _latest(touches: Sequence[RenderedTouch]) -> datetime | None:
    times = [t.attempted_at for t in touches if t.attempted_at is not None]
    return max(times) if times else None
