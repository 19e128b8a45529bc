"""HubSpot CRM search semantics as pure functions: filter groups, operators, sorts, value types.

``filterGroups`` are ORed, the filters inside a group ANDed. Values compare by the property's
type: numbers as numbers, datetimes as epoch milliseconds (filters may send either ms or
ISO-8601), everything else as case-insensitive text, as HubSpot does. A request holds at most
``MAX_FILTER_GROUPS`` groups of ``MAX_FILTERS_PER_GROUP`` filters, ``MAX_FILTERS_TOTAL`` in all.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

__all__ = [
    "MAX_FILTERS_PER_GROUP",
    "MAX_FILTERS_TOTAL",
    "MAX_FILTER_GROUPS",
    "OPERATORS",
    "SearchInputError",
    "compile_filter_groups",
    "parse_datetime_ms",
    "sort_key",
]

OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
# Since 26 Aug 2024: 5 filter groups, 10 filters per group, 25 filters in all. Source:
# https://developers.hubspot.com/changelog/breaking-change-expanded-filtering-capabilities-and-error-messaging-in-hubspots-search-api
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS_TOTAL = 25

_TOKEN_SPLIT = re.compile(r"[^0-9a-z@._*-]+")

Predicate = Callable[[Mapping[str, str]], bool]


class SearchInputError(ValueError):
    """The search request is malformed; the message is the one HubSpot's 400 carries."""


@lru_cache(maxsize=8192)
def parse_datetime_ms(value: str) -> int | None:
    """Epoch ms from ``value`` given as ms digits, an ISO datetime or an ISO date; else None."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _coerce(kind: str, value: str) -> Any:
    """The comparable form of a stored or filter value for a property of type ``kind``."""
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return None
    if kind in ("datetime", "date"):
        return parse_datetime_ms(value)
    return value.lower()


def sort_key(kind: str, value: str | None) -> tuple[int, Any]:
    """A key that sorts values of a ``kind`` property naturally, missing values last."""
    if value is None or value == "":
        return (1, 0)
    coerced = _coerce(kind, value)
    if coerced is None:
        return (1, 0)
    return (0, coerced)


def _compile_filter(spec: Mapping[str, Any], types: Mapping[str, str]) -> Predicate:
    name = spec.get("propertyName")
    operator = spec.get("operator")
    if not isinstance(name, str) or name not in types:
        raise SearchInputError(f"Unable to find property {name!r} to filter on.")
    if operator not in OPERATORS:
        raise SearchInputError(f"Invalid operator {operator!r} for property {name}.")
    kind = types[name]
    if operator == "HAS_PROPERTY":
        return lambda props: bool(props.get(name))
    if operator == "NOT_HAS_PROPERTY":
        return lambda props: not props.get(name)
    if operator in ("IN", "NOT_IN"):
        raw_values = spec.get("values")
        if not isinstance(raw_values, list) or not raw_values:
            raise SearchInputError(f"{operator} on {name} needs a non-empty 'values' list.")
        wanted = {_coerce(kind, str(v)) for v in raw_values}
        if operator == "IN":
            return lambda props: (v := props.get(name)) is not None and _coerce(kind, v) in wanted
        return lambda props: (v := props.get(name)) is None or _coerce(kind, v) not in wanted
    raw = spec.get("value")
    if raw is None:
        raise SearchInputError(f"{operator} on {name} needs a 'value'.")
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(raw).lower()
        contains = operator == "CONTAINS_TOKEN"

        def has_token(props: Mapping[str, str]) -> bool:
            value = props.get(name)
            if not value:
                return not contains
            text = value.lower()
            words = [w for w in _TOKEN_SPLIT.split(text) if w]
            hit = any(fnmatch.fnmatchcase(w, token) for w in [text, *words])
            return hit if contains else not hit

        return has_token
    target = _coerce(kind, str(raw))
    if target is None:
        raise SearchInputError(f"Invalid value {raw!r} for {kind} property {name}.")
    if operator == "BETWEEN":
        high = _coerce(kind, str(spec.get("highValue", "")))
        if high is None:
            raise SearchInputError(f"BETWEEN on {name} needs a valid 'highValue'.")
        return lambda props: (
            (v := _stored(kind, props.get(name))) is not None and target <= v <= high
        )
    if operator == "EQ":
        return lambda props: _stored(kind, props.get(name)) == target
    if operator == "NEQ":
        return lambda props: _stored(kind, props.get(name)) != target
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
    }
    check = compare[operator]
    return lambda props: (v := _stored(kind, props.get(name))) is not None and check(v, target)


def _stored(kind: str, value: str | None) -> Any:
    if value is None or value == "":
        return None
    return _coerce(kind, value)


def compile_filter_groups(groups: Any, types: Mapping[str, str]) -> Predicate:
    """One predicate for ``filterGroups`` (OR of ANDs); ``types`` maps property -> HubSpot type."""
    if groups in (None, []):
        return lambda _props: True
    if not isinstance(groups, list):
        raise SearchInputError("filterGroups must be a list.")
    if len(groups) > MAX_FILTER_GROUPS:
        raise SearchInputError(
            f"Too many filter groups ({len(groups)}). The maximum is {MAX_FILTER_GROUPS}."
        )
    compiled: list[list[Predicate]] = []
    total = 0
    for group in groups:
        filters = group.get("filters", []) if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise SearchInputError("Each filter group needs a 'filters' list.")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchInputError(
                f"Too many filters in a group ({len(filters)}). "
                f"The maximum is {MAX_FILTERS_PER_GROUP}."
            )
        total += len(filters)
        compiled.append([_compile_filter(f, types) for f in filters])
    if total > MAX_FILTERS_TOTAL:
        raise SearchInputError(f"Too many filters ({total}). The maximum is {MAX_FILTERS_TOTAL}.")
    return lambda props: any(all(check(props) for check in group) for group in compiled)
