"""A ledger filled straight from the sandbox's seed world: for previews, tests and benchmarks.

``fill_from_world`` writes what the sync pipelines would have written after syncing the seed
company (``sandbox.seed``) into an empty, migrated ledger, with bulk Core inserts
(a million touches in seconds, not minutes). It is not a pipeline: no CRM is called and no
cursor moves. Vocabulary:

- people are Leads or Contacts of the CRM connection ``crm`` (marketing-only people appear
  only through their touches, like in a real ledger);
- the seed's ``lifecycle_stage`` events carry the shared stage; its Salesforce ``Status``
  events are stored as status changes (the first sales action after a hand-off);
- touches are Marketo activities (``marketo:<id>``) naming their program by name, as Marketo
  does; the CRM campaigns carry their ids, names, channels and costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from sandbox.world import World
from sync.analytics.load import ledger_table
from sync.ledger.models import (
    CampaignRow,
    ContactRoleRow,
    DispositionRow,
    OpportunityRow,
    PersonRow,
    TouchRow,
)
from sync.mapping.model import Stage

__all__ = ["fill_from_world"]

_BATCH = 20_000
_STAGES = {stage.value.casefold(): stage.value for stage in Stage}


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(engine: Engine, model: type[Any], rows: Iterable[dict[str, Any]]) -> int:
    table = ledger_table(model)
    count = 0
    with engine.begin() as conn:
        for batch in _batches(rows):
            conn.execute(insert(table), batch)
            count += len(batch)
    return count


def fill_from_world(
    engine: Engine,
    world: World,
    *,
    crm: str = "salesforce",
    source: str = "marketo",
    copies: int = 1,
) -> dict[str, int]:
    """Write the world's people, history, touches, campaigns and deals; returns row counts.

    ``copies`` > 1 writes the company's people, history, touches and deals that many times
    (ids suffixed ``~2``, ``~3`` ..., e-mails ``name+2@domain``): a large ledger with the
    same shape, much faster than generating a large world.
    """
    counts: dict[str, int] = {}
    counts["campaign"] = _campaigns(engine, world, crm)
    for copy in range(1, copies + 1):
        for table, count in _copy(engine, world, crm, source, copy).items():
            counts[table] = counts.get(table, 0) + count
    return counts


def _campaigns(engine: Engine, world: World, crm: str) -> int:
    return _insert(
        engine,
        CampaignRow,
        (
            {
                "crm": crm,
                "external_id": c.id,
                "name": c.name,
                "channel": c.channel,
                "status": "Completed" if c.end_date <= world.now else "In Progress",
                "actual_cost": c.actual_cost,
                "budgeted_cost": c.budgeted_cost,
                "currency": "USD",
                "start_date": c.start_date,
                "end_date": c.end_date,
                "created_at": c.start_date,
            }
            for c in world.campaigns
        ),
    )


def _copy(engine: Engine, world: World, crm: str, source: str, copy: int) -> dict[str, int]:
    """One copy of everything but the campaigns (copy 1 keeps the world's own ids)."""
    tag = "" if copy == 1 else f"~{copy}"

    def ref(value: str) -> str:
        return value + tag

    def mail(address: str) -> str:
        if copy == 1:
            return address
        local, _, domain = address.partition("@")
        return f"{local}+{copy}@{domain}"

    emails = {p.id: mail(p.email) for p in world.people}
    by_id = {p.id: p for p in world.people}
    campaigns = {c.id: c for c in world.campaigns}
    people = [p for p in world.people if p.crm_kind in ("lead", "contact")]
    counts: dict[str, int] = {}
    counts["person"] = _insert(
        engine,
        PersonRow,
        (
            {
                "crm": crm,
                "external_id": ref(p.id),
                "kind": p.crm_kind,
                "email": emails[p.id],
                "first_name": p.first_name,
                "last_name": p.last_name,
                "company": p.company,
                "account_external_id": ref(p.account_id) if p.account_id else None,
                "owner_id": p.owner_id,
                "status": p.lead_status or None,
                "lifecycle_stage": _STAGES.get(p.lifecycle_stage.casefold()),
                "lead_source": p.lead_source,
                "score": float(p.score),
                "converted": p.converted_at is not None,
                "created_at": p.created_at,
                "updated_at": p.updated_at,
            }
            for p in people
        ),
    )
    counts["disposition"] = _insert(
        engine,
        DispositionRow,
        (
            {
                "crm": crm,
                "object_type": e.object_type,
                "object_id": ref(e.object_id),
                "email": emails.get(e.object_id),
                "field": e.field,
                "old_value": e.old_value,
                "new_value": e.new_value,
                "lifecycle_stage": _STAGES.get(e.new_value.casefold())
                if e.field == "lifecycle_stage"
                else None,
                "reason": e.reason,
                "owner_id": e.owner_id,
                "changed_at": e.changed_at,
            }
            for e in world.status_events
        ),
    )
    counts["opportunity"] = _insert(
        engine,
        OpportunityRow,
        (
            {
                "crm": crm,
                "external_id": ref(o.id),
                "name": o.name,
                "account_external_id": ref(o.account_id),
                "stage": o.stage,
                "amount": Decimal(o.amount),
                "currency": "USD",
                "is_closed": o.is_closed,
                "is_won": o.is_won,
                "close_date": o.close_date,
                "campaign_external_id": o.campaign_id,
                "owner_id": o.owner_id,
                "created_at": o.created_at,
            }
            for o in world.opportunities
        ),
    )
    counts["contact_role"] = _insert(
        engine,
        ContactRoleRow,
        (
            {
                "crm": crm,
                "external_id": ref(r.id),
                "opportunity_external_id": ref(r.opportunity_id),
                "person_external_id": ref(r.person_id),
                "role": r.role,
                "is_primary": r.is_primary,
            }
            for r in world.contact_roles
        ),
    )
    counts["touch"] = _insert(
        engine,
        TouchRow,
        (
            {
                "key": f"{source}:{a.id}{tag}",
                "source": source,
                "source_id": f"{a.id}{tag}",
                "kind": a.kind,
                "occurred_at": a.occurred_at,
                "email": emails[a.person_id],
                "campaign": campaigns[a.campaign_id].name if a.campaign_id in campaigns else None,
                "channel": campaigns[a.campaign_id].channel if a.campaign_id in campaigns else None,
                "asset": a.asset,
                "attributes": dict(a.attributes),
                "raw": {},
            }
            for a in world.activities
            if a.person_id in by_id
        ),
    )
    return counts
