"""People in HubSpot: contacts found by e-mail in batches, created (or updated) by upsert.

HubSpot has no Lead object: every person is a contact, with a lifecycle stage and a lead
status. ``resolve_people`` batch-reads contacts by ``idProperty=email`` (100 per call) and then
reads their companies through the v4 associations batch read (1,000 per call, each record's
associations paged on their own: ``read_associations``) so touches can also be associated with
the company. ``create_people`` upserts by e-mail (100 per call): an upsert is idempotent, so a
retry after an unknown outcome cannot create a second contact. A contact HubSpot refuses (a 207
error naming it in ``context.ids``) is listed in ``last_rejections`` with HubSpot's code (the
per-property ``error`` of a "Property values were not valid" answer, e.g. ``INVALID_EMAIL``,
else its ``category``) and message.

Lead status and lifecycle stage: a ``Person`` may carry HubSpot's own values, or the shared
lifecycle stage names (``MQL``, ``SAL``, ...). The latter are translated through the mapping's
lifecycle section (``CompiledLifecycle``: the first lead-status value listed for the stage) and
HubSpot's standard lifecycle stages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from connectors.base import Person, PersonKind
from connectors.errors import RecordRejected
from connectors.hubspot.client import HubSpotClient

__all__ = [
    "CONTACT_MODIFIED",
    "CONTACT_PROPERTIES",
    "LIFECYCLE_STAGES",
    "Lifecycle",
    "PeopleDirectory",
    "parse_hubspot_time",
    "person_from_contact",
]

log = structlog.get_logger(__name__)

BATCH_LIMIT = 100
ASSOCIATION_READ_LIMIT = 1000
# Contacts keep their last modification time in ``lastmodifieddate`` (companies, deals and the
# other objects in ``hs_lastmodifieddate``): https://developers.hubspot.com/docs/api/crm/search
CONTACT_MODIFIED = "lastmodifieddate"
CONTACT_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "company",
    "hubspot_owner_id",
    "hs_lead_status",
    "lifecyclestage",
    "createdate",
    CONTACT_MODIFIED,
)


class Lifecycle(Protocol):
    """The part of a compiled mapping lifecycle the connector uses (``CompiledLifecycle``)."""

    def crm_values(self, stage: Any) -> tuple[str, ...]:
        """The CRM values meaning the shared ``stage`` (the first is the one written)."""
        ...

    def lifecycle_values(self, stage: Any) -> tuple[str, ...]:
        """The lifecycle stage values meaning the shared ``stage`` (the first is written)."""
        ...


# The shared stages (sync.mapping.Stage values) in HubSpot's default lifecycle stages.
LIFECYCLE_STAGES: dict[str, str] = {
    "Inquiry": "lead",
    "MQL": "marketingqualifiedlead",
    "SAL": "salesqualifiedlead",
    "SQL": "salesqualifiedlead",
    "Opportunity": "opportunity",
    "Customer": "customer",
    "Recycled": "lead",
    "Disqualified": "other",
}
# HubSpot's default hs_lead_status options: a stage's first such value is the one written.
_LEAD_STATUSES = frozenset(
    {
        "NEW",
        "OPEN",
        "IN_PROGRESS",
        "OPEN_DEAL",
        "UNQUALIFIED",
        "ATTEMPTED_TO_CONTACT",
        "CONNECTED",
        "BAD_TIMING",
    }
)
# Primary contact -> company association (HUBSPOT_DEFINED).
_PRIMARY_COMPANY = 1


def parse_hubspot_time(value: Any) -> datetime | None:
    """A HubSpot datetime (ISO-8601 or epoch milliseconds) as aware UTC, or None."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def person_from_contact(
    source: str, record: Mapping[str, Any], account_id: str | None = None
) -> Person:
    """A HubSpot contact (SimplePublicObject JSON) as a ``Person``."""
    props: Mapping[str, Any] = record.get("properties") or {}
    email = props.get("email")
    return Person(
        source=source,
        external_id=str(record.get("id")),
        kind=PersonKind.CONTACT,
        email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
        first_name=props.get("firstname"),
        last_name=props.get("lastname"),
        company=props.get("company"),
        account_id=account_id,
        owner_id=props.get("hubspot_owner_id") or None,
        status=props.get("hs_lead_status") or None,
        lifecycle_stage=props.get("lifecyclestage") or None,
        created_at=parse_hubspot_time(props.get("createdate") or record.get("createdAt")),
        updated_at=parse_hubspot_time(props.get(CONTACT_MODIFIED) or record.get("updatedAt")),
        deleted=bool(record.get("archived", False)),
        fields={k: v for k, v in props.items() if v is not None},
    )


