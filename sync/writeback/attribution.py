"""Attribution write-back: the latest stored run of one model, as the CRM's users see it.

- Salesforce: rows of a custom Campaign Influence model (``attribution.writeback.
  influence_model_id``), one per opportunity, campaign and contact, ``Influence`` in percent
  (an opportunity's rows add up to 100% when every credited touch names a Salesforce
  campaign). Written by ``connectors.salesforce.influence``: only the difference.
- HubSpot: a summary on each deal (``summary_property``: "Webinar Q2 40% · Paid search 35% ·
  ...", cut to ``summary_length`` characters) and, optionally, the top campaign's name
  (``top_campaign_property``); written by ``connectors.hubspot.writeback``.

Credits name campaigns the way their touches do (a CRM campaign id or name, or a Marketo
program id that ``analytics.campaign_aliases`` maps to a CRM campaign); ``CampaignResolver``
turns them into the CRM's campaign ids, which reconcile stores as ``campaign.external_id``.
Credit on touches without a CRM campaign cannot become Campaign Influence: it is left out and
counted in the report's notes. Opportunities the run covers but did not credit lose their rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Table, select
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from connectors.errors import ConfigError
from sync.analytics.load import CampaignResolver
from sync.analytics.records import CampaignInfo
from sync.attribution.allocation import largest_remainder
from sync.ledger.models import (
    AttributionCreditRow,
    AttributionOutcomeRow,
    AttributionRunRow,
    CampaignRow,
    PersonRow,
)
from sync.writeback.report import WritebackReport, dead_letter
from sync.writeback.settings import AttributionWriteback

__all__ = [
    "PIPELINE",
    "DealSummary",
    "Share",
    "attribution_settings",
    "campaign_shares",
    "deal_summaries",
    "influence_rows",
    "latest_run_of",
    "summary_text",
    "writeback_attribution",
]

PIPELINE = "attribution-writeback"  # the dead letters' pipeline name
_UNITS = 1_000_000  # share units of a whole opportunity (AttributionCreditRow.share_units)
_CREDIT: Table = AttributionCreditRow.__table__  # type: ignore[attr-defined]
_OUTCOME: Table = AttributionOutcomeRow.__table__  # type: ignore[attr-defined]
_SEPARATOR = " · "


@dataclass(frozen=True, slots=True)
class Share:
    """One campaign's (and contact's) share of one opportunity, in credit units."""

    opportunity: str
    campaign: str | None  # the CRM campaign id, else the credit's own campaign text
    known: bool  # whether ``campaign`` is a campaign of this CRM
    contact: str | None
    units: int


@dataclass(frozen=True, slots=True)
class DealSummary:
    """What a deal's properties say about its attribution."""

    text: str
    top_campaign: str


@dataclass
class _Inputs:
    opportunities: list[str]
    shares: list[Share]
    names: dict[str, str] = field(default_factory=dict)  # campaign id -> name


def latest_run_of(session: Session, crm: str, model: str) -> AttributionRunRow | None:
    """The newest stored run of ``crm`` that computed ``model``."""
    for run in session.exec(
        sm_select(AttributionRunRow)
        .where(AttributionRunRow.crm == crm)
        .order_by(col(AttributionRunRow.id).desc())
    ):
        if model in (run.models or []):
            return run
    return None


def _contacts(session: Session, crm: str) -> dict[str, str | None]:
    """Person external id -> the Contact that stands for it now (None for plain leads)."""
    rows = {
        r.external_id: r
        for r in session.exec(sm_select(PersonRow).where(PersonRow.crm == crm)).all()
    }
    out: dict[str, str | None] = {}
    for person_id, row in rows.items():
        current, seen = row, {person_id}
        while current.merged_into in rows and current.merged_into not in seen:
            seen.add(current.merged_into)
            current = rows[current.merged_into]
        if current.kind == "contact":
            out[person_id] = current.external_id
        else:
            out[person_id] = current.converted_contact_external_id or None
    return out


def _load(
    session: Session, run_id: int, model: str, crm: str, aliases: Mapping[str, str]
) -> _Inputs:
    campaigns = session.exec(
        sm_select(CampaignRow).where(CampaignRow.crm == crm, col(CampaignRow.deleted).is_(False))
    ).all()
    names = {c.external_id: c.name for c in campaigns}
    resolve = CampaignResolver(
        (CampaignInfo(c.external_id, c.name, c.channel) for c in campaigns), aliases
    )
    contacts = _contacts(session, crm)
    opportunities = sorted(
        session.execute(
            select(_OUTCOME.c.opportunity_external_id).where(_OUTCOME.c.run_id == run_id)
        ).scalars()
    )
    credit = _CREDIT.c
    grouped: dict[tuple[str, str | None, bool, str | None], int] = defaultdict(int)
    for opportunity, person, campaign, units in session.execute(
        select(
            credit.opportunity_external_id, credit.person_external_id, credit.campaign,
            credit.share_units,
        ).where(credit.run_id == run_id, credit.model == model)
    ):  # fmt: skip
        key = resolve(campaign)
        known = key is not None and key in names
        grouped[(opportunity, key, known, contacts.get(person))] += int(units)
    shares = [Share(o, c, k, p, u) for (o, c, k, p), u in sorted(grouped.items(), key=_order)]
    return _Inputs(opportunities, shares, names)


def _order(item: tuple[tuple[str, str | None, bool, str | None], int]) -> tuple[str, ...]:
    (opportunity, campaign, _known, contact), _units = item
    return (opportunity, campaign or "", contact or "")


def _rounded(units: Sequence[int], scale: int) -> list[int]:
    """``units`` as whole multiples of ``_UNITS / scale`` adding up to their rounded total
    (``sync.attribution.allocation.largest_remainder``, the rule the credits were made by)."""
    if sum(units) <= 0:
        return [0] * len(units)
    return largest_remainder(round(sum(units) * scale / _UNITS), units)


def campaign_shares(inputs: Iterable[Share]) -> dict[str, list[Share]]:
    """Shares grouped by opportunity."""
    out: dict[str, list[Share]] = defaultdict(list)
    for share in inputs:
        out[share.opportunity].append(share)
    return out


def influence_rows(shares: Iterable[Share]) -> tuple[list[Any], dict[str, int]]:
    """Campaign Influence rows (percent, two decimals, largest remainder per opportunity) for
    shares on known campaigns, and the units left out per opportunity (no CRM campaign)."""
    from connectors.salesforce.influence import InfluenceRow

    rows: list[InfluenceRow] = []
    left_out: dict[str, int] = {}
    for opportunity, members in campaign_shares(shares).items():
        known = [s for s in members if s.known and s.campaign is not None]
        lost = sum(s.units for s in members if not (s.known and s.campaign is not None))
        if lost:
            left_out[opportunity] = lost
        hundredths = _rounded([s.units for s in known], 10_000)
        for share, value in zip(known, hundredths, strict=True):
            if value > 0:
                assert share.campaign is not None
                rows.append(
                    InfluenceRow(opportunity, share.campaign, share.contact, Decimal(value) / 100)
                )
    return rows, left_out


def summary_text(parts: Sequence[tuple[str, int, int]], limit: int) -> str:
    """``name pct%`` items (largest first) joined by `` · ``, at most ``limit`` characters;
    items that do not fit are counted as ``+N more``. ``parts`` are (name, percent, units)."""
    items = [(name, f"{pct}%" if pct > 0 else "<1%") for name, pct, units in parts if units]
    for keep in range(len(items), 0, -1):
        rest = len(items) - keep
        text = _SEPARATOR.join(f"{name} {pct}" for name, pct in items[:keep])
        text += f"{_SEPARATOR}+{rest} more" if rest else ""
        if len(text) <= limit:
            return text
    if not items:
        return ""
    name, pct = items[0]  # even the largest alone is too long: shorten its name
    tail = f" {pct}" + (f"{_SEPARATOR}+{len(items) - 1} more" if len(items) > 1 else "")
    return name[: max(1, limit - len(tail) - 1)] + "…" + tail


def deal_summaries(
    opportunities: Iterable[str], shares: Iterable[Share], names: Mapping[str, str], limit: int
) -> dict[str, DealSummary]:
    """Each opportunity's summary text and top campaign ("" for a deal without credit)."""
    by_opportunity = campaign_shares(shares)
    out: dict[str, DealSummary] = {}
    for opportunity in opportunities:
        per_campaign: dict[str, int] = defaultdict(int)
        for share in by_opportunity.get(opportunity, []):
            label = names.get(share.campaign or "", share.campaign) or "(no campaign)"
            per_campaign[label] += share.units
        ranked = sorted(per_campaign.items(), key=lambda kv: (-kv[1], kv[0]))
        percents = _rounded([u for _, u in ranked], 100)
        parts = [(name, pct, units) for (name, units), pct in zip(ranked, percents, strict=True)]
        top = ranked[0][0] if ranked else ""
        out[opportunity] = DealSummary(summary_text(parts, limit), top)
    return out


