"""Attributed revenue per campaign under each model: the input of ROI.

Two sources of credit, side by side:

- ``crm_primary_campaign``: each won deal's amount credited in full to the campaign the CRM
  names as its primary campaign source (always available; no touches needed);
- the attribution models of ``sync.attribution`` (first touch ... time decay, custom), run
  over the deals won in the period and the touches of their people.

Only the deals won in the report's period are attributed, and only the touches of the people
who can count for them are read (by e-mail, through the ``touch.email`` index), so a report
over a million-touch ledger reads a small fraction of it. The result is keyed by the same
campaign keys as spend (``CampaignResolver``), so ROI is one join.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from sync.analytics.load import fast_time, ledger_table, table_columns, utc
from sync.analytics.periods import Period
from sync.analytics.records import Deal
from sync.ledger.models import ContactRoleRow, OpportunityRow, PersonRow, TouchRow

__all__ = [
    "NO_CAMPAIGN",
    "PRIMARY_CAMPAIGN_MODEL",
    "attributed_revenue",
    "by_model_order",
    "credits_by_campaign",
    "model_label",
    "primary_campaign_credits",
    "won_in_period",
]

PRIMARY_CAMPAIGN_MODEL = "crm_primary_campaign"
MODEL_LABELS = {
    PRIMARY_CAMPAIGN_MODEL: "CRM primary campaign",
    "first_touch": "First touch",
    "lead_creation": "Lead creation",
    "last_touch": "Last touch",
    "linear": "Linear",
    "u_shaped": "U-shaped",
    "w_shaped": "W-shaped",
    "full_path": "Full path",
    "time_decay": "Time decay",
    "custom": "Custom",
}
NO_CAMPAIGN = "(no campaign)"
_CHUNK = 900  # bound parameters per IN (...) query, under SQLite's historic limit of 999


def model_label(model: str) -> str:
    """A model's display name (``w_shaped`` -> ``W-shaped``)."""
    return MODEL_LABELS.get(model, model.replace("_", " ").capitalize())


def won_in_period(deals: Iterable[Deal], period: Period) -> list[Deal]:
    """Deals won with a close date inside ``period``."""
    return [d for d in deals if d.is_closed and d.is_won and period.contains(d.close_date)]


def primary_campaign_credits(
    won: Iterable[Deal], resolve: Callable[[str | None], str | None]
) -> dict[str, Decimal]:
    """Won revenue per campaign, all of each deal to its CRM primary campaign source."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for deal in won:
        out[resolve(deal.campaign) or NO_CAMPAIGN] += deal.amount
    return dict(out)


def credits_by_campaign(
    attributions: Iterable[Any], resolve: Callable[[str | None], str | None]
) -> dict[str, dict[str, Decimal]]:
    """Sum ``OpportunityAttribution.credits`` into model -> campaign -> revenue."""
    out: dict[str, dict[str, Decimal]] = {}
    keys: dict[str | None, str] = {}
    for attribution in attributions:
        for model, credits in attribution.credits.items():
            per_campaign = out.setdefault(str(model), defaultdict(Decimal))
            for credit in credits:
                key = keys.get(credit.campaign)
                if key is None:
                    key = keys[credit.campaign] = resolve(credit.campaign) or NO_CAMPAIGN
                per_campaign[key] += credit.amount
    return {model: dict(per_campaign) for model, per_campaign in out.items()}


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _attribution_dataset(
    engine: Engine, external_ids: set[str], kinds: frozenset[str] | None
) -> Any:
    """Attribution records of the given opportunities, their people and those people's touches
    (of the counted ``kinds`` only, when given: sends and deliveries are most of a ledger)."""
    from sync.attribution.records import (
        AttributionOpportunity,
        AttributionPerson,
        AttributionRole,
        AttributionTouch,
        Dataset,
    )

    dataset = Dataset()
    ids = sorted(external_ids)
    opp_c, role_c = table_columns(OpportunityRow), table_columns(ContactRoleRow)
    person_c, touch_c = table_columns(PersonRow), table_columns(TouchRow)
    with engine.connect() as conn:
        opps = [
            row
            for chunk in _chunks(ids)
            for row in conn.execute(
                select(ledger_table(OpportunityRow)).where(opp_c.external_id.in_(chunk))
            ).mappings()
        ]
        roles = [
            row
            for chunk in _chunks(ids)
            for row in conn.execute(
                select(ledger_table(ContactRoleRow)).where(
                    role_c.opportunity_external_id.in_(chunk)
                )
            ).mappings()
        ]
        accounts = sorted({o["account_external_id"] for o in opps if o["account_external_id"]})
        role_people = sorted({r["person_external_id"] for r in roles})
        people: dict[str, Any] = {}
        for column, values in (
            (person_c.account_external_id, accounts),
            (person_c.converted_account_external_id, accounts),
            (person_c.external_id, role_people),
            (person_c.converted_contact_external_id, role_people),
            (person_c.converted_opportunity_external_id, ids),
        ):
            for chunk in _chunks(values):
                for row in conn.execute(
                    select(ledger_table(PersonRow)).where(column.in_(chunk))
                ).mappings():
                    people[row["external_id"]] = row
        by_email: dict[str, str] = {}
        for row in sorted(
            people.values(), key=lambda r: (r["kind"] != "contact", r["external_id"])
        ):
            if row["email"] and not row["deleted"]:
                by_email.setdefault(row["email"], row["external_id"])
        touches: list[Any] = []
        columns = (
            touch_c.key,
            touch_c.email,
            fast_time(touch_c.occurred_at),
            touch_c.kind,
            touch_c.campaign,
            touch_c.channel,
        )
        for chunk in _chunks(sorted(by_email)):
            query = select(*columns).where(touch_c.email.in_(chunk))
            if kinds is not None:
                query = query.where(touch_c.kind.in_(sorted(kinds)))
            touches.extend(conn.execute(query))
    for o in opps:
        if o["deleted"] or o["merged_into"]:
            continue
        dataset.opportunities.append(
            AttributionOpportunity(
                id=o["external_id"],
                account_id=o["account_external_id"],
                amount=o["amount"],
                created_at=o["created_at"],
                close_date=o["close_date"],
                is_closed=bool(o["is_closed"]),
                is_won=bool(o["is_won"]),
                campaign_id=o["campaign_external_id"],
            )
        )
    dataset.roles.extend(
        AttributionRole(
            r["opportunity_external_id"], r["person_external_id"], r["is_primary"], r["deleted"]
        )
        for r in roles
    )
    for p in people.values():
        dataset.people.append(
            AttributionPerson(
                id=p["external_id"],
                account_id=p["account_external_id"] or p["converted_account_external_id"],
                created_at=p["created_at"],
                is_lead=p["kind"] == "lead",
                converted_to=p["converted_contact_external_id"] if p["converted"] else None,
                converted_opportunity_id=p["converted_opportunity_external_id"],
                merged_into=p["merged_into"],
                deleted=bool(p["deleted"]),
                emails=(p["email"],) if p["email"] else (),
            )
        )
    for t in touches:
        dataset.touches.append(
            AttributionTouch(
                key=t.key,
                person_id=by_email[t.email],
                occurred_at=utc(t.occurred_at),
                kind=t.kind,
                campaign=t.campaign,
                channel=t.channel,
            )
        )
    return dataset


def attributed_revenue(
    engine: Engine,
    won: Sequence[Deal],
    resolve: Callable[[str | None], str | None],
    as_of: datetime,
    *,
    models: Sequence[str] | None = None,
    params: Any = None,
) -> tuple[dict[str, dict[str, Decimal]], list[str]]:
    """Model -> campaign -> revenue for the ``won`` deals, and notes on what was left out."""
    notes: list[str] = []
    result: dict[str, dict[str, Decimal]] = {}
    try:
        from sync.attribution.models import DEFAULT_COUNTED_KINDS, Attributor, Model
    except ImportError:
        notes.append(
            "Touch-based attribution models are not available in this installation; "
            "revenue is credited to each deal's CRM primary campaign only."
        )
    else:
        chosen = list(models) if models is not None else [m.value for m in Model if m != "custom"]
        if params is not None and getattr(params, "custom", None) is not None and models is None:
            chosen.append(Model.CUSTOM.value)
        external = {deal.key.split(":", 1)[1] for deal in won if ":" in deal.key}
        if external:
            kinds = getattr(params, "counted_kinds", DEFAULT_COUNTED_KINDS)
            dataset = _attribution_dataset(engine, external, kinds)
            attributor = Attributor(dataset, params, as_of)
            result = credits_by_campaign(
                (attributor.attribute(o, chosen) for o in attributor.opportunities), resolve
            )
            if not dataset.touches:
                notes.append(
                    "No touches were found for the people on the won deals: touch-based "
                    "models credit nothing; the CRM primary campaign still does."
                )
        for model in chosen:
            result.setdefault(model, {})
    result[PRIMARY_CAMPAIGN_MODEL] = primary_campaign_credits(won, resolve)
    return result, notes


def by_model_order(credits: Mapping[str, Mapping[str, Decimal]], first: str | None) -> list[str]:
    """Model names with ``first`` (the report's default model) leading when present."""
    names = list(credits)
    if first in names:
        names.remove(first)
        names.insert(0, first)
    return names
