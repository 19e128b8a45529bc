"""The plain records every analytics function reads: built from the ledger or by hand in tests.

People are identified by a *person key* (``"<crm>:<external id>"``; a converted lead keeps
its lead's key, so its contact's later stages continue the same history; marketing-only
people are ``"email:<address>"``). Campaigns are identified by their CRM external id when
the CRM knows them, else by the name the touches carry.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sync.mapping.model import Stage

__all__ = [
    "CampaignInfo",
    "Dataset",
    "Deal",
    "Event",
    "EventKind",
    "Membership",
    "PersonFacts",
    "Spend",
]


class EventKind(enum.StrEnum):
    """What one disposition-ledger row tells analytics."""

    STATUS = "status"  # a status / lifecycle change (a sales action unless it is the hand-off)
    TASK = "task"  # a call, e-mail or meeting logged by sales
    OWNER = "owner"  # a reassignment: not a sales action


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a person: a stage change, a logged task, a new owner."""

    person: str
    at: datetime
    kind: EventKind = EventKind.STATUS
    stage: Stage | None = None  # the shared stage reached; None for unmapped values and tasks
    value: str = ""
    owner: str | None = None
    reason: str | None = None
    seq: int = 0  # order of events at the same instant (the ledger row id)


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What analytics needs to know about a person besides their events."""

    key: str
    email: str | None = None
    owner: str | None = None
    source: str | None = None  # lead source (Web, Trade Show, ...)
    created_at: datetime | None = None
    account: str | None = None  # "<crm>:<account external id>" (a contact's, a converted lead's)


@dataclass(frozen=True, slots=True)
class Membership:
    """A person touched by a campaign (or a channel without a campaign), and when first."""

    person: str
    campaign: str | None
    first_at: datetime
    channel: str | None = None  # the touch's own channel; the campaign's channel wins


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """A campaign's display name and channel."""

    key: str
    name: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Spend:
    """Money spent on a campaign between two dates (both included)."""

    campaign: str
    amount: Decimal
    first: date
    last: date


@dataclass(frozen=True, slots=True)
class Deal:
    """An opportunity as revenue metrics see it."""

    key: str
    amount: Decimal
    created_at: datetime
    close_date: datetime | None = None
    is_closed: bool = False
    is_won: bool = False
    campaign: str | None = None  # the CRM's primary campaign source
    owner: str | None = None
    name: str = ""
    account: str | None = None  # "<crm>:<account external id>"
    contacts: tuple[str, ...] = ()  # person keys with a contact role on the deal


@dataclass(frozen=True)
class Dataset:
    """Everything a report reads, as of ``now``."""

    now: datetime
    people: Mapping[str, PersonFacts] = field(default_factory=dict)
    events: Sequence[Event] = ()
    memberships: Sequence[Membership] = ()
    campaigns: Mapping[str, CampaignInfo] = field(default_factory=dict)
    spend: Sequence[Spend] = ()
    deals: Sequence[Deal] = ()

    def as_of(self, moment: datetime) -> Dataset:
        """The records as they stood at ``moment`` (which becomes ``now``).

        What happened later is left out: events, first touches, people created and deals opened
        after it; a deal closed after it is still open; a cost line running past its day counts
        for its days up to it (by day, like ``Period.overlap_days``).
        """
        day = moment.date()
        spend: list[Spend] = []
        for line in self.spend:
            if line.last <= day:
                spend.append(line)
            elif line.first <= day:
                total = (line.last - line.first).days + 1
                kept = (day - line.first).days + 1
                spend.append(Spend(line.campaign, line.amount * kept / total, line.first, day))
        deals: list[Deal] = []
        for deal in self.deals:
            if deal.created_at > moment:
                continue
            if deal.is_closed and deal.close_date is not None and deal.close_date > moment:
                deals.append(dataclasses.replace(deal, is_closed=False, is_won=False))
            else:
                deals.append(deal)
        return Dataset(
            now=moment,
            people={
                key: facts
                for key, facts in self.people.items()
                if facts.created_at is None or facts.created_at <= moment
            },
            events=[e for e in self.events if e.at <= moment],
            memberships=[m for m in self.memberships if m.first_at <= moment],
            campaigns=self.campaigns,
            spend=spend,
            deals=deals,
        )
