"""The plain records attribution reads: touches, people, opportunities and contact roles.

They are smaller than the connector records of ``connectors.base`` (a million touches must fit
in memory next to their index) and carry exactly what the models need. ``from_connector_records``
builds them from connector records; ``sync.attribution.ledger`` builds them from ledger rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from connectors.base import ContactRole, Opportunity, Person, PersonKind, Touch

__all__ = [
    "AttributionOpportunity",
    "AttributionPerson",
    "AttributionRole",
    "AttributionTouch",
    "Dataset",
    "from_connector_records",
]


class AttributionTouch(NamedTuple):
    """One touch of one known person (``person_id`` may be any id the person ever had).

    A named tuple, not a dataclass: a run builds one per counted touch (over half a million on
    a million-touch ledger), and a tuple is made several times faster than a frozen instance."""

    key: str
    person_id: str
    occurred_at: datetime
    kind: str
    campaign: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class AttributionPerson:
    """A Lead or Contact with the links that decide whose touches count for which deal.

    ``converted_to`` (the Contact a Lead became) and ``merged_into`` (the survivor of a CRM merge)
    make several ids one person; ``emails`` lists every address the person has had.
    """

    id: str
    account_id: str | None = None
    created_at: datetime | None = None
    is_lead: bool = False
    converted_to: str | None = None
    converted_opportunity_id: str | None = None
    merged_into: str | None = None
    deleted: bool = False
    emails: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttributionOpportunity:
    """A deal as attribution sees it: account, amount, creation and close, primary campaign."""

    id: str
    account_id: str | None
    amount: Decimal | None
    created_at: datetime | None
    close_date: datetime | None
    is_closed: bool = False
    is_won: bool = False
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttributionRole:
    """A person's contact role on an opportunity."""

    opportunity_id: str
    person_id: str
    is_primary: bool = False
    deleted: bool = False


@dataclass
class Dataset:
    """Everything one attribution run reads; ``unlinked_touches`` counts touches of nobody known."""

    touches: list[AttributionTouch] = field(default_factory=list)
    people: list[AttributionPerson] = field(default_factory=list)
    opportunities: list[AttributionOpportunity] = field(default_factory=list)
    roles: list[AttributionRole] = field(default_factory=list)
    unlinked_touches: int = 0


def from_connector_records(
    touches: Iterable[Touch],
    people: Iterable[Person],
    opportunities: Iterable[Opportunity],
    contact_roles: Iterable[ContactRole],
) -> Dataset:
    """Build a dataset from connector records; touches find their person by ref, then by email."""
    dataset = Dataset()
    by_email: dict[str, str] = {}
    known: set[str] = set()
    for person in people:
        dataset.people.append(
            AttributionPerson(
                id=person.external_id,
                account_id=person.account_id or person.converted_account_id,
                created_at=person.created_at,
                is_lead=person.kind == PersonKind.LEAD,
                converted_to=person.converted_contact_id if person.converted else None,
                converted_opportunity_id=person.converted_opportunity_id,
                deleted=person.deleted,
                emails=(person.email.lower(),) if person.email else (),
            )
        )
        known.add(person.external_id)
        if person.email and not person.deleted:
            email = person.email.lower()
            # A contact wins over a lead with the same address (the classic duplicate).
            if email not in by_email or person.kind == PersonKind.CONTACT:
                by_email[email] = person.external_id
    for touch in touches:
        person_id = touch.person_ref if touch.person_ref in known else None
        if person_id is None and touch.email:
            person_id = by_email.get(touch.email.lower())
        if person_id is None:
            dataset.unlinked_touches += 1
            continue
        dataset.touches.append(
            AttributionTouch(
                key=touch.key,
                person_id=person_id,
                occurred_at=touch.occurred_at,
                kind=str(touch.kind),
                campaign=touch.campaign,
                channel=touch.channel,
            )
        )
    for opp in opportunities:
        if opp.deleted:
            continue
        dataset.opportunities.append(
            AttributionOpportunity(
                id=opp.external_id,
                account_id=opp.account_id,
                amount=opp.amount,
                created_at=opp.created_at,
                close_date=opp.close_date,
                is_closed=opp.is_closed,
                is_won=opp.is_won,
                campaign_id=opp.campaign_id,
            )
        )
    dataset.roles.extend(
        AttributionRole(r.opportunity_id, r.person_id, r.is_primary, r.deleted)
        for r in contact_roles
    )
    return dataset
