"""The HubSpot emulator's in-memory portal: CRM objects, properties, associations, lists, events.

Every method takes and returns JSON-shaped data (HubSpot's own field names) and raises
``HubSpotApiError`` with the vendor's status, category and message; ``hubspot.py`` only moves
bytes. Callers hold ``lock`` around every call. Strictness mirrors the real API:

- unknown properties (PROPERTY_DOESNT_EXIST), enumeration values outside the options
  (INVALID_OPTION), read-only properties (READ_ONLY_VALUE), unknown owners (INVALID_OWNER_ID),
  bad numbers/dates/e-mails and missing required properties (hs_timestamp on engagements);
- batches above 100 inputs are a 400 VALIDATION_ERROR;
- batch create is all-or-nothing (one bad record fails the call: 400, or 409 CONFLICT for an
  e-mail or unique value already used, "Existing ID: N") unless every input carries its own
  ``objectWriteTraceId``: then the valid inputs are created and the invalid ones come back in a
  207 multi-status body, each error naming its input's trace id in ``context``
  (developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors"); batch
  read/update/upsert report per-record failures in a 207 body with ``errors`` and ``numErrors``;
- unique-value properties (``hasUniqueValue``) exist for contacts, companies, deals, tickets and
  custom objects, never for activities (calls, emails, meetings, notes, tasks): creating one on
  an activity is a 400 (developers.hubspot.com/changelog/unique-properties-for-contacts), so
  nothing ever deduplicates activities here, as in HubSpot;
- search pages stop at 10,000 results (``after`` >= 10000 is a 400) and a ``query`` holds at
  most 3,000 characters; a record is found by search only ``search_index_lag_s`` after it was
  created: HubSpot's search index trails writes by seconds (third-party reports; 0 by default,
  tests of recovery raise it); contacts are found by their modification time on
  ``lastmodifieddate`` only (``_UNINDEXED``);
- v4 association batch reads page each record's associations on their own (``paging.next.after``
  per result row, asked again as the input's ``after``);
- timeline event batches take at most 100 events; custom event occurrences keep HubSpot's
  documented limits (``pe<HubID>_<name>`` event names, at most 50 properties with lowercase
  names of up to 50 characters, values of up to 256 characters or 1,024 for url/referrer/link
  properties, a readable ``occurredAt``), and a batch of them is refused whole for one bad one.

Poison records, a test hook only: marketing e-mail events and form submissions made from the
seed world are well-formed. ``PortalData.plant_email_event`` and ``plant_submission`` put one in
exactly as given (no id, a ``created`` that is no number, a NUL in a value ...) at a chosen time,
served by the events and submissions endpoints in their newest-first order like any other.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from sandbox.hubspot_clock import StoreClock, format_iso_ms, iso_ms, to_ms
from sandbox.hubspot_schema import (
    ASSOCIATION_TYPES,
    DEFAULT_PROPERTIES,
    ENGAGEMENT_TYPES,
    INVERSE_ASSOCIATION,
    OBJECT_TYPE_IDS,
    OBJECT_TYPES,
    READ_ONLY_PROPERTIES,
    REQUIRED_ON_CREATE,
    base_properties,
    singular,
)
from sandbox.hubspot_search import (
    SearchInputError,
    compile_filter_groups,
    parse_datetime_ms,
    sort_key,
)
from sandbox.hubspot_subscriptions import Subscriptions

__all__ = [
    "BATCH_LIMIT",
    "BEHAVIORAL_BATCH_LIMIT",
    "HISTORY_BATCH_LIMIT",
    "SEARCH_RESULT_CAP",
    "TIMELINE_BATCH_LIMIT",
    "HubSpotApiError",
    "PortalData",
]

BATCH_LIMIT = 100
# Batch reads asking for propertiesWithHistory take fewer inputs (HubSpot's own error message).
HISTORY_BATCH_LIMIT = 50
# POST /events/v3/send/batch takes 500 occurrences a call (the custom events guide, Limits:
# https://developers.hubspot.com/docs/api-reference/legacy/events/send-event-data/guide).
BEHAVIORAL_BATCH_LIMIT = 500
# Timeline events batch create (v3): the v3 reference names no size; v1's batch took 100 events
# at most (https://developers.hubspot.com/docs/methods/timeline/batch-create-or-update-events),
# as every CRM batch does. Assumed to hold for v3 too: the sandbox refuses more.
TIMELINE_BATCH_LIMIT = 100
ASSOCIATION_READ_LIMIT = 1000
# Associations one result row of a v4 batch read carries before it pages (``paging.next.after``
# on that row). HubSpot documents per-row paging but no row size: this is **assumed** from the
# v4 per-record read's documented limit of 500 (associations.json, GET
# /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}). Tests lower it on
# ``PortalData.association_page``.
ASSOCIATION_PAGE_LIMIT = 500
ASSOCIATION_CREATE_LIMIT = 2000
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
# PublicObjectSearchRequest.query holds at most 3,000 characters (OpenAPI,
# CRM/Contacts/Rollouts/424/v3/contacts.json in HubSpot-public-api-spec-collection)
SEARCH_QUERY_LIMIT = 3000
LIST_PAGE_LIMIT = 100
MAX_STRING_LENGTH = 65_536
PORTAL_ID = 4_000_001

_DEFAULT_NAMES = {kind: frozenset(names) for kind, names in DEFAULT_PROPERTIES.items()}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# String properties ``_check_value`` checks beyond their length (owner ids, contact e-mails).
_CHECKED_STRINGS = frozenset({"hubspot_owner_id", "email"})
# associationTypeId -> (from type, to type)
_TYPE_PAIRS: dict[int, tuple[str, str]] = {}
for (_source, _target), (_default, _primary) in ASSOCIATION_TYPES.items():
    _TYPE_PAIRS[_default] = (_source, _target)
    if _primary is not None:
        _TYPE_PAIRS[_primary] = (_source, _target)


class HubSpotApiError(Exception):
    """An error answer of the HubSpot API: HTTP status, category, message and extras."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra

    def body(self, correlation_id: str) -> dict[str, Any]:
        """The JSON body HubSpot sends for this error."""
        return {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id,
            "category": self.category,
            **self.extra,
        }


# Property history entries: (value, time, sourceType), oldest first.
History = list[tuple[str, datetime, str]]


class _Record:
    __slots__ = ("created", "history", "id", "indexed_at", "properties", "updated")

    def __init__(self, record_id: str, properties: dict[str, str], moment: datetime) -> None:
        self.id = record_id
        self.properties = properties
        self.created = moment
        self.updated = moment
        # When search can find the record (monotonic seconds; set by the store on create).
        self.indexed_at = 0.0
        # Kept from a property's first change on: until then its one value dates from creation.
        self.history: dict[str, History] | None = None

    def property_history(self, name: str) -> History:
        """Every value ``name`` has had, oldest first (HubSpot answers newest first)."""
        if self.history is not None and name in self.history:
            return self.history[name]
        value = self.properties.get(name)
        return [] if value is None else [(value, self.created, "CRM_UI")]

    def record_change(self, name: str, value: str, moment: datetime, source: str) -> None:
        """Remember that ``name`` was set to ``value`` (cleared: "") at ``moment``."""
        entries = self.property_history(name)
        if self.history is None:
            self.history = {}
        self.history[name] = [*entries, (value, moment, source)]


