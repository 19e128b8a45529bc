"""A HubSpot portal's own property definitions, read with the properties API, as neutral rows.

``describe_fields(client, objects)`` reads ``GET /crm/v3/properties/{objectType}`` once per
object type (https://developers.hubspot.com/docs/api/crm/properties). Objects are named as
closedloop mappings name them (``note``, ``task``, ``contact``, ``deal``); an object type the
portal does not know answers 404: its entry is None.

``property_row`` keeps what mapping validation needs from each property definition:

- ``type`` (string, number, date, datetime, enumeration, bool) and ``fieldType``: an
  enumeration with ``fieldType: checkbox`` holds several option values separated by ";"
  (https://developers.hubspot.com/docs/faq/how-do-i-set-multiple-values-for-checkbox-properties);
- ``picklist``: every option's ``value`` (hidden options only vanish from HubSpot's UI; the value
  is what the API takes); ``restricted``: HubSpot refuses a value outside the options
  (INVALID_OPTION), so every enumeration with options is restricted;
- read-only: ``modificationMetadata.readOnlyValue`` (the value cannot be set) or ``calculated``;
- ``length``: 65,536 characters for text, HubSpot's limit on values set through the CRM
  (https://knowledge.hubspot.com/properties/property-field-types-in-hubspot);
- ``required`` on create: ``hs_timestamp`` on engagements, which HubSpot requires to create a
  note, task, call, e-mail or meeting (https://developers.hubspot.com/docs/api/crm/notes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from connectors.hubspot.client import CallError
from connectors.hubspot.engagements import ENGAGEMENT_TYPES

if TYPE_CHECKING:
    from connectors.hubspot.client import HubSpotClient

__all__ = ["OBJECT_TYPES", "TEXT_LIMIT", "describe_fields", "property_row"]

# Mapping object names -> HubSpot object types.
OBJECT_TYPES: dict[str, str] = {
    **ENGAGEMENT_TYPES,
    "contact": "contacts",
    "company": "companies",
    "deal": "deals",
}
TEXT_LIMIT = 65_536  # characters of a text value set through the CRM (see the docstring)
_REQUIRED_ON_CREATE: dict[str, tuple[str, ...]] = dict.fromkeys(
    ENGAGEMENT_TYPES.values(), ("hs_timestamp",)
)


def property_row(prop: Mapping[str, Any], object_type: str) -> dict[str, Any]:
    """One property definition as a vendor-neutral row (``sync.mapping.catalogue.FieldInfo``)."""
    name = str(prop["name"])
    kind = str(prop.get("type") or "string")
    meta = prop.get("modificationMetadata") or {}
    read_only = bool(meta.get("readOnlyValue")) or bool(prop.get("calculated"))
    options = [
        str(o.get("value"))
        for o in prop.get("options") or []
        if isinstance(o, Mapping) and o.get("value") is not None
    ]
    return {
        "name": name,
        "label": prop.get("label"),
        "type": kind,
        "length": TEXT_LIMIT if kind == "string" else None,
        "picklist": options,
        "restricted": kind == "enumeration" and bool(options),
        "createable": not read_only,
        "updateable": not read_only,
        "required": name in _REQUIRED_ON_CREATE.get(object_type, ()),
        "custom": not prop.get("hubspotDefined", False),
        "field_type": prop.get("fieldType"),
    }


def describe_fields(
    client: HubSpotClient, objects: Iterable[str]
) -> dict[str, list[dict[str, Any]] | None]:
    """Object -> its property rows (None when the portal has no such object type)."""
    api = client.api("properties")
    out: dict[str, list[dict[str, Any]] | None] = {}
    for name in dict.fromkeys(objects):
        object_type = OBJECT_TYPES.get(name)
        if object_type is None:
            out[name] = None
            continue
        try:
            answer = client.call(
                f"{object_type} properties list", api.get_all, object_type,
                idempotent=True, raw_failures=True,
            )  # fmt: skip
        except CallError as exc:
            if exc.failure.status == 404:
                out[name] = None
                continue
            raise exc.error from None
        results = answer.get("results") or []
        out[name] = [property_row(p, object_type) for p in results if isinstance(p, Mapping)]
    return out
