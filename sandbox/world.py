"""The vendor-neutral company the seed generator builds and each emulator loads.

One ``World`` describes a believable B2B company's data once; the Salesforce, HubSpot and Marketo
emulators each project it into their own objects (Leads/Contacts, contacts/companies/deals,
Marketo leads and activities). Ids here are the world's own; emulators mint vendor ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

__all__ = [
    "World",
    "WorldAccount",
    "WorldActivity",
    "WorldCampaign",
    "WorldContactRole",
    "WorldOpportunity",
    "WorldPerson",
    "WorldStatusEvent",
]


@dataclass
class WorldAccount:
    id: str
    name: str
    domain: str
    industry: str
    employees: int
    created_at: datetime


@dataclass
class WorldPerson:
    """A person known to marketing; ``crm_kind`` says how the CRM holds them (lead or contact)."""

    id: str
    email: str
    first_name: str
    last_name: str
    company: str
    title: str
    account_id: str | None
    crm_kind: str  # "lead" | "contact" | "none" (marketing-only, not yet in the CRM)
    lead_status: str
    lifecycle_stage: str
    owner_id: str
    lead_source: str
    score: int
    created_at: datetime
    updated_at: datetime
    converted_at: datetime | None = None
    disqualified_reason: str | None = None
    duplicate_of: str | None = None


@dataclass
class WorldCampaign:
    id: str
    name: str
    channel: str
    type: str
    start_date: datetime
    end_date: datetime
    budgeted_cost: Decimal
    actual_cost: Decimal


@dataclass
class WorldOpportunity:
    id: str
    name: str
    account_id: str
    stage: str
    amount: Decimal
    is_closed: bool
    is_won: bool
    created_at: datetime
    close_date: datetime
    owner_id: str
    campaign_id: str | None
    lead_person_id: str | None


@dataclass
class WorldContactRole:
    id: str
    opportunity_id: str
    person_id: str
    role: str
    is_primary: bool


@dataclass
class WorldActivity:
    """One marketing activity, with its Marketo-style type name and the touch kind it maps to."""

    id: int
    person_id: str
    kind: str
    occurred_at: datetime
    campaign_id: str | None
    asset: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class WorldStatusEvent:
    """A rep's status change on a lead (or a stage change on an opportunity), after a delay."""

    object_type: str  # "lead" | "opportunity"
    object_id: str
    field: str
    old_value: str | None
    new_value: str
    changed_at: datetime
    owner_id: str
    reason: str | None = None


@dataclass
class World:
    """Everything the seed generator made, from one seed number."""

    seed: int
    now: datetime
    owners: list[tuple[str, str, str]]  # (id, name, email)
    accounts: list[WorldAccount]
    people: list[WorldPerson]
    campaigns: list[WorldCampaign]
    opportunities: list[WorldOpportunity]
    contact_roles: list[WorldContactRole]
    activities: list[WorldActivity]
    status_events: list[WorldStatusEvent]