class PeopleDirectory:
    """Contact lookups and upserts for one portal."""

    def __init__(
        self, client: HubSpotClient, source: str, lifecycle: Lifecycle | None = None
    ) -> None:
        self.client = client
        self.source = source
        self.lifecycle = lifecycle
        # The people the last ``create`` could not write, keyed by lower-cased e-mail.
        self.last_rejections: list[RecordRejected] = []

    # -- lookups ------------------------------------------------------------------------------

    def resolve(self, emails: Iterable[str]) -> dict[str, Person]:
        """Contacts by lower-cased e-mail, with their primary company; unknown ones omitted."""
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        api = self.client.api("objects_batch")
        records: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            answer = self.client.call(
                "contacts batch read",
                api.read,
                "contacts",
                {
                    "idProperty": "email",
                    "inputs": [{"id": email} for email in chunk],
                    "properties": list(CONTACT_PROPERTIES),
                },
                idempotent=True,
            )
            asked = set(chunk)
            for record in answer.get("results") or []:
                email = str((record.get("properties") or {}).get("email") or "").lower()
                if email in asked:
                    records[email] = record
        companies = self.companies_of([str(r.get("id")) for r in records.values()])
        return {
            email: person_from_contact(self.source, record, companies.get(str(record.get("id"))))
            for email, record in records.items()
        }

    def companies_of(self, contact_ids: Sequence[str]) -> dict[str, str]:
        """The primary (else first) company of each contact that has one."""
        return primary_targets(self.client, "contacts", "companies", contact_ids, _PRIMARY_COMPANY)

    # -- creation -----------------------------------------------------------------------------

    def create(self, people: Sequence[Person]) -> list[Person]:
        """Upsert ``people`` by e-mail; returns the contacts written. Those HubSpot refused are
        in ``last_rejections`` afterwards, with HubSpot's code and message."""
        api = self.client.api("objects_batch")
        self.last_rejections = []
        inputs: dict[str, dict[str, Any]] = {}
        for person in people:
            if not person.email or not person.email.strip():
                log.warning("hubspot.create_person.skipped", reason="no email")
                self.last_rejections.append(
                    RecordRejected("a person needs an email to be created", code="NO_EMAIL")
                )
                continue
            email = person.email.strip().lower()
            inputs.setdefault(
                email, {"idProperty": "email", "id": email, "properties": self._properties(person)}
            )
        written: dict[str, Person] = {}
        items = list(inputs.values())
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            answer = self.client.call(
                "contacts batch upsert", api.upsert, "contacts", {"inputs": chunk}, idempotent=True
            )
            for record in answer.get("results") or []:
                person = person_from_contact(self.source, record)
                if person.email:
                    written[person.email] = person
            for error in answer.get("errors") or []:
                ids = (error.get("context") or {}).get("ids") or []
                code, message = refusal(error)
                log.warning("hubspot.create_person.rejected", code=code, count=len(ids))
                self.last_rejections.extend(
                    RecordRejected(message, code=code, key=str(email).strip().lower())
                    for email in ids
                )
        return [written[email] for email in inputs if email in written]

    def _properties(self, person: Person) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, value in (
            ("firstname", person.first_name),
            ("lastname", person.last_name),
            ("company", person.company),
            ("hubspot_owner_id", person.owner_id),
        ):
            if value:
                props[name] = value
        status = self.lead_status(person.status)
        if status:
            props["hs_lead_status"] = status
        lifecycle = person.lifecycle_stage
        if lifecycle in LIFECYCLE_STAGES:
            lifecycle = self.lifecycle_stage(lifecycle)
        elif not lifecycle and person.status in LIFECYCLE_STAGES:
            lifecycle = self.lifecycle_stage(person.status)
        if lifecycle:
            props["lifecyclestage"] = lifecycle
        # Mapped fields use HubSpot property names (create defaults, closedloop_lead_source...).
        for name, value in person.fields.items():
            if value is not None and name != "email":
                props[name] = value
        return props

    def lifecycle_stage(self, stage: str) -> str:
        """HubSpot's lifecycle stage for a shared stage: the mapping's first value, else the
        default one."""
        mapped = self.lifecycle.lifecycle_values(stage) if self.lifecycle is not None else ()
        return mapped[0] if mapped else LIFECYCLE_STAGES[stage]

    def lead_status(self, value: str | None) -> str | None:
        """HubSpot's lead status for ``value``: itself, or a shared stage's first status value."""
        if not value:
            return None
        if value not in LIFECYCLE_STAGES:
            return value
        candidates = self.lifecycle.crm_values(value) if self.lifecycle is not None else ()
        for candidate in candidates:
            if candidate in _LEAD_STATUSES:
                return candidate
        return candidates[0] if candidates else None


