"""Reading the ledger into analytics records (the only module here that touches the database).

- People: ``person`` rows keyed ``<crm>:<external id>``; a converted lead's contact and a merged
  record's loser are aliases of the same key, so one person has one history; their account.
- Events: ``disposition`` rows of people (deal stage changes are read as deals instead).
  ``object_type`` task / call / email / meeting / event rows are sales tasks; ``owner`` fields
  are reassignments; everything else is a status change. The shared stage is the row's
  ``lifecycle_stage`` or, when the pipeline left it empty, the mapping's translation of its
  value.
- Memberships: one query grouping ``touch`` rows by (email, campaign, channel) with the first
  time, so a million touches come back as far fewer rows.
- Deals, with their account and the people of their (not deleted) contact roles.
- Channels (of campaigns and of touches) by the report's names (``sync.analytics.channels``).
- Campaigns, spend (``campaign_cost`` rows, else the campaign's actual cost over its dates;
  YAML costs from ``analytics.campaign_costs`` replace a campaign's CRM figures) and deals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, Table, func, select, true, type_coerce

from sync.analytics.channels import channel_name
from sync.analytics.records import (
    CampaignInfo,
    Dataset,
    Deal,
    Event,
    EventKind,
    Membership,
    PersonFacts,
    Spend,
)
from sync.analytics.settings import CampaignCost
from sync.ledger.models import (
    LEDGER_METADATA,
    CampaignCostRow,
    CampaignRow,
    ContactRoleRow,
    CostOrigin,
    DispositionRow,
    LedgerModel,
    OpportunityRow,
    PersonRow,
    TouchRow,
)
from sync.mapping.lifecycle import LIFECYCLE_STAGE, CompiledLifecycle
from sync.mapping.model import Stage

__all__ = ["TASK_OBJECTS", "CampaignResolver", "load_dataset", "stage_of"]

TASK_OBJECTS = frozenset({"task", "call", "email", "meeting", "event"})
DEAL_OBJECTS = frozenset({"opportunity", "deal"})
OWNER_FIELDS = frozenset({"owner", "owner_id", "ownerid", "hubspot_owner_id"})
_STAGES = {stage.value.casefold(): stage for stage in Stage}


def fast_time(column: Any) -> Any:
    """``column`` (a ``UtcDateTime``) read without per-row type processing; see ``as_utc``."""
    return type_coerce(column, String).label(column.name)


def as_utc(value: Any) -> datetime | None:
    """An aware UTC datetime from a ``fast_time`` value (SQLite text or a driver datetime).

    Reading a million times through the column type costs seconds; one C-level parse does not.
    """
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value + "+00:00")


def utc(value: Any) -> datetime:
    """``as_utc`` for a NOT NULL column."""
    found = as_utc(value)
    if found is None:
        raise ValueError("a NOT NULL time column returned NULL")
    return found


def ledger_table(model: type[LedgerModel]) -> Table:
    """The Core table of a ledger model, for column-only selects (fast, typed as Core)."""
    return LEDGER_METADATA.tables[str(model.__tablename__)]


def table_columns(model: type[LedgerModel]) -> Any:
    """The Core columns (``.c``) of a ledger model's table."""
    return ledger_table(model).c


_P = table_columns(PersonRow)
_D = table_columns(DispositionRow)
_C = table_columns(CampaignRow)
_CC = table_columns(CampaignCostRow)
_O = table_columns(OpportunityRow)
_T = table_columns(TouchRow)
_R = table_columns(ContactRoleRow)


def _of(crm_column: Any, crms: Collection[str] | None) -> ColumnElement[bool]:
    """Rows of the chosen CRMs (every CRM when ``crms`` is None)."""
    return true() if crms is None else crm_column.in_(sorted(crms))


def stage_of(
    lifecycle_stage: str | None,
    value: str | None,
    field: str,
    lifecycle: CompiledLifecycle | None,
) -> Stage | None:
    """The shared stage of a disposition: its own column, else the mapping's translation."""
    if lifecycle_stage:
        found = _STAGES.get(lifecycle_stage.strip().casefold())
        if found is not None:
            return found
    if lifecycle is None or not value:
        return None
    if field in (lifecycle.status_field, lifecycle.lifecycle_field, LIFECYCLE_STAGE):
        return lifecycle.stage_for(value, field)
    return None


class CampaignResolver:
    """Campaign references (external id or name, any case, or a configured alias such as a
    Marketo program id) -> the campaign's key."""

    def __init__(
        self, campaigns: Iterable[CampaignInfo], aliases: Mapping[str, str] | None = None
    ) -> None:
        self._ids: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for campaign in campaigns:
            self._ids[campaign.key] = campaign.key
            self._names.setdefault(campaign.name.strip().casefold(), campaign.key)
        for alias, target in (aliases or {}).items():
            self._ids.setdefault(alias, self(target) or target)

    def __call__(self, reference: str | None) -> str | None:
        """The key of the campaign ``reference`` names (itself when unknown); None for none."""
        if reference is None or not reference.strip():
            return None
        found = self._ids.get(reference)
        if found is None:
            found = self._names.get(reference.strip().casefold(), reference)
        return found


def _people(
    engine: Engine, crms: Collection[str] | None
) -> tuple[dict[str, PersonFacts], dict[tuple[str, str], str]]:
    """Person facts by key, and (crm, external id) -> key for aliases (contacts, merges)."""
    columns = (
        _P.crm,
        _P.external_id,
        _P.kind,
        _P.email,
        _P.owner_id,
        _P.lead_source,
        fast_time(_P.created_at),
        _P.converted_contact_external_id,
        _P.merged_into,
        _P.account_external_id,
        _P.converted_account_external_id,
        _P.deleted,
    )
    aliases: dict[tuple[str, str], str] = {}
    rows = []
    with engine.connect() as conn:
        rows = list(conn.execute(select(*columns).where(_of(_P.crm, crms))))
    for row in rows:
        key = f"{row.crm}:{row.external_id}"
        if row.converted_contact_external_id:
            aliases[(row.crm, row.converted_contact_external_id)] = key
    for row in rows:
        if row.merged_into:
            aliases[(row.crm, row.external_id)] = aliases.get(
                (row.crm, row.merged_into), f"{row.crm}:{row.merged_into}"
            )
    people: dict[str, PersonFacts] = {}
    for row in rows:
        key = aliases.get((row.crm, row.external_id), f"{row.crm}:{row.external_id}")
        previous = people.get(key)
        account = row.account_external_id or row.converted_account_external_id
        # The lead record carries the source and the first owner; keep what it says.
        people[key] = PersonFacts(
            key=key,
            email=(previous.email if previous else None) or row.email,
            owner=(previous.owner if previous else None) or row.owner_id,
            source=(previous.source if previous else None) or row.lead_source,
            created_at=_earliest(previous.created_at if previous else None, as_utc(row.created_at)),
            account=(previous.account if previous else None)
            or (f"{row.crm}:{account}" if account and not row.deleted else None),
        )
    return people, aliases


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _events(
    engine: Engine,
    aliases: Mapping[tuple[str, str], str],
    lifecycles: Mapping[str, CompiledLifecycle],
    crms: Collection[str] | None,
) -> list[Event]:
    columns = (
        _D.id,
        _D.crm,
        _D.object_type,
        _D.object_id,
        _D.field,
        _D.new_value,
        _D.lifecycle_stage,
        _D.reason,
        _D.owner_id,
        fast_time(_D.changed_at),
    )
    query = select(*columns).where(_D.object_type.not_in(sorted(DEAL_OBJECTS)), _of(_D.crm, crms))
    events: list[Event] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            object_type = (row.object_type or "").casefold()
            key = aliases.get((row.crm, row.object_id), f"{row.crm}:{row.object_id}")
            if object_type in TASK_OBJECTS:
                kind, stage = EventKind.TASK, None
            elif row.field.casefold() in OWNER_FIELDS:
                kind, stage = EventKind.OWNER, None
            else:
                kind = EventKind.STATUS
                stage = stage_of(
                    row.lifecycle_stage, row.new_value, row.field, lifecycles.get(row.crm)
                )
            events.append(
                Event(
                    person=key,
                    at=utc(row.changed_at),
                    kind=kind,
                    stage=stage,
                    value=row.new_value,
                    owner=row.owner_id,
                    reason=row.reason,
                    seq=row.id or 0,
                )
            )
    return events


def _campaigns(
    engine: Engine, crms: Collection[str] | None
) -> tuple[dict[str, CampaignInfo], list[Any]]:
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                select(
                    _C.external_id,
                    _C.name,
                    _C.channel,
                    _C.actual_cost,
                    _C.start_date,
                    _C.end_date,
                    _C.created_at,
                    _C.deleted,
                ).where(_of(_C.crm, crms))
            )
        )
    infos = {
        r.external_id: CampaignInfo(r.external_id, r.name, channel_name(r.channel)) for r in rows
    }
    return infos, rows


def _memberships(
    engine: Engine, email_to_person: Mapping[str, str], resolve: CampaignResolver
) -> list[Membership]:
    # Times compare correctly as stored (ISO text on SQLite), so MIN needs no conversion.
    first = type_coerce(func.min(_T.occurred_at), String).label("first_at")
    query = (
        select(_T.email, _T.campaign, func.max(_T.channel), first)
        .where(_T.email.is_not(None))
        .group_by(_T.email, _T.campaign)
    )
    merged: dict[tuple[str, str | None], tuple[Any, str | None]] = {}
    resolved: dict[str | None, str | None] = {}
    with engine.connect() as conn:
        for email, campaign, channel, first_at in conn.execute(query):
            person = email_to_person.get(email) or f"email:{email}"
            if campaign in resolved:
                key = resolved[campaign]
            else:
                key = resolved[campaign] = resolve(campaign)
            seen = merged.get((person, key))
            if seen is None or first_at < seen[0]:
                merged[(person, key)] = (first_at, channel)
    return [
        Membership(person, key, utc(first_at), channel_name(channel))
        for (person, key), (first_at, channel) in merged.items()
    ]


