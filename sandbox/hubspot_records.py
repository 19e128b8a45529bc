"""The records of an emulated HubSpot portal and what every API family does with them.

``PortalBase`` holds one portal's state (records by object type, property definitions, unique
value indexes, associations, owners, lists, events) and the shared work on it: property values
checked as HubSpot checks them (``HubSpotApiError`` with the vendor's status, category and
message), records stored, stamped and indexed, rendered as HubSpot's SimplePublicObject, batch
inputs checked and answered, and records linked (associations with their inverse). The API
families build on it (``hubspot_objects``, ``hubspot_properties``, ``hubspot_lists``,
``hubspot_associations``, ``hubspot_events``); ``hubspot_store.PortalData`` is all of them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sandbox.hubspot_clock import StoreClock, format_iso_ms, iso_ms
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
from sandbox.hubspot_search import parse_datetime_ms
from sandbox.hubspot_subscriptions import Subscriptions

__all__ = [
    "ASSOCIATION_CREATE_LIMIT",
    "ASSOCIATION_PAGE_LIMIT",
    "ASSOCIATION_READ_LIMIT",
    "BATCH_LIMIT",
    "BEHAVIORAL_BATCH_LIMIT",
    "HISTORY_BATCH_LIMIT",
    "LIST_PAGE_LIMIT",
    "MAX_STRING_LENGTH",
    "MODIFIED",
    "PORTAL_ID",
    "SEARCH_PAGE_LIMIT",
    "SEARCH_QUERY_LIMIT",
    "SEARCH_RESULT_CAP",
    "TIMELINE_BATCH_LIMIT",
    "History",
    "HubSpotApiError",
    "PortalBase",
    "Record",
    "batch_error",
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


class Record:
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


def batch_error(category: str, message: str, ids: Iterable[str]) -> dict[str, Any]:
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


# The modification time ``render`` adds to the properties asked for, as it adds the creation time.
MODIFIED = "hs_lastmodifieddate"
_MODIFIED = {"contacts": "lastmodifieddate"}


class PortalBase:
    """One portal's state and the work every API family shares (callers hold ``lock``)."""

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
        self.objects: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPES}
        self.archived: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPES}
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
    ) -> Record:
        moment = moment or self.clock.now()
        record_id = self.mint_id()
        properties = {k: v for k, v in clean.items() if v != ""}
        record = Record(record_id, properties, moment)
        record.indexed_at = time.monotonic() + self.search_index_lag_s
        self._stamp(object_type, record, created=True)
        self.objects[object_type][record_id] = record
        self._index(object_type, record)
        return record

    def _stamp(self, object_type: str, record: Record, *, created: bool = False) -> None:
        props = record.properties
        props["hs_object_id"] = record.id
        created_name = "hs_createdate" if object_type in ENGAGEMENT_TYPES else "createdate"
        if created or created_name not in props:
            props[created_name] = iso_ms(record.created)
        props["hs_lastmodifieddate"] = iso_ms(record.updated)
        if object_type == "contacts":
            props["lastmodifieddate"] = iso_ms(record.updated)

    def _index(self, object_type: str, record: Record) -> None:
        for name, index in self._unique[object_type].items():
            value = record.properties.get(name)
            if value:
                index[self._unique_form(name, value)] = record.id

    def _unindex(self, object_type: str, record: Record) -> None:
        for name, index in self._unique[object_type].items():
            value = record.properties.get(name)
            if value and index.get(self._unique_form(name, value)) == record.id:
                del index[self._unique_form(name, value)]

    def _apply(self, object_type: str, record: Record, clean: dict[str, str]) -> None:
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
        record: Record,
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

    def _render_written(self, object_type: str, record: Record) -> dict[str, Any]:
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

    def _resolve_id(self, object_type: str, value: str, id_property: str | None) -> Record | None:
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
