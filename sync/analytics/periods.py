"""Report periods: parsing ``--period`` values and bucketing times by month.

Accepted forms (UTC calendar): ``all`` (also ``all time``, the label it prints), ``2026`` (a
year), ``2026-Q3`` (a quarter),
``2026-10`` (a month), ``last-90d`` / ``last-12w`` (ending now), and
``2026-07-01..2026-09-30`` (dates, both included). A period is half-open: ``start <= t < end``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["ALL_TIME", "Period", "month_key", "month_start", "months_between", "parse_period"]

_YEAR = re.compile(r"(\d{4})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_LAST = re.compile(r"last-(\d+)([dw])")
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")
_HINT = "expected all, 2026, 2026-Q3, 2026-10, last-90d, last-12w or 2026-07-01..2026-09-30"


@dataclass(frozen=True)
class Period:
    """A half-open time range ``[start, end)``; None means unbounded on that side."""

    label: str
    start: datetime | None = None
    end: datetime | None = None

    def contains(self, when: datetime | None) -> bool:
        """Whether ``when`` falls in the period (an unknown time never does, unless all-time)."""
        if when is None:
            return self.start is None and self.end is None
        if self.start is not None and when < self.start:
            return False
        return self.end is None or when < self.end

    def overlap_days(self, first: date, last: date) -> tuple[int, int]:
        """Days of ``[first, last]`` (inclusive dates) inside the period, and its total days."""
        total = (last - first).days + 1
        lo = first if self.start is None else max(first, self.start.date())
        hi_excl = last + timedelta(days=1)
        if self.end is not None:
            hi_excl = min(hi_excl, self.end.date())
        return max(0, (hi_excl - lo).days), total


ALL_TIME = Period("all time")


def _day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)


def month_start(year: int, month: int) -> datetime:
    """Midnight UTC on the first of a month (months past 12 roll into the next year)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def parse_period(text: str, now: datetime | None = None) -> Period:
    """The period a ``--period`` value names; ``now`` anchors ``last-...`` (default: now)."""
    value = text.strip()
    if value.lower() in ("all", "all-time", "all time", ""):
        return ALL_TIME
    if match := _YEAR.fullmatch(value):
        year = int(match.group(1))
        return Period(value, month_start(year, 1), month_start(year + 1, 1))
    if match := _QUARTER.fullmatch(value):
        year, quarter = int(match.group(1)), int(match.group(2))
        first = 3 * (quarter - 1) + 1
        return Period(f"{year}-Q{quarter}", month_start(year, first), month_start(year, first + 3))
    if match := _MONTH.fullmatch(value):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"no month {month} in {value!r}: {_HINT}")
        return Period(value, month_start(year, month), month_start(year, month + 1))
    if match := _LAST.fullmatch(value.lower()):
        count, unit = int(match.group(1)), match.group(2)
        if count <= 0:
            raise ValueError(f"{value!r} is empty: {_HINT}")
        end = now if now is not None else datetime.now(UTC)
        span = timedelta(days=count) if unit == "d" else timedelta(weeks=count)
        return Period(f"last {count} {'days' if unit == 'd' else 'weeks'}", end - span, end)
    if match := _RANGE.fullmatch(value):
        try:
            start, last = _day(match.group(1)), _day(match.group(2))
        except ValueError:
            raise ValueError(f"not a calendar date in {value!r}: {_HINT}") from None
        if last < start:
            raise ValueError(f"the range {value!r} ends before it starts")
        return Period(value, start, last + timedelta(days=1))
    raise ValueError(f"unknown period {value!r}: {_HINT}")


def month_key(when: datetime) -> str:
    """``YYYY-MM`` of a UTC time: the bucket of monthly tables and experiments."""
    return f"{when.year:04d}-{when.month:02d}"


def months_between(start: datetime, end: datetime) -> list[str]:
    """Every ``YYYY-MM`` from the month of ``start`` to the month of ``end``, in order."""
    keys: list[str] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys
