"""Ledger rows and connector records: touches and people converted between the two.

``touch_from_row`` and ``person_from_row`` read ledger rows as connector records;
``touch_payload`` is the JSON a dead letter keeps of a touch; ``source_person`` is a touch's person
as its source knows it; ``person_values``, ``live_people_query`` and ``upsert_people`` write and
read the ``person`` table (every pipeline that sees people uses them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, select

from connectors.base import Person, PersonKind, Touch, TouchKind
from sync.ledger.dialect import AnyOf, dialect_insert
from sync.ledger.models import PersonRow
from sync.ledger.types import utcnow

__all__ = [
    "live_people_query",
    "person_from_row",
    "person_values",
    "remember",
    "source_person",
    "touch_from_row",
    "touch_payload",
    "upsert_people",
]

_PERSON = PersonRow.__table__  # type: ignore[attr-defined]

_TOUCH_KINDS = frozenset(kind.value for kind in TouchKind)
_LOOKUP_CHUNK = 500
# Emails remembered per run (people matched, fields settled); bounded for memory.
_PEOPLE_CACHE_MAX = 50_000
# Resolved people (and known misses) a Deliverer keeps: a Person with its fields is ~1 KB, and
# the ledger answers a miss in one indexed read per 500 emails.
_PERSON_CACHE_MAX = 10_000


def remember(emails: set[str], more: Iterable[str]) -> None:
    """Add ``more`` to a per-run set of emails, emptied first once it holds
    ``_PEOPLE_CACHE_MAX``: a set as large as the run's people would grow with the pull."""
    if len(emails) >= _PEOPLE_CACHE_MAX:
        emails.clear()
    emails.update(more)


def touch_from_row(row: Any) -> Touch:
    """A ledger ``touch`` row as the connector record type."""
    return Touch(
        source=row.source,
        source_id=row.source_id,
        kind=TouchKind(row.kind) if row.kind in _TOUCH_KINDS else TouchKind.OTHER,
        occurred_at=row.occurred_at,
        email=row.email,
        person_ref=row.person_ref,
        campaign=row.campaign,
        channel=row.channel,
        asset=row.asset,
        attributes=row.attributes or {},
        raw=row.raw or {},
    )


def touch_payload(touch: Touch) -> dict[str, Any]:
    """The JSON form of a touch kept in its dead letter (enough to see what went wrong)."""
    return {
        "key": touch.key,
        "source": touch.source,
        "source_id": touch.source_id,
        "kind": touch.kind.value,
        "occurred_at": touch.occurred_at.isoformat(),
        "email": touch.email,
        "campaign": touch.campaign,
        "channel": touch.channel,
        "asset": touch.asset,
        "attributes": dict(touch.attributes),
    }


# Person fields a touch may carry (``attributes["person"]``) that are not Person attributes:
# the mapping reads them as person.fields.<name>.
_PERSON_EXTRAS = ("title", "phone", "country")


def source_person(touch: Touch, email: str) -> Person | None:
    """The person of ``touch`` as its source knows them (``attributes["person"]``: names,
    company, title, phone, country, ``updated_at``), or None when the touch carries none."""
    given = touch.attributes.get("person")
    if not isinstance(given, Mapping):
        return None
    named = {k: v.strip() for k, v in given.items() if isinstance(v, str) and v.strip()}
    if not named.keys() - {"updated_at"}:
        return None
    updated_at = _parse_time(named.get("updated_at")) or touch.occurred_at
    return Person(
        source=touch.source,
        external_id=touch.person_ref or email,
        kind=PersonKind.LEAD,
        email=email,
        first_name=named.get("first_name"),
        last_name=named.get("last_name"),
        company=named.get("company"),
        updated_at=updated_at,
        fields={k: named[k] for k in _PERSON_EXTRAS if k in named},
    )


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def person_from_row(row: Any) -> Person:
    """A ledger ``person`` row as the connector record type."""
    return Person(
        source=row.crm,
        external_id=row.external_id,
        kind=PersonKind.CONTACT if row.kind == PersonKind.CONTACT.value else PersonKind.LEAD,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        company=row.company,
        account_id=row.account_external_id,
        owner_id=row.owner_id,
        status=row.status,
        lifecycle_stage=row.lifecycle_stage,
        lead_source=row.lead_source,
        score=row.score,
        converted=bool(row.converted),
        created_at=row.created_at,
        updated_at=row.updated_at,
        fields=row.fields or {},
    )


def person_values(crm: str, person: Person) -> dict[str, Any]:
    """The ``person`` row columns for a CRM person (used by every pipeline that sees people)."""
    return {
        "crm": crm,
        "external_id": person.external_id,
        "kind": person.kind.value,
        "email": person.email,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "company": person.company,
        "account_external_id": person.account_id,
        "owner_id": person.owner_id,
        "status": person.status,
        "lifecycle_stage": person.lifecycle_stage,
        "lead_source": person.lead_source,
        "score": person.score,
        "converted": person.converted,
        "converted_contact_external_id": person.converted_contact_id,
        "converted_account_external_id": person.converted_account_id,
        "converted_opportunity_external_id": person.converted_opportunity_id,
        "deleted": person.deleted,
        "fields": _plain(dict(person.fields)),
        "created_at": person.created_at,
        "updated_at": person.updated_at,
        "pulled_at": utcnow(),
        # A refresh from the CRM means its values may have changed: settle the person again.
        "fields_digest": None,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def live_people_query(crm: str, emails: Sequence[str]) -> Select[Any]:
    """The live (not deleted, converted or merged) ``person`` rows of ``crm`` with ``emails``:
    an index range of ``person (crm, email)``."""
    return select(_PERSON).where(
        _PERSON.c.crm == crm,
        AnyOf(_PERSON.c.email, emails),
        _PERSON.c.deleted.is_(False),
        _PERSON.c.converted.is_(False),
        _PERSON.c.merged_into.is_(None),
    )


def upsert_people(conn: Connection, crm: str, people: Iterable[Person]) -> int:
    """Insert or refresh ``person`` rows keyed by (crm, external_id); returns rows written."""
    rows = {p.external_id: person_values(crm, p) for p in people if p.external_id}
    if not rows:
        return 0
    statement = dialect_insert(conn, _PERSON)
    refreshed = {
        name: statement.excluded[name]
        for name in next(iter(rows.values()))
        if name not in ("crm", "external_id")
    }
    conn.execute(
        statement.on_conflict_do_update(index_elements=["crm", "external_id"], set_=refreshed),
        list(rows.values()),
    )
    return len(rows)


def _email(touch: Touch) -> str:
    return (touch.email or "").strip().lower()


def _text(fields: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return None
