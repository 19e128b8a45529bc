"""Who is behind an email in Salesforce, and what a new Lead or Contact looks like (pure code).

Lookups are batched SOQL: ``Email IN (...)`` lists packed up to the statement-length limit
(100,000 characters), one statement family for Leads (converted ones included, so they can be
followed to their Contact through ``ConvertedContact``) and one for Contacts. SOQL compares text
case-insensitively, so emails match in any case; results are keyed by the lower-cased email.

Duplicates (several records with one email) are settled by ``duplicate_rule``:

- ``contact_first`` (default): a Contact beats a Lead (it is further down the funnel and where
  sales works), then the most recently modified record, then the smallest id (stable);
- ``lead_first``: a Lead beats a Contact, then newest, then smallest id;
- ``newest``: the most recently modified record, Contacts first on a tie.

A converted Lead counts as its Contact. New Leads need a Company: the one given, else the email's
domain (``acme.com``: what reps search for and what account matching keys on), else, for
free-mail domains, the mapping's default (``Company`` in the person's fields) or
``default_company``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import Person, PersonKind
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.streams import parse_sf_datetime

__all__ = [
    "CONTACT_LOOKUP",
    "LEAD_LOOKUP",
    "Candidate",
    "choose",
    "company_for",
    "in_list_queries",
    "new_person_record",
    "normalize_email",
    "person_candidates",
    "soql_string",
]

NOT_PROVIDED = "[not provided]"
LEAD_LOOKUP = (
    "SELECT Id, Email, FirstName, LastName, Company, Status, OwnerId, LeadSource, IsConverted, "
    "ConvertedContactId, ConvertedAccountId, ConvertedOpportunityId, CreatedDate, "
    "LastModifiedDate, ConvertedContact.Id, ConvertedContact.Email, ConvertedContact.FirstName, "
    "ConvertedContact.LastName, ConvertedContact.AccountId, ConvertedContact.OwnerId, "
    "ConvertedContact.LeadSource, ConvertedContact.CreatedDate, "
    "ConvertedContact.LastModifiedDate FROM Lead WHERE Email IN ("
)
CONTACT_LOOKUP = (
    "SELECT Id, Email, FirstName, LastName, AccountId, Account.Name, OwnerId, LeadSource, "
    "CreatedDate, LastModifiedDate FROM Contact WHERE Email IN ("
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalize_email(email: str | None) -> str | None:
    """The lookup form of an email: stripped and lower-cased; None when it is not an email."""
    if not email:
        return None
    text = email.strip().lower()
    local, at, domain = text.partition("@")
    return text if at and local and domain else None


def soql_string(value: str) -> str:
    """A SOQL string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_list_queries(prefix: str, values: Iterable[str], max_chars: int) -> list[str]:
    """``prefix`` + ``'a','b',...)`` statements, each at most ``max_chars`` long."""
    queries: list[str] = []
    current: list[str] = []
    length = len(prefix) + 1
    for value in values:
        literal = soql_string(value)
        extra = len(literal) + (1 if current else 0)
        if current and length + extra > max_chars:
            queries.append(prefix + ",".join(current) + ")")
            current, length, extra = [], len(prefix) + 1, len(literal)
        current.append(literal)
        length += extra
    if current:
        queries.append(prefix + ",".join(current) + ")")
    return queries


@dataclass(frozen=True)
class Candidate:
    """One record an email may belong to, with what the duplicate rule compares."""

    email: str
    person: Person
    modified: datetime


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    return None if value in (None, "") else str(value)


