"""Which values a CRM field accepts, by its type: shared by validation and rendering.

``validate`` checks the values it knows statically (constants, mapped values, defaults, a
transform chain run on a sample timestamp) and ``compile`` checks computed values per touch,
so a value the CRM would refuse becomes a located error or a ``MappingError`` (a dead letter of
stage ``map`` naming the field) instead of a refused push. Text needs no check: ``compile`` cuts
it to the field's length.

The vendors' rules:

- Salesforce (describe ``type``): ``date`` takes ``YYYY-MM-DD``, ``datetime`` ISO 8601
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_valid_date_formats.htm);
  ``int`` a whole number, ``double`` / ``currency`` / ``percent`` a number, ``boolean`` true or
  false; a restricted picklist only its active values, several joined by ";" for a
  ``multipicklist`` (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/field_types.htm).
- HubSpot (property ``type``): ``date`` takes ``YYYY-MM-DD`` or epoch milliseconds at midnight
  UTC, ``datetime`` ISO 8601 or epoch milliseconds
  (https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis);
  ``number`` a number; ``bool`` (and a ``booleancheckbox`` enumeration) true or false; an
  enumeration only its option values, several joined by ";" for ``fieldType: checkbox``
  (https://developers.hubspot.com/docs/faq/how-do-i-set-multiple-values-for-checkbox-properties).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sync.mapping.catalogue import FieldInfo

__all__ = ["checker", "kind_of", "picklist_problem", "type_problem"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY_MS = 86_400_000
_SF_KINDS = {
    "date": "date", "datetime": "datetime", "int": "integer", "double": "number",
    "currency": "number", "percent": "number", "boolean": "boolean",
}  # fmt: skip
_HS_KINDS = {"date": "date", "datetime": "datetime", "number": "number", "bool": "boolean"}
_MULTI = frozenset({"multipicklist"})
_HINTS = {
    "date": "write YYYY-MM-DD; from a timestamp use `transforms: [{datetime: date}]`",
    "datetime": "write an ISO 8601 time such as 2024-05-06T13:00:00Z; from a timestamp use "
    "`transforms: [{datetime: iso}]`",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}


def kind_of(crm: str, info: FieldInfo) -> str:
    """date, datetime, integer, number, boolean or text: what values ``info`` takes."""
    if crm == "hubspot":
        if info.type == "enumeration" and info.field_type == "booleancheckbox":
            return "boolean"
        return _HS_KINDS.get(info.type, "text")
    return _SF_KINDS.get(info.type, "text")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | Decimal):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str) and value.strip():
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _is_whole(value: Any) -> bool:
    return _is_number(value) and (isinstance(value, int) or float(value).is_integer())


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _is_date(crm: str, value: Any) -> bool:
    if isinstance(value, date) and not isinstance(value, datetime):
        return True
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    millis = _epoch_ms(value) if crm == "hubspot" else None
    return millis is not None and millis % _DAY_MS == 0


def _is_datetime(crm: str, value: Any) -> bool:
    if isinstance(value, datetime):
        return True
    if crm == "hubspot" and _epoch_ms(value) is not None:
        return True
    if isinstance(value, str) and len(value) > 10:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return False


def type_problem(crm: str, info: FieldInfo, value: Any) -> str | None:
    """Why ``value`` cannot go into ``info`` ("is not a date (write ...)"), or None if it can."""
    kind = kind_of(crm, info)
    if value is None or kind == "text":
        return None
    fits = {
        "date": lambda: _is_date(crm, value),
        "datetime": lambda: _is_datetime(crm, value),
        "integer": lambda: _is_whole(value),
        "number": lambda: _is_number(value),
        "boolean": lambda: (
            isinstance(value, bool)
            or (isinstance(value, str) and value.lower() in ("true", "false"))
        ),
    }[kind]()
    if fits:
        return None
    article = "an" if kind == "integer" else "a"
    noun = {"integer": "whole number", "datetime": "date and time"}.get(kind, kind)
    if kind == "date" and crm == "hubspot" and _epoch_ms(value) is not None:
        return "is not midnight UTC: a HubSpot date property takes whole days"
    return f"is not {article} {noun}: {info.name} is a {info.type} field ({_HINTS[kind]})"


def picklist_problem(crm: str, info: FieldInfo, value: Any) -> str | None:
    """Why ``value`` is not a value of the picklist ``info``, or None (always None for an empty
    or unrestricted picklist: Salesforce takes other values there)."""
    if not info.restricted or not info.picklist or value is None or isinstance(value, bool):
        return None
    multi = info.type in _MULTI or (crm == "hubspot" and info.field_type == "checkbox")
    text = str(value)
    parts = text.split(";") if multi else [text]
    missing = [p for p in parts if p not in info.picklist]
    if not missing:
        return None
    return f"{missing[0]!r} is not a value of {info.name}"


def checker(crm: str, info: FieldInfo | None) -> Callable[[Any], str | None] | None:
    """A per-value check for rendering (None when any value fits: text, unrestricted picklists)."""
    if info is None:
        return None
    typed = kind_of(crm, info) != "text"
    listed = info.restricted and bool(info.picklist)
    if not typed and not listed:
        return None

    def check(value: Any) -> str | None:
        if typed:
            problem = type_problem(crm, info, value)
            if problem is not None:
                return f"{value!r} {problem}"
        if listed:
            return picklist_problem(crm, info, value)
        return None

    return check
