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

from sqlmodel import Session, col, select

from sync.attribution.records import AttributionPerson
from sync.ledger.models import PersonEmailRow, PersonRow
from sync.ledger.types import utcnow

__all__ = ["load_people", "record_email_history"]


def record_email_history(session: Session, crm: str) -> int:
    """Remember the current address of every person of ``crm``; returns how many were new."""
    now = utcnow()
    known = {
        (row.person_external_id, row.email): row
        for row in session.exec(select(PersonEmailRow).where(PersonEmailRow.crm == crm)).all()
    }
    added = 0
    people = session.exec(
        select(PersonRow.external_id, PersonRow.email).where(
            PersonRow.crm == crm, col(PersonRow.email).is_not(None)
        )
    ).all()
    for external_id, email in people:
        if email is None:
            continue
        address = email.strip().lower()
        row = known.get((external_id, address))
        if row is None:
            row = PersonEmailRow(
                crm=crm, person_external_id=external_id, email=address, first_seen_at=now
            )
            known[(external_id, address)] = row
            added += 1
        row.last_seen_at = now
        session.add(row)
    session.flush()
    return added


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
