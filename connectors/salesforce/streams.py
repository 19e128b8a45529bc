"""The change streams the Salesforce connector pulls, as data: objects, fields, record builders.

A stream reads one or more sObjects incrementally on ``SystemModstamp`` (the replication key)
and turns each row into a ``connectors.base`` record. Row values come either from the REST API
(JSON types) or from a Bulk API 2.0 CSV (text), so every builder reads through the tolerant
converters below (``_bool``, ``_dt``, ``_money``...). Nothing here does I/O.

========================  ============================================  ===================
stream                    objects                                       record
========================  ============================================  ===================
people                    Lead + Contact                                Person
leads / contacts          Lead / Contact                                Person
accounts                  Account                                       Account
opportunities             Opportunity                                   Opportunity
contact_roles             OpportunityContactRole                        ContactRole
campaigns                 Campaign                                      Campaign
campaign_members          CampaignMember                                CampaignMembership
status_history            LeadHistory + OpportunityFieldHistory         StatusChange
========================  ============================================  ===================

``status_history`` reads field history on ``CreatedDate`` (``connectors.salesforce.history``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from connectors.base import (
    Account,
    Campaign,
    ContactRole,
    Opportunity,
    Owner,
    Person,
    PersonKind,
)
from connectors.errors import ConfigError
from connectors.salesforce.settings import SalesforceSettings

__all__ = [
    "REPLICATION_KEY",
    "CampaignMembership",
    "ObjectSpec",
    "StreamSpec",
    "parse_sf_datetime",
    "sf_datetime",
    "stream_names",
    "stream_spec",
]

REPLICATION_KEY = "SystemModstamp"
_AUDIT = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", REPLICATION_KEY)


@dataclass(frozen=True, slots=True)
class CampaignMembership:
    """A person's membership of a campaign (Salesforce CampaignMember): status and response."""

    source: str
    external_id: str
    campaign_id: str
    person_id: str | None
    status: str | None = None
    has_responded: bool = False
    first_responded_at: datetime | None = None
    updated_at: datetime | None = None
    deleted: bool = False