def person_candidates(source: str, sobject: str, row: Mapping[str, Any]) -> list[Candidate]:
    """The candidate people a Lead or Contact lookup row stands for (a converted Lead: its
    Contact; a converted Lead whose Contact is gone: none)."""
    email = normalize_email(_text(row, "Email"))
    if email is None:
        return []
    if sobject == "Contact":
        account = row.get("Account")
        person = Person(
            source=source,
            external_id=str(row["Id"]),
            kind=PersonKind.CONTACT,
            email=_text(row, "Email"),
            first_name=_text(row, "FirstName"),
            last_name=_text(row, "LastName"),
            company=_text(account, "Name") if isinstance(account, Mapping) else None,
            account_id=_text(row, "AccountId"),
            owner_id=_text(row, "OwnerId"),
            lead_source=_text(row, "LeadSource"),
            created_at=parse_sf_datetime(row.get("CreatedDate")),
            updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
        )
        return [Candidate(email, person, person.updated_at or _EPOCH)]
    if row.get("IsConverted"):
        contact = row.get("ConvertedContact")
        if not isinstance(contact, Mapping) or not contact.get("Id"):
            return []
        person = Person(
            source=source,
            external_id=str(contact["Id"]),
            kind=PersonKind.CONTACT,
            email=_text(contact, "Email") or _text(row, "Email"),
            first_name=_text(contact, "FirstName"),
            last_name=_text(contact, "LastName"),
            account_id=_text(contact, "AccountId") or _text(row, "ConvertedAccountId"),
            owner_id=_text(contact, "OwnerId"),
            lead_source=_text(contact, "LeadSource"),
            created_at=parse_sf_datetime(contact.get("CreatedDate")),
            updated_at=parse_sf_datetime(contact.get("LastModifiedDate")),
            fields={"ConvertedFromLeadId": str(row["Id"])},
        )
        return [Candidate(email, person, person.updated_at or _EPOCH)]
    person = Person(
        source=source,
        external_id=str(row["Id"]),
        kind=PersonKind.LEAD,
        email=_text(row, "Email"),
        first_name=_text(row, "FirstName"),
        last_name=_text(row, "LastName"),
        company=_text(row, "Company"),
        owner_id=_text(row, "OwnerId"),
        status=_text(row, "Status"),
        lead_source=_text(row, "LeadSource"),
        created_at=parse_sf_datetime(row.get("CreatedDate")),
        updated_at=parse_sf_datetime(row.get("LastModifiedDate")),
    )
    return [Candidate(email, person, person.updated_at or _EPOCH)]


def choose(candidates: Sequence[Candidate], rule: str) -> Person:
    """The one person the duplicate ``rule`` picks among candidates sharing an email."""
    unique = {c.person.external_id: c for c in candidates}

    def key(c: Candidate) -> tuple[Any, ...]:
        newest = -c.modified.timestamp()
        if rule == "lead_first":
            return (c.person.kind is not PersonKind.LEAD, newest, c.person.external_id)
        if rule == "newest":
            return (newest, c.person.kind is not PersonKind.CONTACT, c.person.external_id)
        return (c.person.kind is not PersonKind.CONTACT, newest, c.person.external_id)

    return min(unique.values(), key=key).person


def company_for(email: str, person: Person, settings: SalesforceSettings) -> str:
    """The Company of a new Lead: given, else the business email's domain, else the default."""
    if person.company and person.company.strip():
        return person.company.strip()[:255]
    domain = email.rpartition("@")[2].lower()
    if domain and domain not in settings.free_mail_domains:
        return domain[:255]
    default = person.fields.get("Company")
    if isinstance(default, str) and default.strip():
        return default.strip()[:255]
    return settings.default_company


def new_person_record(person: Person, settings: SalesforceSettings) -> dict[str, Any]:
    """The Lead (or Contact) record to create for ``person`` (its email must be set).

    ``person.fields`` entries named like Salesforce API fields (starting with a capital letter,
    e.g. the mapping's ``create_defaults``) are written too; the person's own values win.
    """
    email = normalize_email(person.email) or ""
    as_lead = settings.create_people_as == "lead"
    record: dict[str, Any] = {
        name: value for name, value in person.fields.items() if name[:1].isupper()
    }
    record["attributes"] = {"type": "Lead" if as_lead else "Contact"}
    record["Email"] = email
    if person.first_name:
        record["FirstName"] = person.first_name[:40]
    last = person.last_name or record.get("LastName") or NOT_PROVIDED
    record["LastName"] = str(last)[:80]
    if person.lead_source:
        record["LeadSource"] = person.lead_source
    if person.owner_id:
        record["OwnerId"] = person.owner_id
    if as_lead:
        record["Company"] = company_for(email, person, settings)
    else:
        record.pop("Company", None)
        if person.account_id:
            record["AccountId"] = person.account_id
    return record