def refusal(error: Mapping[str, Any]) -> tuple[str, str]:
    """HubSpot's (code, message) for one refused record of a batch answer (a ``StandardError``,
    OpenAPI of the contacts API): the ``code`` of its first detail in ``errors``, else the first
    property's ``error`` of a "Property values were not valid: [...]" message, else the
    ``category``."""
    category = str(error.get("category") or "VALIDATION_ERROR")
    message = str(error.get("message") or category)
    for detail in error.get("errors") or []:
        if isinstance(detail, Mapping) and isinstance(detail.get("code"), str) and detail["code"]:
            return detail["code"], message
    _, bracket, listed = message.partition("[")
    if bracket:
        try:
            problems = json.loads(bracket + listed)
        except ValueError:
            problems = None
        if isinstance(problems, list):
            for problem in problems:
                if isinstance(problem, Mapping) and isinstance(problem.get("error"), str):
                    return problem["error"], message
    return category, message


def primary_targets(
    client: HubSpotClient,
    from_type: str,
    to_type: str,
    ids: Sequence[str],
    primary_type_id: int | None = None,
) -> dict[str, str]:
    """Each id's associated ``to_type`` record: the primary one if labelled, else the first."""
    found: dict[str, str] = {}
    for from_id, targets in read_associations(client, from_type, to_type, ids).items():
        chosen = next((t for t, types in targets if primary_type_id in types), None)
        if chosen is None and targets:
            chosen = targets[0][0]
        if chosen is not None:
            found[from_id] = chosen
    return found


def read_associations(
    client: HubSpotClient, from_type: str, to_type: str, ids: Sequence[str]
) -> dict[str, list[tuple[str, set[int]]]]:
    """v4 batch read (1,000 ids per call): each id's associated records with their type ids.

    Each result row pages on its own: a record with more associations than one row holds
    carries ``paging.next.after``, and is asked again with that ``after`` next to its id
    (https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api,
    and the batch/read description in HubSpot's v4 associations OpenAPI spec).
    """
    api = client.api("associations")
    pending: list[dict[str, str]] = [{"id": i} for i in dict.fromkeys(ids)]
    asked: set[tuple[str, str]] = set()
    found: dict[str, list[tuple[str, set[int]]]] = {}
    while pending:
        chunk, pending = pending[:ASSOCIATION_READ_LIMIT], pending[ASSOCIATION_READ_LIMIT:]
        answer = client.call(
            f"{from_type}-{to_type} associations batch read",
            api.get_page,
            from_type,
            to_type,
            {"inputs": chunk},
            idempotent=True,
        )
        for row in answer.get("results") or []:
            from_id = str((row.get("from") or {}).get("id"))
            found.setdefault(from_id, []).extend(
                (
                    str(target.get("toObjectId")),
                    {int(t.get("typeId", 0)) for t in target.get("associationTypes") or []},
                )
                for target in row.get("to") or []
            )
            after = ((row.get("paging") or {}).get("next") or {}).get("after")
            if after and (from_id, str(after)) not in asked:
                asked.add((from_id, str(after)))
                pending.append({"id": from_id, "after": str(after)})
    return found