Builder = Callable[[str, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class ObjectSpec:
    """One sObject of a stream: the fields to select and how a row becomes a record."""

    sobject: str
    fields: tuple[str, ...]
    build: Builder


@dataclass(frozen=True)
class StreamSpec:
    """A named stream: its objects, read together under one cursor."""

    name: str
    objects: tuple[ObjectSpec, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------ value readers


def sf_datetime(moment: datetime) -> str:
    """A datetime as a SOQL literal in UTC with milliseconds (``2026-01-01T00:00:00.000Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_sf_datetime(value: Any) -> datetime | None:
    """A Salesforce datetime (``...+0000``, ``...Z``) or date as an aware UTC datetime; None
    when empty or not a date."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        elif len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
            text = text[:-2] + ":" + text[-2:]
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _domain(website: Any) -> str | None:
    text = _str(website)
    if text is None:
        return None
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.lower().removeprefix("www.")
    return host or None


# ------------------------------------------------------------------------------ builders


def _lead(reason_fields: tuple[str, ...]) -> Builder:
    def build(source: str, row: Mapping[str, Any]) -> Person:
        extra = {name: row.get(name) for name in reason_fields}
        extra[REPLICATION_KEY] = row.get(REPLICATION_KEY)
        return Person(
            source=source,
            external_id=str(row["Id"]),
            kind=PersonKind.LEAD,
            email=_str(row.get("Email")),
            first_name=_str(row.get("FirstName")),
            last_name=_str(row.get("LastName")),
            company=_str(row.get("Company")),
            owner_id=_str(row.get("OwnerId")),
            status=_str(row.get("Status")),
            lead_source=_str(row.get("LeadSource")),
            converted=_bool(row.get("IsConverted")),
            converted_contact_id=_str(row.get("ConvertedContactId")),
            converted_account_id=_str(row.get("ConvertedAccountId")),
            converted_opportunity_id=_str(row.get("ConvertedOpportunityId")),
            created_at=parse_sf_datetime(row.get("CreatedDate")),
            updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
            deleted=_bool(row.get("IsDeleted")),
            fields=extra,
        )

    return build


def _contact(source: str, row: Mapping[str, Any]) -> Person:
    return Person(
        source=source,
        external_id=str(row["Id"]),
        kind=PersonKind.CONTACT,
        email=_str(row.get("Email")),
        first_name=_str(row.get("FirstName")),
        last_name=_str(row.get("LastName")),
        account_id=_str(row.get("AccountId")),
        owner_id=_str(row.get("OwnerId")),
        lead_source=_str(row.get("LeadSource")),
        created_at=parse_sf_datetime(row.get("CreatedDate")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        deleted=_bool(row.get("IsDeleted")),
        fields={REPLICATION_KEY: row.get(REPLICATION_KEY)},
    )


def _account(domain_field: str | None) -> Builder:
    def build(source: str, row: Mapping[str, Any]) -> Account:
        domain = _str(row.get(domain_field)) if domain_field else None
        return Account(
            source=source,
            external_id=str(row["Id"]),
            name=str(row.get("Name") or ""),
            domain=(domain or _domain(row.get("Website")) or None),
            owner_id=_str(row.get("OwnerId")),
            updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
            deleted=_bool(row.get("IsDeleted")),
        )

    return build


def _opportunity(source: str, row: Mapping[str, Any]) -> Opportunity:
    return Opportunity(
        source=source,
        external_id=str(row["Id"]),
        name=str(row.get("Name") or ""),
        account_id=_str(row.get("AccountId")),
        stage=str(row.get("StageName") or ""),
        amount=_money(row.get("Amount")),
        is_closed=_bool(row.get("IsClosed")),
        is_won=_bool(row.get("IsWon")),
        close_date=parse_sf_datetime(row.get("CloseDate")),
        created_at=parse_sf_datetime(row.get("CreatedDate")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        campaign_id=_str(row.get("CampaignId")),
        owner_id=_str(row.get("OwnerId")),
        deleted=_bool(row.get("IsDeleted")),
    )


def _contact_role(source: str, row: Mapping[str, Any]) -> ContactRole:
    return ContactRole(
        source=source,
        external_id=str(row["Id"]),
        opportunity_id=str(row.get("OpportunityId") or ""),
        person_id=str(row.get("ContactId") or ""),
        role=_str(row.get("Role")),
        is_primary=_bool(row.get("IsPrimary")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        deleted=_bool(row.get("IsDeleted")),
    )


# User has no IsDeleted (users are deactivated, never deleted): _AUDIT without it, plus these.
_USER_FIELDS = ("FirstName", "LastName", "Email", "IsActive")


def _owner(source: str, row: Mapping[str, Any]) -> Owner:
    # Users are never deleted, only deactivated (IsActive); User has no IsDeleted field.
    return Owner(
        source=source,
        external_id=str(row["Id"]),
        email=(_str(row.get("Email")) or "").lower() or None,
        first_name=_str(row.get("FirstName")),
        last_name=_str(row.get("LastName")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        deleted=not _bool(row.get("IsActive", True)),
    )


def _campaign(source: str, row: Mapping[str, Any]) -> Campaign:
    return Campaign(
        source=source,
        external_id=str(row["Id"]),
        name=str(row.get("Name") or ""),
        channel=_str(row.get("Type")),
        actual_cost=_money(row.get("ActualCost")),
        budgeted_cost=_money(row.get("BudgetedCost")),
        start_date=parse_sf_datetime(row.get("StartDate")),
        end_date=parse_sf_datetime(row.get("EndDate")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        deleted=_bool(row.get("IsDeleted")),
    )


def _campaign_member(source: str, row: Mapping[str, Any]) -> CampaignMembership:
    return CampaignMembership(
        source=source,
        external_id=str(row["Id"]),
        campaign_id=str(row.get("CampaignId") or ""),
        person_id=_str(row.get("ContactId")) or _str(row.get("LeadId")),
        status=_str(row.get("Status")),
        has_responded=_bool(row.get("HasResponded")),
        first_responded_at=parse_sf_datetime(row.get("FirstRespondedDate")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        deleted=_bool(row.get("IsDeleted")),
    )


# ------------------------------------------------------------------------------ the streams

LEAD_FIELDS = (
    *_AUDIT,
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "Status",
    "OwnerId",
    "LeadSource",
    "IsConverted",
    "ConvertedContactId",
    "ConvertedAccountId",
    "ConvertedOpportunityId",
    "ConvertedDate",
)
CONTACT_FIELDS = (
    *_AUDIT,
    "Email",
    "FirstName",
    "LastName",
    "AccountId",
    "OwnerId",
    "LeadSource",
)


def _specs(settings: SalesforceSettings) -> dict[str, StreamSpec]:
    reasons = tuple(dict.fromkeys(settings.lead_reason_fields))
    lead = ObjectSpec(
        "Lead", (*LEAD_FIELDS, *(r for r in reasons if r not in LEAD_FIELDS)), _lead(reasons)
    )
    contact = ObjectSpec("Contact", CONTACT_FIELDS, _contact)
    account_fields: tuple[str, ...] = (*_AUDIT, "Name", "Website", "OwnerId")
    if settings.account_domain_field:
        account_fields = (*account_fields, settings.account_domain_field)
    return {
        "people": StreamSpec("people", (lead, contact)),
        "leads": StreamSpec("leads", (lead,)),
        "contacts": StreamSpec("contacts", (contact,)),
        "accounts": StreamSpec(
            "accounts",
            (ObjectSpec("Account", account_fields, _account(settings.account_domain_field)),),
        ),
        "opportunities": StreamSpec(
            "opportunities",
            (
                ObjectSpec(
                    "Opportunity",
                    (
                        *_AUDIT,
                        "Name",
                        "AccountId",
                        "StageName",
                        "Amount",
                        "IsClosed",
                        "IsWon",
                        "CloseDate",
                        "CampaignId",
                        "OwnerId",
                    ),
                    _opportunity,
                ),
            ),
        ),
        "contact_roles": StreamSpec(
            "contact_roles",
            (
                ObjectSpec(
                    "OpportunityContactRole",
                    (*_AUDIT, "OpportunityId", "ContactId", "Role", "IsPrimary"),
                    _contact_role,
                ),
            ),
        ),
        "campaigns": StreamSpec(
            "campaigns",
            (
                ObjectSpec(
                    "Campaign",
                    (
                        *_AUDIT,
                        "Name",
                        "Type",
                        "Status",
                        "StartDate",
                        "EndDate",
                        "BudgetedCost",
                        "ActualCost",
                        "IsActive",
                    ),
                    _campaign,
                ),
            ),
        ),
        # The users records are assigned to: the names behind owner ids.
        "owners": StreamSpec(
            "owners",
            (ObjectSpec("User", (*_AUDIT[:1], *_AUDIT[2:], *_USER_FIELDS), _owner),),
        ),
        "campaign_members": StreamSpec(
            "campaign_members",
            (
                ObjectSpec(
                    "CampaignMember",
                    (
                        *_AUDIT,
                        "CampaignId",
                        "LeadId",
                        "ContactId",
                        "Status",
                        "HasResponded",
                        "FirstRespondedDate",
                    ),
                    _campaign_member,
                ),
            ),
        ),
    }


def stream_names() -> list[str]:
    """Every stream name ``pull_changes`` accepts."""
    return [
        "people",
        "leads",
        "contacts",
        "accounts",
        "opportunities",
        "contact_roles",
        "campaigns",
        "campaign_members",
        "owners",
        "status_history",
    ]


def stream_spec(name: str, settings: SalesforceSettings) -> StreamSpec:
    """The stream called ``name``; an unknown name is a ConfigError listing the known ones."""
    specs = _specs(settings)
    if name not in specs:
        raise ConfigError(
            f"unknown Salesforce stream {name!r}; known streams: {', '.join(stream_names())}"
        )
    return specs[name]
