"""Attribution over the ledger: load the graph, fingerprint the inputs, store versioned runs.

A run reads one CRM's people (with email history and lead-to-account matches), opportunities,
contact roles and every touch that resolves to one of its people (by ``person_ref``, else by a
current or former address), attributes every opportunity under the chosen models and stores
an ``attribution_run`` (its id is the run's version) with its credits and per-opportunity
outcomes. The fingerprint is a SHA-256 of the sorted input rows, the parameters, the models,
``as_of`` and ``ALGORITHM_VERSION``: the same inputs always give the same fingerprint and the
same credits, and a run whose fingerprint matches the latest stored one is not stored twice.

``as_of`` (the end of the window of open opportunities) defaults to the next UTC midnight, so
runs on the same day over the same data are reproducible.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, insert
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from sync.attribution.graph import IdentityGraph
from sync.attribution.models import (
    ALGORITHM_VERSION,
    AttributionParams,
    Attributor,
    Model,
)
from sync.attribution.records import (
    AttributionOpportunity,
    AttributionRole,
    AttributionTouch,
    Dataset,
)
from sync.identity_graph import load_people, record_email_history
from sync.ledger.models import (
    AttributionCreditRow,
    AttributionOutcomeRow,
    AttributionRunRow,
    CampaignRow,
    ContactRoleRow,
    OpportunityRow,
    TouchRow,
)
from sync.ledger.types import utcnow
from sync.matching import linked_accounts

__all__ = [
    "RunReport",
    "crms_with_opportunities",
    "default_as_of",
    "fingerprint",
    "latest_run",
    "load_dataset",
    "run_attribution",
    "summarize",
]

_BATCH = 5_000
_TOUCH: Table = TouchRow.__table__  # type: ignore[attr-defined]


def default_as_of(now: datetime | None = None) -> datetime:
    """The next UTC midnight: the end of the window of open opportunities for runs today."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)


def crms_with_opportunities(session: Session) -> list[str]:
    """The CRM connections that have opportunities in the ledger."""
    rows = session.exec(select(OpportunityRow.crm).distinct().order_by(OpportunityRow.crm)).all()
    return list(rows)


def load_dataset(session: Session, crm: str, *, use_matches: bool = True) -> Dataset:
    """One CRM's attribution inputs from the ledger (touches resolved to its people)."""
    matches = linked_accounts(session, crm) if use_matches else {}
    people = load_people(session, crm, matches)
    graph = IdentityGraph(people)
    known = {p.id for p in people}
    channels = dict(
        session.exec(
            select(CampaignRow.external_id, CampaignRow.channel).where(CampaignRow.crm == crm)
        ).all()
    )
    dataset = Dataset(people=people)
    touch = _TOUCH.c
    query = core_select(
        touch.key,
        touch.person_ref,
        touch.email,
        touch.occurred_at,
        touch.kind,
        touch.campaign,
        touch.channel,
    ).order_by(touch.id)
    for key, ref, email, occurred_at, kind, campaign, channel in session.execute(query):
        person = ref if ref in known else (graph.person_for_email(email) if email else None)
        if person is None:
            dataset.unlinked_touches += 1
            continue
        dataset.touches.append(
            AttributionTouch(
                key,
                person,
                occurred_at,
                kind,
                campaign,
                channel or (channels.get(campaign) if campaign else None),
            )
        )
    for opp in session.exec(
        select(OpportunityRow).where(
            OpportunityRow.crm == crm,
            col(OpportunityRow.deleted).is_(False),
            col(OpportunityRow.merged_into).is_(None),
        )
    ).all():
        dataset.opportunities.append(
            AttributionOpportunity(
                opp.external_id,
                opp.account_external_id,
                opp.amount,
                opp.created_at,
                opp.close_date,
                opp.is_closed,
                opp.is_won,
                opp.campaign_external_id,
            )
        )
    dataset.roles.extend(
        AttributionRole(r.opportunity_external_id, r.person_external_id, r.is_primary, r.deleted)
        for r in session.exec(select(ContactRoleRow).where(ContactRoleRow.crm == crm)).all()
    )
    return dataset


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return "" if value is None else str(value)


