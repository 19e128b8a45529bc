"""Field transforms: small pure functions from one value to another, and their compilation.

A transform list in a mapping file (``[strip, lower, {map: ...}, {truncate: crm}]``) compiles to
one plain function, applied per touch in the engine's hot loop, so everything that can be decided
once (time zones, tables, lengths) is decided at compile time. ``None`` (blank) passes through
every transform untouched, so ``default`` and ``required`` see it afterwards.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sync.mapping.model import DatetimeTransform, MapTransform, TruncateTransform

__all__ = [
    "Transform",
    "chain",
    "collapse_spaces",
    "compile_strftime",
    "compile_transforms",
    "format_datetime",
    "localizer",
    "make_map",
    "parse_datetime",
    "to_text",
    "truncate",
]

Transform = Callable[[Any], Any]

_SPACES = re.compile(r"\s+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_text(value: Any) -> str:
    """The text of a value as it would be written to a CRM text field."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _strip(value: Any) -> Any:
    return None if value is None else to_text(value).strip()


def _lower(value: Any) -> Any:
    return None if value is None else to_text(value).lower()


def _upper(value: Any) -> Any:
    return None if value is None else to_text(value).upper()


def _title(value: Any) -> Any:
    return None if value is None else to_text(value).title()


def collapse_spaces(value: Any) -> Any:
    """Runs of whitespace (newlines too) become one space; ends are stripped."""
    return None if value is None else _SPACES.sub(" ", to_text(value)).strip()


SIMPLE: dict[str, Transform] = {
    "strip": _strip,
    "lower": _lower,
    "upper": _upper,
    "title": _title,
    "collapse_spaces": collapse_spaces,
}


def truncate(value: Any, length: int, marker: str) -> Any:
    """Cut text to at most ``length`` characters, ending with ``marker`` when something was cut.

    A marker longer than the length is itself cut, so the result never exceeds the length.
    """
    if value is None:
        return None
    text = to_text(value)
    if len(text) <= length:
        return text
    if len(marker) >= length:
        return marker[:length]
    return text[: length - len(marker)] + marker


def make_map(
    table: Mapping[str, Any],
    *,
    default: Any = None,
    has_default: bool = False,
    ignore_case: bool = False,
) -> Transform:
    """A value-map transform: table lookup on the value's text; unmapped -> default or itself."""
    lookup = {k.casefold(): v for k, v in table.items()} if ignore_case else dict(table)
    missing = object()

    def apply(value: Any) -> Any:
        if value is None:
            return default if has_default else None
        text = to_text(value)
        found = lookup.get(text.casefold() if ignore_case else text, missing)
        if found is missing:
            return default if has_default else value
        return found

    return apply


def parse_datetime(value: Any) -> datetime | None:
    """A timestamp from a datetime, a date, an ISO 8601 string or epoch milliseconds (UTC)."""
    if value is None or isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int | float):
        return _EPOCH + timedelta(milliseconds=value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return _EPOCH + timedelta(milliseconds=int(text))
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt is not None and dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# strftime directive -> the f-string field computing it from ``dt`` (C-locale names).
_DIRECTIVES: dict[str, str] = {
    "Y": "{dt.year:04d}", "m": "{dt.month:02d}", "d": "{dt.day:02d}", "H": "{dt.hour:02d}",
    "M": "{dt.minute:02d}", "S": "{dt.second:02d}", "y": "{dt.year % 100:02d}",
    "Z": "{dt.tzname() or ''}", "b": "{_months[dt.month - 1]}", "a": "{_days[dt.weekday()]}",
    "p": "{'AM' if dt.hour < 12 else 'PM'}", "I": "{dt.hour % 12 or 12:02d}",
}  # fmt: skip


@functools.lru_cache(maxsize=256)
def compile_strftime(fmt: str) -> Callable[[datetime], str]:
    """``dt.strftime(fmt)`` compiled to one f-string (C-locale names), several times faster.

    Literal text goes in by reference (never as code); patterns with a directive outside the
    table above fall back to ``strftime`` itself.
    """
    namespace: dict[str, Any] = {"__builtins__": {}, "_months": _MONTHS, "_days": _DAYS}
    fields: list[str] = []
    literal = ""
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            literal += fmt[i]
            i += 1
            continue
        code = fmt[i + 1] if i + 1 < len(fmt) else ""
        if code == "%":
            literal += "%"
        elif code in _DIRECTIVES:
            if literal:
                namespace[f"_l{len(namespace)}"] = literal
                fields.append(f"{{_l{len(namespace) - 1}}}")
                literal = ""
            fields.append(_DIRECTIVES[code])
        else:
            return lambda dt: dt.strftime(fmt)
        i += 2
    if literal:
        namespace[f"_l{len(namespace)}"] = literal
        fields.append(f"{{_l{len(namespace) - 1}}}")
    source = 'lambda dt: f"' + "".join(fields) + '"'
    compiled: Callable[[datetime], str] = eval(source, namespace)  # noqa: S307 - see docstring
    return compiled


@functools.lru_cache(maxsize=64)
def localizer(zone: tzinfo) -> Callable[[datetime], datetime]:
    """``dt.astimezone(zone)``, remembering the last answer: one touch's timestamp is usually
    rendered by several fields in a row (a date field, then a description)."""
    last: tuple[datetime | None, datetime | None] = (None, None)

    def local(dt: datetime) -> datetime:
        nonlocal last
        seen, out = last
        if seen is dt and out is not None:
            return out
        out = dt.astimezone(zone)
        last = (dt, out)
        return out

    return local


def format_datetime(value: Any, fmt: str, zone: tzinfo) -> Any:
    """Render a timestamp in ``zone``: ``date``, ``iso``, ``epoch_ms`` or a strftime pattern.

    Values that are not timestamps pass through unchanged (so a bad source shows up in the
    payload instead of vanishing).
    """
    dt = parse_datetime(value)
    if dt is None:
        return value
    if fmt == "epoch_ms":
        # Epoch milliseconds do not depend on the zone; HubSpot's hs_timestamp takes them.
        return (dt - _EPOCH) // _MILLISECOND
    local = localizer(zone)(dt)
    if fmt == "date":
        return local.date().isoformat()
    if fmt == "iso":
        return local.isoformat()
    return compile_strftime(fmt)(local)


def _datetime_transform(step: DatetimeTransform, default_zone: str) -> Transform:
    zone = ZoneInfo(step.timezone or default_zone)
    fmt = step.datetime
    local = localizer(zone)
    if fmt == "date":

        def as_date(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                return local(value).date().isoformat()
            return format_datetime(value, fmt, zone)

        return as_date

    def apply(value: Any) -> Any:
        return format_datetime(value, fmt, zone)

    return apply


def compile_transforms(
    steps: Sequence[str | MapTransform | DatetimeTransform | TruncateTransform],
    *,
    timezone: str,
    marker: str,
    crm_length: int | None,
) -> list[Transform]:
    """Turn a transform list into functions; ``truncate: crm`` needs ``crm_length`` (validated)."""
    out: list[Transform] = []
    for step in steps:
        if isinstance(step, str):
            out.append(SIMPLE[step])
        elif isinstance(step, MapTransform):
            out.append(
                make_map(
                    step.map,
                    default=step.default,
                    has_default="default" in step.model_fields_set,
                    ignore_case=step.ignore_case,
                )
            )
        elif isinstance(step, DatetimeTransform):
            out.append(_datetime_transform(step, timezone))
        else:
            length = crm_length if step.truncate == "crm" else step.truncate
            if length is None:
                continue  # validate reports `truncate: crm` on a field of unknown length
            out.append(_truncator(int(length), marker if step.marker is None else step.marker))
    return out


def _truncator(length: int, marker: str) -> Transform:
    def apply(value: Any) -> Any:
        if isinstance(value, str) and len(value) <= length:
            return value
        return truncate(value, length, marker)

    return apply


def chain(funcs: Sequence[Transform]) -> Transform | None:
    """One function applying ``funcs`` in order, or None when there are none."""
    if not funcs:
        return None
    if len(funcs) == 1:
        return funcs[0]
    steps = tuple(funcs)

    def apply(value: Any) -> Any:
        for fn in steps:
            value = fn(value)
        return value

    return apply