def _spend(
    engine: Engine,
    campaign_rows: Sequence[Any],
    yaml_costs: Sequence[CampaignCost],
    resolve: CampaignResolver,
    today: date,
    *,
    crms: Collection[str] | None,
) -> list[Spend]:
    with engine.connect() as conn:
        costs = list(
            conn.execute(
                select(
                    _CC.campaign_external_id,
                    _CC.period_start,
                    _CC.period_end,
                    _CC.amount,
                    _CC.origin,
                ).where(_of(_CC.crm, crms))
            )
        )
    crm: dict[str, list[Spend]] = defaultdict(list)
    yaml: dict[str, list[Spend]] = defaultdict(list)
    for row in costs:
        target = yaml if row.origin == CostOrigin.YAML.value else crm
        target[row.campaign_external_id].append(
            Spend(row.campaign_external_id, Decimal(row.amount), row.period_start, row.period_end)
        )
    for cost in yaml_costs:
        key = resolve(cost.campaign) or cost.campaign
        yaml[key].append(Spend(key, cost.amount, cost.start, cost.end))
    for row in campaign_rows:
        if row.deleted or row.actual_cost is None or row.external_id in crm:
            continue
        start = row.start_date or row.created_at
        first = start.date() if start is not None else today
        last = row.end_date.date() if row.end_date is not None else first
        crm[row.external_id].append(
            Spend(row.external_id, Decimal(row.actual_cost), first, max(first, last))
        )
    out: list[Spend] = []
    for campaign in sorted(set(crm) | set(yaml)):
        out.extend(yaml.get(campaign) or crm[campaign])
    return out


def _contact_roles(
    engine: Engine, aliases: Mapping[tuple[str, str], str], crms: Collection[str] | None
) -> dict[str, tuple[str, ...]]:
    """Deal key -> the person keys with a (not deleted) contact role on it."""
    query = select(_R.crm, _R.opportunity_external_id, _R.person_external_id).where(
        _R.deleted.is_(False), _of(_R.crm, crms)
    )
    roles: dict[str, dict[str, None]] = defaultdict(dict)
    with engine.connect() as conn:
        for crm, opportunity, person in conn.execute(query):
            key = aliases.get((crm, person), f"{crm}:{person}")
            roles[f"{crm}:{opportunity}"][key] = None
    return {deal: tuple(people) for deal, people in roles.items()}


def _deals(
    engine: Engine, roles: Mapping[str, tuple[str, ...]], crms: Collection[str] | None
) -> list[Deal]:
    query = select(
        _O.crm,
        _O.external_id,
        _O.name,
        _O.amount,
        _O.created_at,
        _O.close_date,
        _O.is_closed,
        _O.is_won,
        _O.campaign_external_id,
        _O.owner_id,
        _O.pulled_at,
        _O.account_external_id,
    ).where(_O.deleted.is_(False), _O.merged_into.is_(None), _of(_O.crm, crms))
    deals: list[Deal] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            key = f"{row.crm}:{row.external_id}"
            deals.append(
                Deal(
                    key=key,
                    amount=Decimal(row.amount) if row.amount is not None else Decimal(0),
                    created_at=row.created_at or row.close_date or row.pulled_at,
                    close_date=row.close_date,
                    is_closed=bool(row.is_closed),
                    is_won=bool(row.is_won),
                    campaign=row.campaign_external_id,
                    owner=row.owner_id,
                    name=row.name,
                    account=f"{row.crm}:{row.account_external_id}"
                    if row.account_external_id
                    else None,
                    contacts=roles.get(key, ()),
                )
            )
    return deals


def load_dataset(
    engine: Engine,
    now: datetime,
    lifecycles: Mapping[str, CompiledLifecycle] | None = None,
    campaign_costs: Sequence[CampaignCost] = (),
    *,
    campaign_aliases: Mapping[str, str] | None = None,
    crms: Collection[str] | None = None,
) -> Dataset:
    """Everything the report reads from the ledger, as plain records (of ``crms`` only, when
    given: touches belong to no CRM and are always read)."""
    lifecycles = lifecycles or {}
    people, aliases = _people(engine, crms)
    campaigns, campaign_rows = _campaigns(engine, crms)
    resolve = CampaignResolver(campaigns.values(), campaign_aliases)
    email_to_person: dict[str, str] = {}
    for key, facts in people.items():
        if facts.email:
            email_to_person.setdefault(facts.email, key)
    return Dataset(
        now=now,
        people=people,
        events=_events(engine, aliases, lifecycles, crms),
        memberships=_memberships(engine, email_to_person, resolve),
        campaigns=campaigns,
        spend=_spend(engine, campaign_rows, campaign_costs, resolve, now.date(), crms=crms),
        deals=_deals(engine, _contact_roles(engine, aliases, crms), crms),
    )