def attribution_settings(config: Any) -> AttributionWriteback:
    found = getattr(getattr(config, "attribution", None), "writeback", None)
    if not isinstance(found, AttributionWriteback) or not found.enabled:
        raise ConfigError(
            "attribution write-back is off: add an attribution.writeback section to "
            "closedloop.yaml (model, and influence_model_id for Salesforce; see the README)"
        )
    return found


def writeback_attribution(
    engine: Engine,
    config: Any,
    connector: Any,
    *,
    crm: str,
    model: str | None = None,
    dry_run: bool = False,
) -> WritebackReport:
    """Write the latest run of ``model`` for ``crm`` to that CRM (see the module docstring)."""
    settings = attribution_settings(config)
    model = model or settings.model
    kind = config.connections[crm].type
    if kind not in ("salesforce", "hubspot"):
        raise ConfigError(
            f"connection {crm!r} is of type {kind!r}: attribution write-back supports "
            "salesforce and hubspot"
        )
    if kind == "salesforce" and settings.influence_model_id is None:
        raise ConfigError(
            "attribution.writeback.influence_model_id is not set: create a custom Campaign "
            "Influence model in Salesforce (Setup > Campaign Influence) and give its Id "
            "(SELECT Id, DeveloperName FROM CampaignInfluenceModel)"
        )
    aliases = getattr(getattr(config, "analytics", None), "campaign_aliases", {}) or {}
    with Session(engine) as session:
        run = latest_run_of(session, crm, model)
        if run is None or run.id is None:
            raise ConfigError(
                f"no attribution run of model {model} for {crm} yet: run "
                f"`closedloop attribution run --model {model} --crm {crm}` first"
            )
        run_id = run.id
        inputs = _load(session, run_id, model, crm, aliases)
    payload = {"crm": crm, "run": run_id, "model": model}
    if kind == "salesforce":
        report = _to_salesforce(connector, settings, inputs, dry_run=dry_run, crm=crm)
    else:
        report = _to_hubspot(connector, settings, inputs, dry_run=dry_run, crm=crm)
    report.notes.insert(
        0, f"run {run_id}, model {model}, {len(inputs.opportunities):,} opportunities"
    )
    if not dry_run:
        dead_letter(engine, PIPELINE, report.rejected, payload, deferred=report.deferred)
    return report


def _to_salesforce(
    connector: Any, settings: AttributionWriteback, inputs: _Inputs, *, dry_run: bool, crm: str
) -> WritebackReport:
    from connectors.salesforce.influence import InfluenceWriter

    assert settings.influence_model_id is not None
    rows, left_out = influence_rows(inputs.shares)
    writer = InfluenceWriter(connector.client, settings.influence_model_id)
    done = writer.sync(inputs.opportunities, rows, dry_run=dry_run)
    plan = done.plan
    report = WritebackReport(crm, "Campaign Influence", dry_run, records=len(inputs.opportunities))
    counts = {"created": len(plan.create), "updated": len(plan.update), "deleted": len(plan.delete)}
    report.counts = {**counts, "unchanged": plan.unchanged}
    report.rejected = done.rejected
    report.deferred = done.deferred
    report.read_calls, report.write_calls = done.read_calls, done.write_calls
    if left_out:
        share = sum(left_out.values()) / _UNITS * 100
        report.notes.append(
            f"{len(left_out):,} opportunities had credit on touches without a Salesforce campaign "
            f"({share:,.1f} opportunity-percent left out); map them with analytics.campaign_aliases"
        )
    return report


def _to_hubspot(
    connector: Any, settings: AttributionWriteback, inputs: _Inputs, *, dry_run: bool, crm: str
) -> WritebackReport:
    from connectors.hubspot.writeback import PropertyWriter

    summaries = deal_summaries(
        inputs.opportunities, inputs.shares, inputs.names, settings.summary_length
    )
    wanted: dict[str, dict[str, str]] = {}
    for deal, summary in summaries.items():
        values = {settings.summary_property: summary.text}
        if settings.top_campaign_property:
            values[settings.top_campaign_property] = summary.top_campaign
        wanted[deal] = values
    done = PropertyWriter(connector.client, "deals").sync_values(wanted, dry_run=dry_run)
    report = WritebackReport(crm, "deal properties", dry_run, records=len(wanted))
    report.counts = {"updated": len(done.updates), "unchanged": done.unchanged}
    report.rejected = done.rejected
    report.read_calls, report.write_calls = done.read_calls, done.write_calls
    return report
