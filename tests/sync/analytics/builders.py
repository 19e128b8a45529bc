"""Hand-built analytics records for the tests: short names, times in hours after a fixed start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sync.analytics.records import Deal, Event, EventKind, Membership, PersonFacts
from sync.mapping.model import Stage

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    """``hours`` after T0 (a Monday, 09:00 UTC)."""
    return T0 + timedelta(hours=hours)


def stage(
    person: str,
    hours: float,
    to: Stage,
    owner: str | None = None,
    *,
    seq: int = 0,
    reason: str | None = None,
) -> Event:
    """A status change of ``person`` into ``to``."""
    return Event(person, at(hours), EventKind.STATUS, to, str(to), owner, reason, seq)


def status(person: str, hours: float, value: str, owner: str | None = None) -> Event:
    """A status change to a value no stage is mapped to."""
    return Event(person, at(hours), EventKind.STATUS, None, value, owner)


def task(person: str, hours: float, owner: str | None = None) -> Event:
    """A call or e-mail task logged by sales."""
    return Event(person, at(hours), EventKind.TASK, None, "Call", owner)


def reassign(person: str, hours: float, owner: str) -> Event:
    """An owner change."""
    return Event(person, at(hours), EventKind.OWNER, None, owner, owner)


def person(key: str, owner: str | None = None, source: str | None = None) -> PersonFacts:
    """Facts of one person."""
    return PersonFacts(key, f"{key}@example.com", owner, source, T0)


def member(person_key: str, campaign: str, hours: float, channel: str | None = None) -> Membership:
    """``person_key`` first touched by ``campaign`` at ``hours``."""
    return Membership(person_key, campaign, at(hours), channel)


def deal(
    key: str,
    amount: int,
    created: datetime,
    closed: datetime | None = None,
    *,
    won: bool = False,
    campaign: str | None = None,
    owner: str | None = None,
) -> Deal:
    """A deal; closed when ``closed`` is given."""
    return Deal(key, Decimal(amount), created, closed, closed is not None, won, campaign, owner)
