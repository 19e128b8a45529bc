"""The identity graph in the ledger: people with their history, as attribution reads them.

``person`` rows keep the current state of each Lead or Contact (converted, merged, deleted);
``person_email`` keeps every address a person has had, so touches sent to a former address
still find their person. ``record_email_history`` snapshots the current addresses (call it after
pulling people; attribution and matching runs call it too), ``load_people`` turns the rows into
``AttributionPerson`` records, with accounts from accepted or automatic lead-to-account matches
for leads that have none.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import exists, insert, update
from sqlmodel import Session, col, select

from sync.attribution.records import AttributionPerson
from sync.ledger.models import PersonEmailRow, PersonRow
from sync.ledger.types import utcnow

__all__ = ["load_people", "record_email_history"]


def record_email_history(session: Session, crm: str) -> int:
    """Remember the current address of every person of ``crm``; returns how many were new.

    Set-based: the new addresses are inserted in one bulk statement and ``last_seen_at`` of the
    current ones is refreshed by one UPDATE, so a run over unchanged people costs two reads and
    one statement, not a write per person."""
    now = utcnow()
    table = PersonEmailRow.__table__  # type: ignore[attr-defined]
    known = set(
        session.execute(
            select(PersonEmailRow.person_external_id, PersonEmailRow.email).where(
                PersonEmailRow.crm == crm
            )
        ).all()
    )
    fresh: dict[tuple[str, str], None] = {}
    for external_id, email in session.execute(
        select(PersonRow.external_id, PersonRow.email).where(
            PersonRow.crm == crm, col(PersonRow.email).is_not(None)
        )
    ).all():
        address = email.strip().lower() if email else ""
        if address and (external_id, address) not in known:
            fresh[(external_id, address)] = None
    if fresh:
        session.execute(
            insert(table),
            [
                {"crm": crm, "person_external_id": person, "email": address,
                 "first_seen_at": now, "last_seen_at": now}
                for person, address in fresh
            ],
        )  # fmt: skip
    person = PersonRow.__table__.c  # type: ignore[attr-defined]
    session.execute(
        update(table)
        .where(
            table.c.crm == crm,
            table.c.last_seen_at < now,
            exists().where(
                person.crm == crm,
                person.external_id == table.c.person_external_id,
                person.email == table.c.email,
            ),
        )
        .values(last_seen_at=now)
    )
    return len(fresh)


def load_people(
    session: Session, crm: str, matched_accounts: Mapping[str, str] | None = None
) -> list[AttributionPerson]:
    """Every person of ``crm`` with all its addresses (current first) and its account."""
    history: dict[str, list[str]] = {}
    for person_id, email in session.exec(
        select(PersonEmailRow.person_external_id, PersonEmailRow.email)
        .where(PersonEmailRow.crm == crm)
        .order_by(col(PersonEmailRow.first_seen_at), col(PersonEmailRow.email))
    ).all():
        history.setdefault(person_id, []).append(email)
    matched = matched_accounts or {}
    people = []
    for row in session.exec(
        select(PersonRow).where(PersonRow.crm == crm).order_by(col(PersonRow.external_id))
    ).all():
        current = [row.email] if row.email else []
        former = [e for e in history.get(row.external_id, []) if e not in current]
        account = (
            row.account_external_id
            or row.converted_account_external_id
            or matched.get(row.external_id)
        )
        people.append(
            AttributionPerson(
                id=row.external_id,
                account_id=account,
                created_at=row.created_at,
                is_lead=row.kind == "lead",
                converted_to=row.converted_contact_external_id if row.converted else None,
                converted_opportunity_id=row.converted_opportunity_external_id,
                merged_into=row.merged_into,
                deleted=row.deleted,
                emails=tuple(current + former),
            )
        )
    return people
