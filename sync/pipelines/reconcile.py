"""The graph reconcile pipeline: the CRM's accounts, opportunities, contact roles, campaigns
(with their costs) and people (conversions, merges, deletions) copied into the ledger.

Each stream is pulled incrementally with its own cursor; every page is upserted keyed by
``(crm, external_id)`` and committed together with the advanced cursor in one fenced
transaction. Deleted CRM records keep their row with ``deleted`` set, because attribution
history still points at them. A campaign's actual cost becomes a ``campaign_cost`` row of
origin ``crm`` over the campaign's dates. The CRM's users (Salesforce User, HubSpot owners: the
``owners`` stream) go to ``crm_user``, so reports name reps instead of showing owner ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table

from connectors.base import Account, Campaign, ContactRole, Cursor, Opportunity, Owner, Person
from connectors.errors import ConfigError
from sync.ledger.dialect import dialect_insert
from sync.ledger.models import (
    AccountRow,
    CampaignCostRow,
    CampaignRow,
    ContactRoleRow,
    CostOrigin,
    CrmUserRow,
    OpportunityRow,
)
from sync.ledger.types import utcnow
from sync.pipelines.context import cursor_value
from sync.pipelines.rows import upsert_people

if TYPE_CHECKING:
    from sync.pipelines.context import RunContext

__all__ = ["RECONCILE_STREAMS", "pull_stream", "run_reconcile", "upsert_graph", "upsert_rows"]

RECONCILE_STREAMS = ("accounts", "people", "opportunities", "contact_roles", "campaigns", "owners")

_ACCOUNT: Table = AccountRow.__table__  # type: ignore[attr-defined]
_OPPORTUNITY: Table = OpportunityRow.__table__  # type: ignore[attr-defined]
_ROLE: Table = ContactRoleRow.__table__  # type: ignore[attr-defined]
_CAMPAIGN: Table = CampaignRow.__table__  # type: ignore[attr-defined]
_COST: Table = CampaignCostRow.__table__  # type: ignore[attr-defined]
_USER: Table = CrmUserRow.__table__  # type: ignore[attr-defined]


def upsert_rows(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> int:
    """Insert ``rows`` into ``table`` or update the row with the same ``keys``."""
    if not rows:
        return 0
    statement = dialect_insert(conn, table)
    refreshed = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    conn.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=refreshed),
        [dict(r) for r in rows],
    )
    return len(rows)


def opportunity_values(crm: str, opp: Opportunity) -> dict[str, Any]:
    """The ``opportunity`` row columns of a CRM deal."""
    return {
        "crm": crm,
        "external_id": opp.external_id,
        "name": opp.name,
        "account_external_id": opp.account_id,
        "stage": opp.stage,
        "amount": opp.amount,
        "currency": opp.currency,
        "is_closed": opp.is_closed,
        "is_won": opp.is_won,
        "close_date": opp.close_date,
        "campaign_external_id": opp.campaign_id,
        "owner_id": opp.owner_id,
        "deleted": opp.deleted,
        "created_at": opp.created_at,
        "updated_at": opp.updated_at,
        "pulled_at": utcnow(),
    }


def _day(value: Any) -> date | None:
    if value is None:
        return None
    return value.date() if hasattr(value, "date") else value  # type: ignore[no-any-return]


def upsert_graph(conn: Connection, crm: str, records: Iterable[Any]) -> dict[str, int]:
    """Upsert a page of graph records of any supported type; returns counts per table."""
    now = utcnow()
    accounts, opps, roles, campaigns, costs, people, users = [], [], [], [], [], [], []
    for record in records:
        if isinstance(record, Account):
            accounts.append({
                "crm": crm, "external_id": record.external_id, "name": record.name,
                "domain": record.domain, "owner_id": record.owner_id,
                "deleted": record.deleted, "updated_at": record.updated_at, "pulled_at": now,
            })  # fmt: skip
        elif isinstance(record, Opportunity):
            opps.append(opportunity_values(crm, record))
        elif isinstance(record, ContactRole):
            roles.append({
                "crm": crm, "external_id": record.external_id,
                "opportunity_external_id": record.opportunity_id,
                "person_external_id": record.person_id, "role": record.role,
                "is_primary": record.is_primary, "deleted": record.deleted,
                "updated_at": record.updated_at, "pulled_at": now,
            })  # fmt: skip
        elif isinstance(record, Campaign):
            campaigns.append({
                "crm": crm, "external_id": record.external_id, "name": record.name,
                "channel": record.channel, "actual_cost": record.actual_cost,
                "budgeted_cost": record.budgeted_cost, "start_date": record.start_date,
                "end_date": record.end_date, "deleted": record.deleted,
                "updated_at": record.updated_at, "pulled_at": now,
            })  # fmt: skip
            start = _day(record.start_date) or _day(record.updated_at)
            if record.actual_cost is not None and start is not None:
                costs.append({
                    "crm": crm, "campaign_external_id": record.external_id,
                    "period_start": start, "period_end": _day(record.end_date) or start,
                    "amount": record.actual_cost, "origin": CostOrigin.CRM.value,
                    "updated_at": now,
                })  # fmt: skip
        elif isinstance(record, Person):
            people.append(record)
        elif isinstance(record, Owner):
            users.append({
                "crm": crm, "external_id": record.external_id, "name": record.name,
                "email": record.email, "active": not record.deleted, "pulled_at": now,
            })  # fmt: skip
    counts = {
        "accounts": upsert_rows(conn, _ACCOUNT, accounts, ("crm", "external_id")),
        "opportunities": upsert_rows(conn, _OPPORTUNITY, opps, ("crm", "external_id")),
        "contact_roles": upsert_rows(conn, _ROLE, roles, ("crm", "external_id")),
        "campaigns": upsert_rows(conn, _CAMPAIGN, campaigns, ("crm", "external_id")),
        "campaign_costs": upsert_rows(
            conn, _COST, costs, ("crm", "campaign_external_id", "period_start", "origin")
        ),
        "people": upsert_people(conn, crm, people),
        "users": upsert_rows(conn, _USER, users, ("crm", "external_id")),
    }
    counts["conversions"] = sum(1 for p in people if p.converted)
    counts["deleted"] = sum(
        1 for r in [*accounts, *opps, *roles, *campaigns] if r["deleted"]
    ) + sum(1 for p in people if p.deleted)
    return counts


def pull_stream(ctx: RunContext, crm: Any, stream: str) -> Any:
    """The pages of ``stream`` since its cursor, or None (with a note) when not offered.

    A connector names the streams it has in ``change_streams``; one that does not is asked
    anyway and may answer NotImplementedError. Any other failure is the run's failure: a
    misconfigured stream must not pass for a missing one.
    """
    offered = getattr(crm, "change_streams", None)
    if isinstance(offered, tuple) and stream not in offered:
        ctx.note(f"{ctx.pipeline.source} has no {stream!r} stream: skipped")
        return None
    cursor = Cursor(cursor_value(ctx.since)) if ctx.since is not None else ctx.load_cursor(stream)
    try:
        pages = iter(crm.pull_changes(stream, cursor, until=ctx.started_at))
        first = next(pages, None)
    except NotImplementedError as exc:
        ctx.note(f"{ctx.pipeline.source} does not offer the {stream!r} stream: {exc}")
        return None
    if first is None:
        return iter(())

    def chained() -> Any:
        yield first
        yield from pages

    return chained()


def run_reconcile(ctx: RunContext) -> None:
    """Run a reconcile pipeline once: every graph stream, page by page, with cursors."""
    source = ctx.pipeline.source
    if source is None:
        raise ConfigError(f"pipeline {ctx.name!r} needs a CRM as its source")
    crm = ctx.connections.crm(source)
    for stream in RECONCILE_STREAMS:
        pages = pull_stream(ctx, crm, stream)
        if pages is None:
            continue
        for page in pages:
            with ctx.transaction() as conn:
                counts = upsert_graph(conn, source, page.records)
                ctx.save_cursor(conn, stream, page.cursor)
            for name, value in counts.items():
                ctx.add(name, value)
            ctx.progress(stream, len(page.records))
            ctx.check_stop()
