"""Field paths and conditions: ``person.lead_source equals Web``, ``score_at_least: 50``, ...

Used by touch filters (inclusion rules) and the MQL definition. A path is ``touch.<field>`` or
``person.<field>``, optionally followed by keys inside the free-form mappings
(``touch.attributes.url``, ``person.fields.Industry``). Conditions compile to plain predicates;
string comparisons ignore case, because admins type "web" for a CRM's "Web".
"""

# ruff: noqa: ARG001, ARG005 - getters and predicates share one (touch, person) signature, used or not

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from connectors.base import Person, Touch
from connectors.errors import did_you_mean
from sync.mapping.model import Condition, MqlCondition, TouchedCondition
from sync.mapping.templates import EMPTY_TOUCH, KNOWN_FIELDS, OPEN_FIELDS

__all__ = [
    "Getter",
    "Predicate",
    "check_path",
    "compile_condition",
    "compile_glob",
    "compile_mql_condition",
    "compile_path",
    "is_blank",
]

Getter = Callable[[Touch, Person], Any]
Predicate = Callable[[Touch, Person], bool]


def is_blank(value: Any) -> bool:
    """None, an empty string or only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def check_path(path: str, roots: Sequence[str] = ("touch", "person")) -> str | None:
    """Why ``path`` is not a valid field path (with a "did you mean"), or None when it is."""
    parts = path.split(".")
    root = parts[0]
    if root not in roots or root not in KNOWN_FIELDS:
        choices = [f"{r}.{f}" for r in roots for f in KNOWN_FIELDS.get(r, ())]
        return (
            f"a path starts with {' or '.join(r + '.' for r in roots)}{did_you_mean(path, choices)}"
        )
    if len(parts) < 2 or not parts[1]:
        return f"name a field of {root}, e.g. {root}.{KNOWN_FIELDS[root][1]}"
    known = KNOWN_FIELDS[root]
    if parts[1] not in known:
        return f"{root} has no field {parts[1]!r}{did_you_mean(parts[1], known)}"
    if len(parts) > 2 and parts[1] not in OPEN_FIELDS[root]:
        return f"{root}.{parts[1]} has no sub-fields"
    if any(not p for p in parts):
        return "empty part in path"
    return None


def compile_path(path: str) -> Getter:
    """A getter for a (valid) path; a missing key inside a mapping gives None."""
    root, first, *rest = path.split(".")
    keys = tuple(rest)
    if root == "touch":
        if not keys:
            return lambda touch, person: getattr(touch, first)
        if len(keys) == 1:
            key = keys[0]
            return lambda touch, person: getattr(touch, first).get(key)
    else:
        if not keys:
            return lambda touch, person: getattr(person, first)
        if len(keys) == 1:
            key = keys[0]
            return lambda touch, person: getattr(person, first).get(key)

    def deep(touch: Touch, person: Person) -> Any:
        value: Any = getattr(touch if root == "touch" else person, first)
        for key in keys:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value

    return deep


def compile_glob(patterns: Iterable[str]) -> Callable[[str | None], bool]:
    """A case-insensitive matcher for any of the glob patterns (``*``, ``?``)."""
    joined = "|".join(fnmatch.translate(p) for p in patterns)
    if not joined:
        return lambda value: False
    regex = re.compile(joined, re.IGNORECASE)
    return lambda value: value is not None and regex.match(value) is not None


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _lists_of(touch: Touch, person: Person) -> set[str]:
    names: set[str] = set()
    for holder in (person.fields, touch.attributes):
        lists = holder.get("lists")
        if isinstance(lists, str):
            names.add(lists.casefold())
        elif isinstance(lists, Iterable):
            names.update(str(x).casefold() for x in lists)
    return names


def _field_predicate(cond: Condition) -> Predicate:
    assert cond.field is not None
    get = compile_path(cond.field)
    op, expected = cond.op, cond.value
    if op in ("exists", "missing"):
        want = op == "exists"
        return lambda t, p: (not is_blank(get(t, p))) is want
    if op in ("in", "not_in"):
        allowed = {_fold(v) for v in expected}
        inside = op == "in"
        return lambda t, p: (_fold(get(t, p)) in allowed) is inside
    if op in ("equals", "not_equals"):
        target = _fold(expected)
        equal = op == "equals"
        return lambda t, p: (_fold(get(t, p)) == target) is equal
    if op == "contains":
        needle = _fold(expected)

        def contains(t: Touch, p: Person) -> bool:
            value = get(t, p)
            if isinstance(value, str):
                return isinstance(needle, str) and needle in value.casefold()
            if isinstance(value, Iterable):
                return needle in {_fold(v) for v in value}
            return False

        return contains
    if op == "matches":
        match = compile_glob([str(expected)])
        return lambda t, p: match(None if get(t, p) is None else str(get(t, p)))
    limit = _number(expected)
    compare: dict[str, Callable[[float, float], bool]] = {
        "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
    }  # fmt: skip
    fn = compare[str(op)]

    def numeric(t: Touch, p: Person) -> bool:
        value = _number(get(t, p))
        return value is not None and limit is not None and fn(value, limit)

    return numeric


def compile_condition(cond: Condition) -> Predicate:
    """A predicate over (touch, person) for a filter condition (not a ``touched`` one)."""
    if cond.score_at_least is not None:
        threshold = cond.score_at_least
        return lambda t, p: p.score is not None and p.score >= threshold
    if cond.in_list is not None:
        name = cond.in_list.casefold()
        return lambda t, p: name in _lists_of(t, p)
    return _field_predicate(cond)


TouchesPredicate = Callable[[Person, Sequence[Touch], datetime], bool]


def compile_mql_condition(cond: MqlCondition) -> TouchesPredicate:
    """A predicate over (person, their touches, now) for one MQL condition."""
    if cond.touched is not None:
        return _touched(cond.touched)
    single = compile_condition(cond)
    if cond.field is not None and cond.field.startswith("touch."):
        # A touch-field condition holds when any of the person's touches satisfies it.
        return lambda person, touches, now: any(single(t, person) for t in touches)
    return lambda person, touches, now: single(EMPTY_TOUCH, person)


def _touched(cond: TouchedCondition) -> TouchesPredicate:
    kinds = frozenset(cond.kinds)
    window = timedelta(days=cond.within_days) if cond.within_days else None
    asset = compile_glob([cond.asset]) if cond.asset else None
    campaign = compile_glob([cond.campaign]) if cond.campaign else None
    need = cond.at_least

    def touched(person: Person, touches: Sequence[Touch], now: datetime) -> bool:
        count = 0
        for t in touches:
            if t.kind not in kinds:
                continue
            if window is not None and not (now - window <= t.occurred_at <= now):
                continue
            if asset is not None and not asset(t.asset):
                continue
            if campaign is not None and not campaign(t.campaign):
                continue
            count += 1
            if count >= need:
                return True
        return False

    return touched
