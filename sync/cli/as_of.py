"""``--as-of``: the one moment a command that measures time measures at, read the same way by each.

The commands: ``report`` (open SLA clocks, open deals, relative periods, and the ledger as it
stood then), ``sla breaches`` (the same clocks, so its list matches the report's), and
``attribution run`` (the end of the window of open deals). A date (``2026-09-30``) is the end of
that day, UTC, so the whole day counts; an ISO time (``2026-09-30T17:00:00Z``,
``2026-09-30T19:00:00+02:00``) is that moment; a time without a zone is UTC.

Not here: ``sla writeback`` flags the CRM's records now (a flag measured at another moment would
be wrong the moment it is written), ``demo --now`` sets what day the sandbox's world ends, and
``runs``, ``dead-letters`` and ``schema show`` print stored times without measuring any.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

__all__ = ["as_of_help", "parse_as_of"]

_EXAMPLES = "a date (2026-09-30) is the end of that day, UTC; an ISO time without a zone is UTC"


def as_of_help(default: str = "now") -> str:
    """The help text of every ``--as-of`` option (``default``: what is measured without it)."""
    return f"Measure as of this moment instead of {default}: {_EXAMPLES}."


def parse_as_of(text: str) -> datetime:
    """The moment an ``--as-of`` value names, as an aware datetime (module docstring)."""
    from connectors.errors import ConfigError

    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"--as-of: {text!r} is neither a date (2026-09-30) nor an ISO time "
            "(2026-09-30T17:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
