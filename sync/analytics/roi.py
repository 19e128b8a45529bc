"""Campaign economics: spend in a period, cost per lead, and ROI under each attribution model.

- Spend of a campaign in a period: each spend record (a CRM cost, a YAML cost) is spread
  evenly over its days and the days inside the period are counted; YAML costs for a campaign
  replace that campaign's CRM costs (an admin's figure wins over the CRM's).
- Cost per lead: spend / new leads, where a campaign's new leads are the people whose very first
  touch was from that campaign within the period (reach of an e-mail blast to existing people
  is not lead generation).
- ROI = (attributed revenue - spend) / spend (DOMAIN.md section 6); a campaign without spend
  has no ROI. A campaign loses money when its attributed revenue is below its spend: the
  $100k expo whose members brought $15k shows as ROI -85%.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sync.analytics.periods import Period
from sync.analytics.records import Membership, Spend

__all__ = ["CampaignRoi", "cost_per_lead", "first_touch_leads", "roi_table", "spend_in_period"]

CENT = Decimal("0.01")


def spend_in_period(spend: Iterable[Spend], period: Period) -> dict[str, Decimal]:
    """Money spent per campaign inside ``period`` (spread evenly over each record's days)."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for record in spend:
        inside, total = period.overlap_days(record.first, record.last)
        if inside <= 0:
            continue
        share = record.amount if inside >= total else record.amount * inside / total
        out[record.campaign] += share
    return {k: v.quantize(CENT, ROUND_HALF_UP) for k, v in out.items()}


def first_touch_leads(memberships: Iterable[Membership], period: Period) -> dict[str, int]:
    """New leads per campaign: people whose first touch ever was that campaign's, in ``period``."""
    first: dict[str, Membership] = {}
    for membership in memberships:
        seen = first.get(membership.person)
        if seen is None or membership.first_at < seen.first_at:
            first[membership.person] = membership
    counts: dict[str, int] = defaultdict(int)
    for membership in first.values():
        if membership.campaign is not None and period.contains(membership.first_at):
            counts[membership.campaign] += 1
    return dict(counts)


def cost_per_lead(
    spend: Mapping[str, Decimal], leads: Mapping[str, int]
) -> dict[str, Decimal | None]:
    """Spend / new leads per campaign with spend (None when it brought no new lead)."""
    return {
        campaign: (amount / leads[campaign]).quantize(CENT, ROUND_HALF_UP)
        if leads.get(campaign)
        else None
        for campaign, amount in spend.items()
    }


@dataclass(frozen=True, slots=True)
class CampaignRoi:
    """One campaign under one attribution model."""

    campaign: str
    model: str
    spend: Decimal
    revenue: Decimal

    @property
    def roi(self) -> float | None:
        """(revenue - spend) / spend; None when nothing was spent."""
        if self.spend <= 0:
            return None
        return float((self.revenue - self.spend) / self.spend)

    @property
    def profit(self) -> Decimal:
        """Attributed revenue minus spend."""
        return self.revenue - self.spend

    @property
    def loses_money(self) -> bool:
        """Whether the campaign cost more than the revenue credited to it."""
        return self.spend > 0 and self.revenue < self.spend


def roi_table(
    credits: Mapping[str, Mapping[str, Decimal]], spend: Mapping[str, Decimal]
) -> list[CampaignRoi]:
    """ROI of every campaign with spend or credit, under every model (model, then campaign)."""
    campaigns = set(spend)
    for per_campaign in credits.values():
        campaigns.update(per_campaign)
    rows: list[CampaignRoi] = []
    for model, per_campaign in credits.items():
        for campaign in sorted(campaigns):
            revenue = Decimal(per_campaign.get(campaign, Decimal(0))).quantize(CENT)
            rows.append(CampaignRoi(campaign, model, spend.get(campaign, Decimal(0)), revenue))
    return rows