def _now_iso(moment: datetime) -> str:
    return iso_ms(moment)


def _batch_error(category: str, message: str, ids: Iterable[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": list(ids)},
        "links": {},
        "errors": [],
    }


def _property_error(name: str, code: str, message: str) -> dict[str, Any]:
    """One entry of the "Property values were not valid" list HubSpot answers with."""
    return {
        "isValid": False,
        "message": message,
        "error": code,
        "name": name,
        "localizedErrorMessage": message,
        "portalId": PORTAL_ID,
    }


def _too_long(name: str) -> tuple[str, str]:
    return "INVALID_LENGTH", f"Property {name} exceeds the maximum length of {MAX_STRING_LENGTH}."


# Contacts carry ``hs_lastmodifieddate`` (portals list it among their properties) but their
# modification time in CRM search is ``lastmodifieddate``: the search guide names it as the
# contacts' default property (https://developers.hubspot.com/docs/api/crm/search), and
# integrators report that contacts filtered on ``hs_lastmodifieddate`` come back without the
# ones that changed, with a 200 (amp-labs/connectors#45, citing HubSpot's community forum). The
# emulator answers such a search as if no contact had a value there.
_UNINDEXED: dict[str, frozenset[str]] = {"contacts": frozenset({"hs_lastmodifieddate"})}
# The modification time ``render`` adds to the properties asked for, as it adds the creation time.
MODIFIED = "hs_lastmodifieddate"
_MODIFIED = {"contacts": "lastmodifieddate"}


# Custom event occurrences (POST /events/v3/send and /send/batch): a request over one of the
# limits HubSpot lists fails
# (https://developers.hubspot.com/docs/api-reference/legacy/events/send-event-data/guide, section
# Limits), and names and values follow the rules of event definitions
# (https://developers.hubspot.com/docs/api-reference/legacy/events/define-events/guide).
EVENT_PROPERTY_LIMIT = 50  # properties per occurrence
EVENT_NAME_LENGTH = 50  # an event's or a property's internal name
EVENT_VALUE_LENGTH = 256  # a property value ...
EVENT_URL_VALUE_LENGTH = 1024  # ... whose property name has url, referrer or link in it
_EVENT_PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*")
# The fully qualified name: pe{HubID}_{name}, the name as an event definition's internal name.
_EVENT_NAME = re.compile(rf"pe[0-9]+_[a-z][a-z0-9_]{{0,{EVENT_NAME_LENGTH - 1}}}")


def _occurrence_problem(body: dict[str, Any]) -> str | None:
    """Why HubSpot refuses this custom event occurrence under its documented limits, or None."""
    name = str(body["eventName"])
    if not _EVENT_NAME.fullmatch(name):
        return (
            f"Event {name!r} is not a custom event's fully qualified name, "
            f"pe<HubID>_<name> with a name of at most {EVENT_NAME_LENGTH} lowercase letters, "
            "digits and underscores."
        )
    stamp = body.get("occurredAt")
    readable = isinstance(stamp, int) or (
        isinstance(stamp, str) and parse_datetime_ms(stamp) is not None
    )
    if stamp is not None and (isinstance(stamp, bool) or not readable):
        return f"occurredAt {stamp!r} is neither an ISO 8601 datetime nor epoch milliseconds."
    properties = body.get("properties", {})
    if not isinstance(properties, dict):
        return "properties must be an object of property names and values."
    if len(properties) > EVENT_PROPERTY_LIMIT:
        return (
            f"The occurrence has {len(properties)} properties; an event occurrence can have at "
            f"most {EVENT_PROPERTY_LIMIT} properties."
        )
    for prop, value in properties.items():
        if len(prop) > EVENT_NAME_LENGTH:
            return (
                f"Property name {prop!r} has {len(prop)} characters; a property's internal name "
                f"can have at most {EVENT_NAME_LENGTH} characters."
            )
        if not re.match("[A-Za-z]", prop):
            return f"Property name {prop!r} must start with a letter."
        if not _EVENT_PROPERTY_NAME.fullmatch(prop):
            return (
                f"Property name {prop!r} may hold only lowercase letters a-z, digits and "
                "underscores."
            )
        text = value if isinstance(value, str) else json.dumps(value)
        url_like = any(word in prop for word in ("url", "referrer", "link"))
        limit = EVENT_URL_VALUE_LENGTH if url_like else EVENT_VALUE_LENGTH
        if len(text) > limit:
            return (
                f"The value of property {prop!r} is {len(text)} characters long; it can be at "
                f"most {limit} characters."
            )
    return None


def _named_in(body: dict[str, Any]) -> set[str]:
    """Every property a search body filters or sorts on."""
    names: set[str] = set()
    groups = body.get("filterGroups")
    for group in groups if isinstance(groups, list) else []:
        filters = group.get("filters") if isinstance(group, dict) else None
        for spec in filters if isinstance(filters, list) else []:
            if isinstance(spec, dict):
                names.add(str(spec.get("propertyName")))
    sorts = body.get("sorts")
    for spec in sorts if isinstance(sorts, list) else []:
        if isinstance(spec, str):
            names.add(spec.lstrip("-"))
        elif isinstance(spec, dict):
            names.add(str(spec.get("propertyName")))
    return names


def _without(props: dict[str, str], hidden: set[str] | frozenset[str]) -> dict[str, str]:
    return {k: v for k, v in props.items() if k not in hidden}


def _sorter(name: str, kind: str) -> Callable[[_Record], tuple[int, Any]]:
    return lambda record: sort_key(kind, record.properties.get(name))


class PortalData:
    """All CRM data of one emulated HubSpot portal (not thread-safe: callers hold ``lock``)."""

    def __init__(self, clock: StoreClock) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.association_page = ASSOCIATION_PAGE_LIMIT
        self.clear()

    def clear(self) -> None:
        """Forget every record, custom property, list and event; the index lag goes back to 0."""
        self._next_id = 1001
        # Seconds a new record stays invisible to search (HubSpot's index trails its writes).
        self.search_index_lag_s = 0.0
        self.objects: dict[str, dict[str, _Record]] = {t: {} for t in OBJECT_TYPES}
        self.archived: dict[str, dict[str, _Record]] = {t: {} for t in OBJECT_TYPES}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {
            t: base_properties(t) for t in OBJECT_TYPES
        }
        self._unique: dict[str, dict[str, dict[str, str]]] = {}
        for object_type in OBJECT_TYPES:
            self._reindex_unique(object_type)
        # (from type, from id, to type) -> {to id: sorted typeIds}. The typeIds are shared tuples
        # of ints, not a set per link: the cyclic garbage collector stops tracking tuples and
        # dicts of plain values, so a million links do not add a million objects to rescan on
        # each of its full passes.
        self.associations: dict[tuple[str, str, str], dict[str, tuple[int, ...]]] = defaultdict(
            dict
        )
        self._type_ids: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.owners: dict[str, dict[str, Any]] = {}
        self.subscriptions = Subscriptions(self.clock.now)
        self.lists: dict[str, dict[str, Any]] = {}
        self.memberships: dict[str, dict[str, int]] = {}
        self.timeline_events: dict[str, dict[str, Any]] = {}
        # The event template ids the portal's app defines; None accepts any (not emulated).
        self.event_templates: set[str] | None = None
        self.behavioral_events: list[dict[str, Any]] = []
        self.email_events: list[dict[str, Any]] = []
        self.forms: dict[str, dict[str, Any]] = {}
        self.submissions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # Where planted (malformed) events and submissions stand in time: id(record) -> ms.
        self._planted: dict[int, int] = {}

    # ------------------------------------------------------------ test hooks
    def plant_email_event(self, event: dict[str, Any], at: datetime) -> None:
        """Test hook: serve ``event`` exactly as given (malformed on purpose) as an e-mail event
        of time ``at``, whatever its own ``created`` says."""
        stamp = to_ms(at)
        self._planted[id(event)] = stamp
        index = next(
            (i for i, e in enumerate(self.email_events) if self._moment(e, "created") < stamp),
            len(self.email_events),
        )
        self.email_events.insert(index, event)

    def plant_submission(self, form_id: str, row: dict[str, Any], at: datetime) -> None:
        """Test hook: serve ``row`` exactly as given (malformed on purpose) as a submission of
        form ``form_id`` at time ``at``, whatever its own ``submittedAt`` says."""
        if form_id not in self.forms:
            raise KeyError(f"no form {form_id}")
        stamp = to_ms(at)
        self._planted[id(row)] = stamp
        rows = self.submissions[form_id]
        index = next(
            (i for i, r in enumerate(rows) if self._moment(r, "submittedAt") < stamp), len(rows)
        )
        rows.insert(index, row)

    def _moment(self, record: dict[str, Any], name: str) -> int:
        """A marketing record's time in ms (a planted one's: where it was planted)."""
        planted = self._planted.get(id(record))
        if planted is not None:
            return planted
        value = record.get(name)
        return value if isinstance(value, int) else 0

    # ------------------------------------------------------------------ helpers
    def mint_id(self) -> str:
        """A new numeric HubSpot id (as HubSpot sends them: a string)."""
        self._next_id += 1
        return str(self._next_id)

    def _reindex_unique(self, object_type: str) -> None:
        names = [n for n, d in self.properties[object_type].items() if d.get("hasUniqueValue")]
        if object_type == "contacts":
            names.append("email")
        index: dict[str, dict[str, str]] = {name: {} for name in names}
        for record in self.objects[object_type].values():
            for name in names:
                value = record.properties.get(name)
                if value:
                    index[name][self._unique_form(name, value)] = record.id
        self._unique[object_type] = index

    @staticmethod
    def _unique_form(name: str, value: str) -> str:
        return value.lower() if name == "email" else value

    def _types(self, object_type: str) -> dict[str, str]:
        return {n: d["type"] for n, d in self.properties[object_type].items()}

    def _check_type(self, object_type: str) -> None:
        if object_type not in OBJECT_TYPE_IDS:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}"
            )

    def _validate(
        self, object_type: str, values: Any, *, creating: bool
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Normalized property values and HubSpot's property errors for one input record."""
        if not isinstance(values, dict):
            values = {}
        definitions = self.properties[object_type]
        clean: dict[str, str] = {}
        errors: list[dict[str, Any]] = []
        for name, raw in values.items():
            definition = definitions.get(name)
            if definition is None:
                errors.append(
                    _property_error(
                        name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
                    )
                )
            elif name in READ_ONLY_PROPERTIES:
                errors.append(
                    _property_error(
                        name,
                        "READ_ONLY_VALUE",
                        f'"{name}" is a read only property; its value cannot be set.',
                    )
                )
            elif raw is None or raw == "":
                clean[name] = ""
            elif (
                type(raw) is str and definition["type"] == "string" and name not in _CHECKED_STRINGS
            ):
                # Free text, most of what a batch carries: only the length limit applies.
                if len(raw) > MAX_STRING_LENGTH:
                    errors.append(_property_error(name, *_too_long(name)))
                else:
                    clean[name] = raw
            else:
                value = str(raw).lower() if isinstance(raw, bool) else str(raw)
                normalized, problem = self._check_value(object_type, definition, value)
                if problem is not None:
                    errors.append(_property_error(name, *problem))
                else:
                    clean[name] = normalized
        if creating:
            for name in REQUIRED_ON_CREATE[object_type]:
                if not clean.get(name):
                    errors.append(
                        _property_error(name, "REQUIRED_PROPERTY", f"{name} is a required property")
                    )
        return clean, errors

    def _check_value(
        self, object_type: str, definition: dict[str, Any], value: str
    ) -> tuple[str, tuple[str, str] | None]:
        """The stored form of ``value`` and (error code, message) when HubSpot would reject it."""
        name = definition["name"]
        kind = definition["type"]
        if name == "hubspot_owner_id":
            if value not in self.owners:
                return value, ("INVALID_OWNER_ID", f'"{value}" is not a valid owner id')
        elif kind == "enumeration":
            allowed = {o["value"] for o in definition["options"]}
            chosen = value.split(";") if definition["fieldType"] == "checkbox" else [value]
            if allowed and any(v not in allowed for v in chosen):
                options = ", ".join(sorted(allowed))
                message = f"{value} was not one of the allowed options: [{options}]"
                return value, ("INVALID_OPTION", message)
        elif kind == "number":
            try:
                float(value)
            except ValueError:
                return value, ("INVALID_DECIMAL", f'"{value}" is not a valid number.')
        elif kind in ("datetime", "date"):
            ms = parse_datetime_ms(value)
            if ms is None:
                return value, ("INVALID_DATE", f'"{value}" is not a valid date or datetime.')
            value = format_iso_ms(datetime.fromtimestamp(ms / 1000, UTC))
        elif len(value) > MAX_STRING_LENGTH:
            return value, _too_long(name)
        if name == "email" and object_type == "contacts" and not _EMAIL.match(value):
            return value, ("INVALID_EMAIL", f"Email address {value} is invalid")
        return value, None

    @staticmethod
    def _invalid_message(errors: list[dict[str, Any]]) -> str:
        return "Property values were not valid: " + json.dumps(errors)

    def _conflict(self, object_type: str, clean: dict[str, str], own_id: str | None) -> str | None:
        """The id of another record already holding one of ``clean``'s unique values."""
        for name, index in self._unique[object_type].items():
            value = clean.get(name)
            if value:
                holder = index.get(self._unique_form(name, value))
                if holder is not None and holder != own_id:
                    return holder
        return None

    def _conflict_message(self, object_type: str, existing: str) -> str:
        if object_type == "contacts":
            return f"Contact already exists. Existing ID: {existing}"
        return (
            f"A {singular(object_type)} with this unique property value already exists. "
            f"Existing ID: {existing}"
        )

    def _store(
        self, object_type: str, clean: dict[str, str], moment: datetime | None = None
    ) -> _Record:
        moment = moment or self.clock.now()
        record_id = self.mint_id()
        properties = {k: v for k, v in clean.items() if v != ""}
        record = _Record(record_id, properties, moment)
        record.indexed_at = time.monotonic() + self.search_index_lag_s
        self._stamp(object_type, record, created=True)
        self.objects[object_type][record_id] = record
        self._index(object_type, record)
        return record

    def _stamp(self, object_type: str, record: _Record, *, created: bool = False) -> None:
        props = record.properties
        props["hs_object_id"] = record.id
        created_name = "hs_createdate" if object_type in ENGAGEMENT_TYPES else "createdate"
        if created or created_name not in props:
            props[created_name] = iso_ms(record.created)
        props["hs_lastmodifieddate"] = iso_ms(record.updated)
        if object_type == "contacts":
            props["lastmodifieddate"] = iso_ms(record.updated)

    def _index(self, object_type: str, record: _Record) -> None:
        for name, index in self._unique[object_type].items():
            value = record.properties.get(name)
            if value:
                index[self._unique_form(name, value)] = record.id

    def _unindex(self, object_type: str, record: _Record) -> None:
        for name, index in self._unique[object_type].items():
            value = record.properties.get(name)
            if value and index.get(self._unique_form(name, value)) == record.id:
                del index[self._unique_form(name, value)]

    def _apply(self, object_type: str, record: _Record, clean: dict[str, str]) -> None:
        self._unindex(object_type, record)
        now = self.clock.now()
        for name, value in clean.items():
            if record.properties.get(name, "") != value:
                record.record_change(name, value, now, "INTEGRATION")
            if value == "":
                record.properties.pop(name, None)
            else:
                record.properties[name] = value
        record.updated = self.clock.now()
        self._stamp(object_type, record)
        self._index(object_type, record)

    def render(
        self,
        object_type: str,
        record: _Record,
        wanted: list[str] | None = None,
        *,
        archived: bool = False,
        with_history: list[str] | None = None,
    ) -> dict[str, Any]:
        """A record as HubSpot's SimplePublicObject (defaults plus requested properties, and
        ``propertiesWithHistory``: each named property's values, newest first)."""
        names = list(DEFAULT_PROPERTIES[object_type])
        if wanted:
            names = [*wanted, "hs_object_id"]
            names += [
                n
                for n in ("createdate", "hs_createdate", _MODIFIED.get(object_type, MODIFIED))
                if n in record.properties
            ]
        props = {name: record.properties.get(name) for name in dict.fromkeys(names)}
        rendered = {
            "id": record.id,
            "properties": props,
            "createdAt": iso_ms(record.created),
            "updatedAt": iso_ms(record.updated),
            "archived": archived,
        }
        if with_history:
            rendered["propertiesWithHistory"] = {
                name: [
                    {"value": value, "timestamp": iso_ms(at), "sourceType": source}
                    for value, at, source in reversed(record.property_history(name))
                ]
                for name in dict.fromkeys(with_history)
            }
        return rendered

    def _render_written(self, object_type: str, record: _Record) -> dict[str, Any]:
        # ``render`` with every set property plus the defaults: the union already holds
        # hs_object_id and the set timestamps, so the names stay in sorted order.
        props = record.properties
        names = sorted(props.keys() | _DEFAULT_NAMES[object_type])
        return {
            "id": record.id,
            "properties": {name: props.get(name) for name in names},
            "createdAt": iso_ms(record.created),
            "updatedAt": iso_ms(record.updated),
            "archived": False,
        }

    @staticmethod
    def _check_batch(inputs: Any, limit: int = BATCH_LIMIT) -> list[dict[str, Any]]:
        if not isinstance(inputs, list):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' must be a list."
            )
        if len(inputs) > limit:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Batch input cannot contain more than {limit} inputs. Found {len(inputs)}.",
                context={"inputs": [str(len(inputs))]},
            )
        return [i if isinstance(i, dict) else {} for i in inputs]

    def _batch_answer(
        self,
        results: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        started: datetime,
        ok: int,
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(self.clock.now()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return 207, body
        return ok, body

    def _resolve_id(self, object_type: str, value: str, id_property: str | None) -> _Record | None:
        if not id_property or id_property == "hs_object_id":
            return self.objects[object_type].get(str(value))
        index = self._unique[object_type].get(id_property)
        if index is None:
            return None
        found = index.get(self._unique_form(id_property, str(value)))
        return self.objects[object_type].get(found) if found else None

    def _check_id_property(self, object_type: str, id_property: str | None) -> None:
        if (
            id_property
            and id_property != "hs_object_id"
            and id_property not in self._unique[object_type]
        ):
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Property {id_property} is not a unique identifier property for "
                f"{singular(object_type)}s; use hs_object_id or a property with hasUniqueValue.",
            )

    # --------------------------------------------------------------- associations
    def associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int
    ) -> None:
        """Link two records with ``type_id`` and its inverse."""
        self._link(self.associations[(from_type, from_id, to_type)], to_id, type_id)
        inverse = INVERSE_ASSOCIATION[type_id]
        self._link(self.associations[(to_type, to_id, from_type)], from_id, inverse)

    def _link(self, targets: dict[str, tuple[int, ...]], to_id: str, type_id: int) -> None:
        types = targets.get(to_id, ())
        if type_id not in types:
            merged = tuple(sorted((*types, type_id)))
            targets[to_id] = self._type_ids.setdefault(merged, merged)

    def _inline_associations(
        self, object_type: str, inputs: list[dict[str, Any]]
    ) -> list[list[tuple[str, str, int]]]:
        """Validate inline ``associations`` of create inputs; (to type, to id, typeId) per input."""
        return [self._links_of(object_type, item) for item in inputs]

    def _links_of(self, object_type: str, item: dict[str, Any]) -> list[tuple[str, str, int]]:
        """One create input's inline associations, or the 400 HubSpot answers for them."""
        links: list[tuple[str, str, int]] = []
        for association in item.get("associations") or []:
            to_id = str((association.get("to") or {}).get("id", ""))
            for spec in association.get("types") or []:
                type_id = spec.get("associationTypeId")
                category = spec.get("associationCategory")
                pair = _TYPE_PAIRS.get(type_id) if isinstance(type_id, int) else None
                if category != "HUBSPOT_DEFINED" or pair is None or pair[0] != object_type:
                    raise HubSpotApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"{category} {type_id} is not a valid association type from "
                        f"{singular(object_type)}.",
                    )
                if to_id not in self.objects[pair[1]]:
                    raise HubSpotApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"One or more associations are invalid: {singular(pair[1])} {to_id} "
                        "does not exist.",
                        context={"ids": [to_id]},
                    )
                links.append((pair[1], to_id, type_id))
        return links

    def association_types(
        self, from_type: str, from_id: str, to_type: str
    ) -> dict[str, tuple[int, ...]]:
        """The records of ``to_type`` linked to one record, with their type ids."""
        return self.associations.get((from_type, from_id, to_type), {})

    # ------------------------------------------------------------------ objects
    def create_one(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}: one record, with inline associations."""
        _, answer = self.batch_create(object_type, {"inputs": [body]})
        return dict(answer["results"][0])

    def batch_create(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Batch create: all-or-nothing (400 on any invalid record, 409 on a used unique value),
        or per record (207) when every input carries its own ``objectWriteTraceId``."""
        self._check_type(object_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"))
        traces = [item.get("objectWriteTraceId") for item in inputs]
        if inputs and all(isinstance(t, str) and t for t in traces):
            if len(set(traces)) != len(traces):
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", "objectWriteTraceId values must be unique in a batch."
                )
            return self._traced_create(object_type, inputs, started)
        cleaned: list[dict[str, str]] = []
        problems: list[dict[str, Any]] = []
        for item in inputs:
            clean, errors = self._validate(object_type, item.get("properties"), creating=True)
            cleaned.append(clean)
            problems.extend(errors)
        if problems:
            raise HubSpotApiError(400, "VALIDATION_ERROR", self._invalid_message(problems))
        seen: dict[tuple[str, str], int] = {}
        for position, clean in enumerate(cleaned):
            existing = self._conflict(object_type, clean, None)
            if existing is not None:
                raise HubSpotApiError(
                    409, "CONFLICT", self._conflict_message(object_type, existing)
                )
            for name in self._unique[object_type]:
                value = clean.get(name)
                if value:
                    key = (name, self._unique_form(name, value))
                    if key in seen:
                        raise HubSpotApiError(
                            400,
                            "VALIDATION_ERROR",
                            f"Duplicate values found in batch input for unique property {name}: "
                            f"inputs {seen[key]} and {position}",
                        )
                    seen[key] = position
        links = self._inline_associations(object_type, inputs)
        results = []
        moment = self.clock.now()
        for clean, planned in zip(cleaned, links, strict=True):
            results.append(self._create_linked(object_type, clean, planned, moment))
        return self._batch_answer(results, [], started, 201)

    def _traced_create(
        self, object_type: str, inputs: list[dict[str, Any]], started: datetime
    ) -> tuple[int, dict[str, Any]]:
        """Create each valid input; each invalid one is an error naming its trace id (207)."""
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        moment = self.clock.now()
        for item in inputs:
            trace = str(item["objectWriteTraceId"])
            clean, problems = self._validate(object_type, item.get("properties"), creating=True)
            failure: HubSpotApiError | None = None
            if problems:
                failure = HubSpotApiError(400, "VALIDATION_ERROR", self._invalid_message(problems))
            elif (existing := self._conflict(object_type, clean, None)) is not None:
                failure = HubSpotApiError(
                    409, "CONFLICT", self._conflict_message(object_type, existing)
                )
            else:
                try:
                    links = self._links_of(object_type, item)
                except HubSpotApiError as exc:
                    failure = exc
            if failure is not None:
                errors.append(
                    {
                        "status": "error",
                        "category": failure.category,
                        "message": failure.message,
                        "context": {"objectWriteTraceId": [trace]},
                        "links": {},
                        "errors": [],
                    }
                )
                continue
            written = self._create_linked(object_type, clean, links, moment)
            results.append({**written, "objectWriteTraceId": trace})
        return self._batch_answer(results, errors, started, 201)

    def _create_linked(
        self,
        object_type: str,
        clean: dict[str, str],
        links: list[tuple[str, str, int]],
        moment: datetime,
    ) -> dict[str, Any]:
        record = self._store(object_type, clean, moment)
        for to_type, to_id, type_id in links:
            self.associate(object_type, record.id, to_type, to_id, type_id)
        return self._render_written(object_type, record)

    def batch_read(
        self, object_type: str, body: dict[str, Any], archived: bool
    ) -> tuple[int, dict[str, Any]]:
        """Batch read by id or unique ``idProperty``; unknown ids are OBJECT_NOT_FOUND (207)."""
        self._check_type(object_type)
        started = self.clock.now()
        with_history = body.get("propertiesWithHistory") or None
        inputs_given = body.get("inputs")
        if (
            with_history
            and isinstance(inputs_given, list)
            and len(inputs_given) > HISTORY_BATCH_LIMIT
        ):
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                "The maximum number of inputs supported in a batch request for property "
                f"histories is {HISTORY_BATCH_LIMIT}. Please reduce the number of items and "
                "try again",
            )
        inputs = self._check_batch(body.get("inputs"))
        id_property = body.get("idProperty")
        self._check_id_property(object_type, id_property)
        wanted = body.get("properties") or None
        results, missing = [], []
        pool = self.archived[object_type] if archived else None
        for item in inputs:
            key = str(item.get("id", ""))
            record = (
                pool.get(key)
                if pool is not None
                else self._resolve_id(object_type, key, id_property)
            )
            if record is None:
                missing.append(key)
            else:
                results.append(
                    self.render(
                        object_type, record, wanted, archived=archived, with_history=with_history
                    )
                )
        errors = []
        if missing:
            errors.append(
                _batch_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {singular(object_type).upper()} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    missing,
                )
            )
        return self._batch_answer(results, errors, started, 200)

    def batch_update(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Batch update; unknown ids and invalid records fail alone (207), the rest are written."""
        self._check_type(object_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"))
        results, errors, missing = [], [], []
        for item in inputs:
            id_property = item.get("idProperty")
            self._check_id_property(object_type, id_property)
            key = str(item.get("id", ""))
            record = self._resolve_id(object_type, key, id_property)
            if record is None:
                missing.append(key)
                continue
            clean, problems = self._validate(object_type, item.get("properties"), creating=False)
            if problems:
                errors.append(
                    _batch_error("VALIDATION_ERROR", self._invalid_message(problems), [key])
                )
                continue
            existing = self._conflict(object_type, clean, record.id)
            if existing is not None:
                errors.append(
                    _batch_error("CONFLICT", self._conflict_message(object_type, existing), [key])
                )
                continue
            self._apply(object_type, record, clean)
            results.append(self._render_written(object_type, record))
        if missing:
            errors.append(
                _batch_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not find some {singular(object_type).upper()} objects to update.",
                    missing,
                )
            )
        return self._batch_answer(results, errors, started, 200)

    def batch_upsert(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Batch upsert on a unique ``idProperty``; ``new`` says which records were created."""
        self._check_type(object_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"))
        results, errors = [], []
        for item in inputs:
            id_property = item.get("idProperty")
            if not id_property or id_property == "hs_object_id":
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", "Upsert requires an idProperty with unique values."
                )
            self._check_id_property(object_type, id_property)
            key = str(item.get("id", ""))
            record = self._resolve_id(object_type, key, id_property)
            values = dict(item.get("properties") or {})
            values.setdefault(id_property, key)
            clean, problems = self._validate(object_type, values, creating=record is None)
            if problems:
                errors.append(
                    _batch_error("VALIDATION_ERROR", self._invalid_message(problems), [key])
                )
                continue
            existing = self._conflict(object_type, clean, record.id if record else None)
            if existing is not None:
                errors.append(
                    _batch_error("CONFLICT", self._conflict_message(object_type, existing), [key])
                )
                continue
            if record is None:
                record = self._store(object_type, clean)
                created = True
            else:
                self._apply(object_type, record, clean)
                created = False
            rendered = self._render_written(object_type, record)
            rendered["new"] = created
            results.append(rendered)
        return self._batch_answer(results, errors, started, 200)

    def batch_archive(self, object_type: str, body: dict[str, Any]) -> None:
        """Batch archive; ids that do not exist are ignored, like HubSpot's 204."""
        self._check_type(object_type)
        for item in self._check_batch(body.get("inputs")):
            self.archive_one(object_type, str(item.get("id", "")), missing_ok=True)

    def get_one(
        self,
        object_type: str,
        key: str,
        id_property: str | None,
        wanted: list[str] | None,
        archived: bool,
    ) -> dict[str, Any]:
        """GET /crm/v3/objects/{type}/{id}."""
        self._check_type(object_type)
        self._check_id_property(object_type, id_property)
        record = (
            self.archived[object_type].get(key)
            if archived
            else self._resolve_id(object_type, key, id_property)
        )
        if record is None:
            raise self._not_found(key)
        return self.render(object_type, record, wanted, archived=archived)

    @staticmethod
    def _not_found(key: str) -> HubSpotApiError:
        return HubSpotApiError(
            404,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
            context={"id": [key]},
        )

    def update_one(
        self, object_type: str, key: str, id_property: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PATCH /crm/v3/objects/{type}/{id}."""
        self._check_type(object_type)
        self._check_id_property(object_type, id_property)
        record = self._resolve_id(object_type, key, id_property)
        if record is None:
            raise self._not_found(key)
        clean, problems = self._validate(object_type, body.get("properties"), creating=False)
        if problems:
            raise HubSpotApiError(400, "VALIDATION_ERROR", self._invalid_message(problems))
        existing = self._conflict(object_type, clean, record.id)
        if existing is not None:
            raise HubSpotApiError(409, "CONFLICT", self._conflict_message(object_type, existing))
        self._apply(object_type, record, clean)
        return self._render_written(object_type, record)

    def archive_one(self, object_type: str, key: str, *, missing_ok: bool = True) -> None:
        """DELETE /crm/v3/objects/{type}/{id}: move the record to the archive."""
        self._check_type(object_type)
        record = self.objects[object_type].pop(key, None)
        if record is None:
            if missing_ok:
                return
            raise self._not_found(key)
        self._unindex(object_type, record)
        record.updated = self.clock.now()
        self.archived[object_type][key] = record

    def list_objects(
        self,
        object_type: str,
        limit: int,
        after: str | None,
        wanted: list[str] | None,
        archived: bool,
    ) -> dict[str, Any]:
        """GET /crm/v3/objects/{type}: id-ordered pages with an ``after`` cursor."""
        self._check_type(object_type)
        if not 1 <= limit <= LIST_PAGE_LIMIT:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"limit must be between 1 and {LIST_PAGE_LIMIT}; got {limit}.",
            )
        pool = self.archived[object_type] if archived else self.objects[object_type]
        start = int(after) if after and after.isdigit() else 0
        ordered = sorted(int(k) for k in pool if int(k) > start)
        page = ordered[:limit]
        body: dict[str, Any] = {
            "results": [
                self.render(object_type, pool[str(k)], wanted, archived=archived) for k in page
            ]
        }
        if len(ordered) > limit:
            next_after = str(page[-1])
            body["paging"] = {
                "next": {
                    "after": next_after,
                    "link": f"/crm/v3/objects/{object_type}?after={next_after}",
                }
            }
        return body

    # ------------------------------------------------------------------- search
    def search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/search with HubSpot's limits (200/page, 10,000 results)."""
        self._check_type(object_type)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 <= limit <= SEARCH_PAGE_LIMIT:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Invalid search limit {limit}: limit must be at most {SEARCH_PAGE_LIMIT}.",
            )
        after_text = str(body.get("after") or "0")
        if not after_text.isdigit():
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid 'after' value {after_text!r}.")
        after = int(after_text)
        if after >= SEARCH_RESULT_CAP:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Search results are limited to {SEARCH_RESULT_CAP} records; "
                f"'after' {after} is beyond that. Narrow the query instead of paging further.",
            )
        types = self._types(object_type)
        try:
            matches = compile_filter_groups(body.get("filterGroups"), types)
        except SearchInputError as exc:
            raise HubSpotApiError(400, "VALIDATION_ERROR", str(exc)) from None
        query = str(body.get("query") or "").lower()
        if len(query) > SEARCH_QUERY_LIMIT:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"The search query is {len(query)} characters long; it can be at most "
                f"{SEARCH_QUERY_LIMIT} characters.",
            )
        # Properties the search index does not hold for this type: filters see them unset.
        hidden = _UNINDEXED.get(object_type, frozenset()) & _named_in(body)
        indexed = time.monotonic()
        hits = [
            r
            for r in self.objects[object_type].values()
            if r.indexed_at <= indexed
            and matches(_without(r.properties, hidden) if hidden else r.properties)
            and (not query or any(query in v.lower() for v in r.properties.values()))
        ]
        sorts = body.get("sorts") or []
        hits.sort(key=lambda r: int(r.id))
        for spec in reversed(sorts if isinstance(sorts, list) else []):
            if isinstance(spec, str):
                name, descending = spec.lstrip("-"), spec.startswith("-")
            elif isinstance(spec, dict):
                name = str(spec.get("propertyName", ""))
                descending = spec.get("direction") == "DESCENDING"
            else:
                continue
            if name not in types:
                raise HubSpotApiError(
                    400, "VALIDATION_ERROR", f"Unable to sort by unknown property {name}."
                )
            kind = types[name]
            present = [r for r in hits if r.properties.get(name) and name not in hidden]
            absent = [r for r in hits if not r.properties.get(name) or name in hidden]
            present.sort(key=_sorter(name, kind), reverse=descending)
            hits = present + absent
        wanted = body.get("properties") or None
        page = hits[after : after + limit]
        answer: dict[str, Any] = {
            "total": len(hits),
            "results": [self.render(object_type, r, wanted) for r in page],
        }
        if after + limit < len(hits):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer

    # --------------------------------------------------------------- properties
    def create_property(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/properties/{type}: a custom property, e.g. the touch key on notes."""
        self._check_type(object_type)
        name = body.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Invalid property name {name!r}: use lowercase letters, digits and underscores.",
            )
        if name in self.properties[object_type]:
            raise HubSpotApiError(
                409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists."
            )
        for required in ("label", "type", "fieldType", "groupName"):
            if not body.get(required):
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Property {required} is required.")
        kind = body["type"]
        if kind not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid property type {kind!r}.")
        unique = bool(body.get("hasUniqueValue"))
        if unique and object_type in ENGAGEMENT_TYPES:
            # HubSpot offers unique values for contacts, companies, deals, tickets and custom
            # objects only (developers.hubspot.com/changelog/unique-properties-for-contacts).
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Unique value properties are not supported for {object_type}: only contacts, "
                "companies, deals, tickets and custom objects can have them.",
            )
        if unique and kind not in ("string", "number"):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "Only string and number properties can have unique values."
            )
        stamp = iso_ms(self.clock.now())
        options = body.get("options") or []
        if kind == "bool" and not options:
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        definition = {
            "name": name,
            "label": body["label"],
            "type": "enumeration" if kind == "bool" else kind,
            "fieldType": body["fieldType"],
            "description": body.get("description", ""),
            "groupName": body["groupName"],
            "options": options,
            "displayOrder": body.get("displayOrder", -1),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": unique,
            "hidden": bool(body.get("hidden", False)),
            "formField": bool(body.get("formField", False)),
            "hubspotDefined": False,
            "archived": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self.properties[object_type][name] = definition
        self._reindex_unique(object_type)
        return definition

    def get_property(self, object_type: str, name: str) -> dict[str, Any]:
        """GET /crm/v3/properties/{type}/{name}."""
        self._check_type(object_type)
        definition = self.properties[object_type].get(name)
        if definition is None:
            raise HubSpotApiError(
                404,
                "OBJECT_NOT_FOUND",
                f"Unable to find property {name} for {singular(object_type)}.",
            )
        return definition

    # ------------------------------------------------------------------- owners
    def owners_page(self, limit: int, after: str | None, email: str | None) -> dict[str, Any]:
        """GET /crm/v3/owners/: id-ordered pages (max 500)."""
        limit = max(1, min(limit, 500))
        owners = sorted(self.owners.values(), key=lambda o: int(o["id"]))
        if email:
            owners = [o for o in owners if o["email"].lower() == email.lower()]
        start = int(after) if after and after.isdigit() else 0
        page = owners[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    def get_owner(self, owner_id: str) -> dict[str, Any]:
        """GET /crm/v3/owners/{ownerId}: 404 for an id the portal does not have."""
        owner = self.owners.get(owner_id)
        if owner is None or owner.get("archived"):
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"Owner {owner_id} does not exist.")
        return owner

    def add_owner(self, name: str, email: str) -> str:
        """Create an owner (a HubSpot user) and return its id."""
        owner_id = str(len(self.owners) + 70_000_001)
        first, _, last = name.partition(" ")
        stamp = iso_ms(self.clock.now())
        self.owners[owner_id] = {
            "id": owner_id,
            "email": email,
            "firstName": first,
            "lastName": last,
            "userId": int(owner_id) - 60_000_000,
            "userIdIncludingInactive": int(owner_id) - 60_000_000,
            "type": "PERSON",
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "teams": [],
        }
        return owner_id

    # -------------------------------------------------------------------- lists
    def create_list(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/lists: a MANUAL (static) or SNAPSHOT list; names are unique."""
        name = body.get("name")
        object_type_id = body.get("objectTypeId")
        processing = body.get("processingType")
        if not name or not object_type_id or not processing:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "name, objectTypeId and processingType are required."
            )
        if processing not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Invalid processingType {processing!r}."
            )
        if object_type_id not in OBJECT_TYPE_IDS.values():
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Invalid objectTypeId {object_type_id!r}."
            )
        if any(existing["name"] == name for existing in self.lists.values()):
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"A list named '{name}' already exists.")
        list_id = str(len(self.lists) + 1)
        stamp = iso_ms(self.clock.now())
        record = {
            "listId": list_id,
            "name": name,
            "objectTypeId": object_type_id,
            "processingType": processing,
            "processingStatus": "COMPLETE",
            "listVersion": 1,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self.lists[list_id] = record
        self.memberships[list_id] = {}
        return {"list": record}

    def _list(self, list_id: str) -> dict[str, Any]:
        found = self.lists.get(list_id)
        if found is None:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
        return found

    def change_membership(self, list_id: str, record_ids: Any, *, add: bool) -> dict[str, Any]:
        """PUT /crm/v3/lists/{id}/memberships/add|remove (MANUAL and SNAPSHOT lists only)."""
        found = self._list(list_id)
        if found["processingType"] == "DYNAMIC":
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                "Records cannot be added to or removed from a DYNAMIC list.",
            )
        if not isinstance(record_ids, list):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "The body must be a list of record ids.")
        object_type = next(t for t, i in OBJECT_TYPE_IDS.items() if i == found["objectTypeId"])
        members = self.memberships[list_id]
        changed, missing = [], []
        stamp = to_ms(self.clock.now())
        for raw in record_ids:
            key = str(raw)
            if add:
                if key not in self.objects[object_type]:
                    missing.append(key)
                elif key not in members:
                    members[key] = stamp
                    changed.append(key)
            elif members.pop(key, None) is not None:
                changed.append(key)
            else:
                missing.append(key)
        return {
            "recordsIdsAdded": changed if add else [],
            "recordIdsRemoved": [] if add else changed,
            "recordIdsMissing": missing,
        }

    def list_memberships(self, list_id: str, limit: int, after: str | None) -> dict[str, Any]:
        """GET /crm/v3/lists/{id}/memberships: record ids in id order, paged."""
        self._list(list_id)
        limit = max(1, min(limit, 250))
        members = sorted(self.memberships[list_id].items(), key=lambda kv: int(kv[0]))
        start = int(after) if after and after.isdigit() else 0
        page = members[start : start + limit]
        body: dict[str, Any] = {
            "results": [
                {
                    "recordId": key,
                    "membershipTimestamp": iso_ms(datetime.fromtimestamp(ms / 1000, UTC)),
                }
                for key, ms in page
            ],
            "total": len(members),
        }
        if start + limit < len(members):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    # ------------------------------------------------------- associations v4
    def associations_read(
        self, from_type: str, to_type: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST /crm/v4/associations/{from}/{to}/batch/read (max 1,000 inputs).

        Each row holds at most ``association_page`` associations, in id order; a row with more
        carries ``paging.next.after``, which the next request gives as that input's ``after``.
        """
        self._check_type(from_type)
        self._check_type(to_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"), ASSOCIATION_READ_LIMIT)
        results, errors = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            linked = self.association_types(from_type, key, to_type)
            if not linked:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"No {singular(to_type)} is associated with "
                        f"{singular(from_type)} {key}.",
                        "context": {"fromObjectId": [key]},
                        "links": {},
                        "errors": [],
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    }
                )
                continue
            start = self._association_after(to_type, item.get("after"))
            ordered = sorted((int(k), v) for k, v in linked.items() if int(k) > start)
            page = ordered[: self.association_page]
            row: dict[str, Any] = {
                "from": {"id": key},
                "to": [
                    {
                        "toObjectId": to_id,
                        "associationTypes": [
                            {
                                "category": "HUBSPOT_DEFINED",
                                "typeId": t,
                                "label": "Primary" if t in (1, 2, 5, 6) else None,
                            }
                            for t in sorted(types)
                        ],
                    }
                    for to_id, types in page
                ],
            }
            if len(ordered) > len(page):
                # HubSpot's cursor: base64 of "<toObjectTypeId>-<last toObjectId>", URL-quoted.
                last = f"{OBJECT_TYPE_IDS[to_type]}-{page[-1][0]}"
                after = quote(base64.b64encode(last.encode()).decode(), safe="")
                row["paging"] = {"next": {"after": after}}
            results.append(row)
        return self._batch_answer(results, errors, started, 200)

    @staticmethod
    def _association_after(to_type: str, after: Any) -> int:
        """The last ``toObjectId`` a row's ``after`` cursor stands for (0 without one)."""
        if after in (None, ""):
            return 0
        try:
            text = base64.b64decode(unquote(str(after)), validate=True).decode()
            type_id, _, last = text.rpartition("-")
            if type_id == OBJECT_TYPE_IDS[to_type] and last.isdigit():
                return int(last)
        except ValueError:
            pass
        raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid paging cursor 'after': {after}")

    def associations_create(
        self, from_type: str, to_type: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST /crm/v4/associations/{from}/{to}/batch/create (labelled associations)."""
        self._check_type(from_type)
        self._check_type(to_type)
        started = self.clock.now()
        inputs = self._check_batch(body.get("inputs"), ASSOCIATION_CREATE_LIMIT)
        results, errors = [], []
        allowed = ASSOCIATION_TYPES.get((from_type, to_type))
        for item in inputs:
            from_id = str((item.get("from") or {}).get("id", ""))
            to_id = str((item.get("to") or {}).get("id", ""))
            if from_id not in self.objects[from_type] or to_id not in self.objects[to_type]:
                errors.append(
                    _batch_error(
                        "VALIDATION_ERROR",
                        f"{singular(from_type)} {from_id} or {singular(to_type)} {to_id} "
                        "does not exist.",
                        [from_id, to_id],
                    )
                )
                continue
            type_ids = []
            for spec in item.get("types") or []:
                type_id = spec.get("associationTypeId")
                if allowed is None or type_id not in (allowed[0], allowed[1]):
                    raise HubSpotApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"{type_id} is not a valid association type between "
                        f"{singular(from_type)} and {singular(to_type)}.",
                    )
                type_ids.append(type_id)
            for type_id in type_ids:
                self.associate(from_type, from_id, to_type, to_id, type_id)
            results.append(
                {
                    "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
                    "fromObjectId": int(from_id),
                    "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
                    "toObjectId": int(to_id),
                    "labels": [],
                }
            )
        return self._batch_answer(results, errors, started, 201)

    # ------------------------------------------------------------------- events
    def timeline_event(self, body: dict[str, Any]) -> dict[str, Any]:
        """One timeline event (template id, tokens, and an email or objectId); ids are unique."""
        template = body.get("eventTemplateId")
        tokens = body.get("tokens")
        if not template or not isinstance(tokens, dict):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "eventTemplateId and tokens are required."
            )
        if self.event_templates is not None and str(template) not in self.event_templates:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Event template {template} does not exist for this app."
            )
        object_id = body.get("objectId")
        email = body.get("email")
        if object_id is None and email:
            record = self._resolve_id("contacts", str(email), "email")
            object_id = record.id if record else None
        if object_id is None or str(object_id) not in self.objects["contacts"]:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                "The event must name an existing contact by email or objectId.",
            )
        event_id = str(body.get("id") or uuid.uuid4())
        if event_id in self.timeline_events:
            raise HubSpotApiError(409, "CONFLICT", f"An event with id {event_id} already exists.")
        stamp = body.get("timestamp") or iso_ms(self.clock.now())
        event = {
            "id": event_id,
            "eventTemplateId": str(template),
            "objectId": str(object_id),
            "email": email,
            "tokens": tokens,
            "extraData": body.get("extraData"),
            "timestamp": stamp,
            "createdAt": iso_ms(self.clock.now()),
            "objectType": "contacts",
        }
        self.timeline_events[event_id] = event
        return event

    def behavioral_event(self, body: dict[str, Any]) -> None:
        """POST /events/v3/send: a custom behavioral event for a contact."""
        self._check_behavioral(body)
        self.behavioral_events.append(dict(body))

    def behavioral_event_batch(self, body: dict[str, Any]) -> None:
        """POST /events/v3/send/batch: all occurrences recorded, or none if one is invalid.

        The endpoint answers 204 with no body, so it has no per-input results to report a
        partial success with: an invalid input refuses the whole batch with its message.
        """
        inputs = self._check_batch(body.get("inputs"), BEHAVIORAL_BATCH_LIMIT)
        for item in inputs:
            self._check_behavioral(item)
        self.behavioral_events.extend(dict(item) for item in inputs)

    @staticmethod
    def _check_behavioral(body: dict[str, Any]) -> None:
        if not body.get("eventName"):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "eventName is required.")
        if not (body.get("email") or body.get("objectId") or body.get("utk")):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "One of email, objectId or utk is required."
            )
        problem = _occurrence_problem(body)
        if problem is not None:
            raise HubSpotApiError(400, "VALIDATION_ERROR", problem)

    def email_events_page(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /email/public/v1/events: newest first, ``offset``/``hasMore`` paging, filters."""
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        start_ms = int(params.get("startTimestamp") or 0)
        end_ms = int(params.get("endTimestamp") or 2**62)
        kind = params.get("eventType")
        recipient = (params.get("recipient") or "").lower()
        campaign = params.get("campaignId")
        selected = [
            e
            for e in self.email_events
            if start_ms <= self._moment(e, "created") <= end_ms
            and (not kind or e.get("type") == kind)
            and (not recipient or str(e.get("recipient") or "").lower() == recipient)
            and (not campaign or str(e.get("emailCampaignId")) == campaign)
        ]
        offset = params.get("offset")
        start = int(offset, 16) if offset else 0
        page = selected[start : start + limit]
        more = start + limit < len(selected)
        return {"events": page, "hasMore": more, "offset": format(start + len(page), "x")}

    def forms_page(self, limit: int, after: str | None) -> dict[str, Any]:
        """GET /marketing/v3/forms/."""
        forms = list(self.forms.values())
        start = int(after) if after and after.isdigit() else 0
        page = forms[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(forms):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    def submissions_page(self, form_id: str, limit: int, after: str | None) -> dict[str, Any]:
        """GET /form-integrations/v1/submissions/forms/{guid}: newest first, max 50 a page."""
        if form_id not in self.forms:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"Form {form_id} does not exist.")
        limit = max(1, min(limit, 50))
        rows = self.submissions[form_id]
        start = int(after, 16) if after else 0
        page = rows[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": format(start + limit, "x")}}
        return body
