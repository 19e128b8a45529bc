"""The identity graph in the ledger: people with their history, as attribution reads them.

``person`` rows keep the current state of each Lead or Contact (converted, merged, deleted);
``person_email`` keeps every address a person has had (with when it was first and, to the day,
last seen current), so touches sent to a former address still find their person.
``record_email_history`` snapshots the current addresses (call it after pulling people;
attribution and matching runs call it too), ``load_people`` turns the rows into
``AttributionPerson`` records, with accounts from accepted or automatic lead-to-account matches
for leads that have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time

from sqlalchemy import exists, insert, literal, select, update
from sqlmodel import Session

from sync.attribution.records import AttributionPerson
from sync.ledger.dialect import raw_rows, raw_time_parser
from sync.ledger.models import PersonEmailRow, PersonRow
from sync.ledger.types import UtcDateTime, utcnow

__all__ = ["load_people", "record_email_history"]


def record_email_history(session: Session, crm: str) -> int:
    """Remember the current address of every person of ``crm``; returns how many were new.

    Set-based, in the database: one INSERT ... SELECT adds the addresses not seen before, and
    one UPDATE refreshes ``last_seen_at`` (kept to the day) of the current addresses not yet
    seen today, so a second run on the same day over unchanged people writes nothing. Person
    addresses are stored trimmed and lower-cased (``EmailAddress``), as history rows are."""
    session.flush()
    now = utcnow()
    today = datetime.combine(now.date(), time(), tzinfo=UTC)
    history = PersonEmailRow.__table__  # type: ignore[attr-defined]
    person = PersonRow.__table__  # type: ignore[attr-defined]
    current = (
        person.c.crm == crm,
        person.c.external_id == history.c.person_external_id,
        person.c.email == history.c.email,
    )
    connection = session.connection()
    added = connection.execute(
        insert(history).from_select(
            ["crm", "person_external_id", "email", "first_seen_at", "last_seen_at"],
            select(
                person.c.crm,
                person.c.external_id,
                person.c.email,
                literal(now, UtcDateTime),
                literal(now, UtcDateTime),
            ).where(
                person.c.crm == crm,
                person.c.email.is_not(None),
                ~exists().where(history.c.crm == crm, *current[1:]),
            ),
        )
    ).rowcount
    connection.execute(
        update(history)
        .where(history.c.crm == crm, history.c.last_seen_at < today, exists().where(*current))
        .values(last_seen_at=now)
    )
    return int(added or 0)


def load_people(
    session: Session, crm: str, matched_accounts: Mapping[str, str] | None = None
) -> list[AttributionPerson]:
    """Every person of ``crm`` with all its addresses (current first) and its account."""
    history: dict[str, list[str]] = {}
    for person_id, email in raw_rows(
        session,
        "SELECT person_external_id, email FROM person_email WHERE crm = :crm "
        "ORDER BY first_seen_at, email",
        {"crm": crm},
    ):
        history.setdefault(person_id, []).append(email)
    matched = matched_accounts or {}
    parse = raw_time_parser(session)
    people = []
    for (
        external_id, kind, email, account_id, converted_account_id, converted,
        converted_contact_id, converted_opportunity_id, merged_into, deleted, created_at,
    ) in raw_rows(
        session,
        "SELECT external_id, kind, email, account_external_id, converted_account_external_id, "
        "converted, converted_contact_external_id, converted_opportunity_external_id, "
        "merged_into, deleted, created_at FROM person WHERE crm = :crm ORDER BY external_id",
        {"crm": crm},
    ):  # fmt: skip
        current = [email] if email else []
        former = [e for e in history.get(external_id, []) if e not in current]
        people.append(
            AttributionPerson(
                id=external_id,
                account_id=account_id or converted_account_id or matched.get(external_id),
                created_at=parse(created_at) if created_at is not None else None,
                is_lead=kind == "lead",
                converted_to=converted_contact_id if converted else None,
                converted_opportunity_id=converted_opportunity_id,
                merged_into=merged_into,
                deleted=bool(deleted),
                emails=tuple(current + former),
            )
        )
    return people