def fingerprint(
    dataset: Dataset, params: AttributionParams, models: Sequence[str], as_of: datetime
) -> str:
    """SHA-256 of the sorted input rows, parameters, models, ``as_of`` and algorithm version."""
    digest = hashlib.sha256()
    header = {
        "algorithm": ALGORITHM_VERSION,
        "params": params.describe(),
        "models": sorted(models),
        "as_of": _text(as_of),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    sections: list[tuple[str, Iterable[Iterable[Any]]]] = [
        ("touches", ((t.key, t.person_id, t.occurred_at, t.kind, t.campaign, t.channel)
                     for t in dataset.touches)),
        ("people", ((p.id, p.account_id, p.created_at, p.is_lead, p.converted_to,
                     p.converted_opportunity_id, p.merged_into, p.deleted, *p.emails)
                    for p in dataset.people)),
        ("opportunities", ((o.id, o.account_id, o.amount, o.created_at, o.close_date,
                            o.is_closed, o.is_won, o.campaign_id)
                           for o in dataset.opportunities)),
        ("roles", ((r.opportunity_id, r.person_id, r.is_primary, r.deleted)
                   for r in dataset.roles)),
    ]  # fmt: skip
    for name, rows in sections:
        digest.update(f"\n#{name}\n".encode())
        for line in sorted("\x1f".join(_text(v) for v in row) for row in rows):
            digest.update(line.encode())
            digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class RunReport:
    """What ``run_attribution`` did: the run (new or reused) and its counts."""

    run_id: int
    crm: str
    fingerprint: str
    reused: bool
    counts: dict[str, Any] = field(default_factory=dict)


def latest_run(session: Session, crm: str | None = None) -> AttributionRunRow | None:
    """The newest stored run (of ``crm`` when given)."""
    query = select(AttributionRunRow).order_by(col(AttributionRunRow.id).desc()).limit(1)
    if crm is not None:
        query = query.where(AttributionRunRow.crm == crm)
    return session.exec(query).first()


def run_attribution(
    session: Session,
    crm: str,
    models: Sequence[Model | str],
    params: AttributionParams | None = None,
    *,
    as_of: datetime | None = None,
    force: bool = False,
) -> RunReport:
    """Attribute every opportunity of ``crm`` and store the run (unless identical to the last)."""
    params = params or AttributionParams()
    names = [Model(m).value for m in models]
    if Model.CUSTOM.value in names and params.custom is None:
        from connectors.errors import ConfigError

        raise ConfigError(
            "the custom model needs weights: add attribution.custom (first_touch, "
            "lead_creation, opportunity_creation, closed_won, others; in percent, adding up "
            "to 100) to closedloop.yaml"
        )
    as_of = as_of or default_as_of()
    record_email_history(session, crm)
    dataset = load_dataset(session, crm)
    digest = fingerprint(dataset, params, names, as_of)
    previous = latest_run(session, crm)
    if (
        not force
        and previous is not None
        and previous.id is not None
        and previous.fingerprint == digest
    ):
        return RunReport(previous.id, crm, digest, True, dict(previous.counts))
    run = AttributionRunRow(
        crm=crm,
        models=names,
        params=params.describe(),
        fingerprint=digest,
        algorithm_version=ALGORITHM_VERSION,
        as_of=as_of,
    )
    session.add(run)
    session.flush()
    assert run.id is not None
    credits: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    counts: dict[str, Any] = {
        "opportunities": 0,
        "touches": len(dataset.touches),
        "unlinked_touches": dataset.unlinked_touches,
        "credits": 0,
        "unattributed": dict.fromkeys(names, 0),
    }
    for result in Attributor(dataset, params, as_of).attribute_all(names):
        opp = result.opportunity
        counts["opportunities"] += 1
        outcomes.append(
            {
                "run_id": run.id,
                "opportunity_external_id": opp.id,
                "amount": opp.amount if opp.amount is not None else Decimal(0),
                "is_closed": opp.is_closed,
                "is_won": opp.is_won,
                "counted_touches": result.counted_touches,
                "lead_person_external_id": result.lead_person_id,
                "sourced_campaign": result.sourced_campaign,
                "sourced_by": result.sourced_by,
                "influencing_campaigns": list(result.influencing_campaigns),
            }
        )
        for name in names:
            model_credits = result.credits.get(name, [])
            if not model_credits:
                counts["unattributed"][name] += 1
            counts["credits"] += len(model_credits)
            credits.extend(
                {
                    "run_id": run.id,
                    "model": c.model,
                    "opportunity_external_id": c.opportunity_id,
                    "touch_key": c.touch_key,
                    "person_external_id": c.person_id,
                    "campaign": c.campaign,
                    "channel": c.channel,
                    "occurred_at": c.occurred_at,
                    "share_units": c.share_units,
                    "amount": c.amount,
                    "milestones": ",".join(c.milestones),
                }
                for c in model_credits
            )
        if len(credits) >= _BATCH:
            session.execute(insert(AttributionCreditRow), credits)
            credits = []
        if len(outcomes) >= _BATCH:
            session.execute(insert(AttributionOutcomeRow), outcomes)
            outcomes = []
    if credits:
        session.execute(insert(AttributionCreditRow), credits)
    if outcomes:
        session.execute(insert(AttributionOutcomeRow), outcomes)
    run.counts = counts
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return RunReport(run.id, crm, digest, False, counts)


def _cents(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def summarize(session: Session, run_id: int, by: str) -> list[dict[str, Any]]:
    """Credited amounts of a run grouped ``by`` campaign, channel or model, as plain rows.

    ``campaign`` and ``channel`` rows hold one amount per model; ``campaign`` rows add the
    sourced amount (deals its lead creation touch or primary campaign brought) and the
    influenced amount (deals with any counted touch of the campaign, each counted in full).
    ``model`` rows count attributed and unattributed opportunities and the credited amount.
    Channels are shown by their report names (``sync.analytics.channels.channel_name``).
    """
    from sync.analytics.channels import channel_name

    if by not in ("campaign", "channel", "model"):
        raise ValueError(f"cannot summarise by {by!r}: campaign, channel or model")
    run = session.get(AttributionRunRow, run_id)
    if run is None:
        raise ValueError(f"no attribution run {run_id}")
    models: list[str] = list(run.models)
    if by == "model":
        rows = []
        total = session.exec(
            select(func.count()).where(AttributionOutcomeRow.run_id == run_id)
        ).one()
        for model in models:
            attributed, amount = session.exec(
                select(
                    func.count(func.distinct(AttributionCreditRow.opportunity_external_id)),
                    func.sum(AttributionCreditRow.amount),
                ).where(AttributionCreditRow.run_id == run_id, AttributionCreditRow.model == model)
            ).one()
            rows.append(
                {
                    "model": model,
                    "attributed": int(attributed),
                    "unattributed": int(total) - int(attributed),
                    "amount": _cents(amount),
                }
            )
        return rows
    column = AttributionCreditRow.campaign if by == "campaign" else AttributionCreditRow.channel
    grouped: dict[str, dict[str, Any]] = {}
    for value, model, amount in session.exec(
        select(column, AttributionCreditRow.model, func.sum(AttributionCreditRow.amount))
        .where(AttributionCreditRow.run_id == run_id)
        .group_by(column, AttributionCreditRow.model)
    ).all():
        # "web" and "Website" are one channel (sync.analytics.channels)
        key = channel_name(value) if by == "channel" else value
        row = grouped.setdefault(key or "(none)", {by: key or "(none)"})
        row[model] = row.get(model, Decimal("0.00")) + _cents(amount)
    if by == "campaign":
        for outcome in session.exec(
            select(AttributionOutcomeRow).where(AttributionOutcomeRow.run_id == run_id)
        ).all():
            if outcome.sourced_campaign:
                row = grouped.setdefault(outcome.sourced_campaign, {by: outcome.sourced_campaign})
                row["sourced"] = row.get("sourced", Decimal("0.00")) + _cents(outcome.amount)
            for campaign in outcome.influencing_campaigns:
                row = grouped.setdefault(campaign, {by: campaign})
                row["influenced"] = row.get("influenced", Decimal("0.00")) + _cents(outcome.amount)
    result = []
    for key in sorted(grouped):
        row = grouped[key]
        for model in models:
            row.setdefault(model, Decimal("0.00"))
        if by == "campaign":
            row.setdefault("sourced", Decimal("0.00"))
            row.setdefault("influenced", Decimal("0.00"))
        result.append(row)
    return result
