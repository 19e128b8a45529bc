"""Pipeline and revenue (DOMAIN.md section 6): new opportunities, pipeline, win rate, revenue.

Definitions, for a period ``[start, end)``:

- new opportunities: deals created in the period (count and amount);
- open pipeline: deals created before the period's end and not closed by then (amount), i.e.
  the pipeline as it stood at the end of the period (or now, for all time);
- won / lost: deals closed in the period; win rate = won / (won + lost) ("bid to win");
- revenue: the amount of deals won in the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sync.analytics.periods import Period, month_start
from sync.analytics.records import Deal

__all__ = ["DealMetrics", "deal_metrics", "monthly_deal_metrics"]


@dataclass(frozen=True, slots=True)
class DealMetrics:
    """Opportunity and revenue figures of one period."""

    label: str
    new_opportunities: int
    new_pipeline: Decimal
    open_pipeline: Decimal
    open_deals: int
    won: int
    lost: int
    revenue: Decimal

    @property
    def win_rate(self) -> float | None:
        """Won / closed in the period (None when nothing closed)."""
        closed = self.won + self.lost
        return self.won / closed if closed else None

    @property
    def average_deal(self) -> Decimal | None:
        """Average amount of the deals won in the period."""
        return (self.revenue / self.won).quantize(Decimal("0.01")) if self.won else None


def _open_at(deal: Deal, when: datetime) -> bool:
    """Whether the deal was open at ``when`` (a closed deal without a close date never is)."""
    if deal.created_at >= when:
        return False
    if not deal.is_closed:
        return True
    return deal.close_date is not None and deal.close_date >= when


def deal_metrics(deals: Iterable[Deal], period: Period, now: datetime) -> DealMetrics:
    """The figures of ``period``; its open end is ``now``."""
    end = period.end if period.end is not None and period.end < now else now
    new = won = lost = open_deals = 0
    new_amount = open_amount = revenue = Decimal(0)
    for deal in deals:
        if period.contains(deal.created_at):
            new += 1
            new_amount += deal.amount
        if _open_at(deal, end):
            open_deals += 1
            open_amount += deal.amount
        if deal.is_closed and period.contains(deal.close_date):
            if deal.is_won:
                won += 1
                revenue += deal.amount
            else:
                lost += 1
    return DealMetrics(period.label, new, new_amount, open_amount, open_deals, won, lost, revenue)


def monthly_deal_metrics(
    deals: Sequence[Deal], months: Iterable[str], now: datetime
) -> list[DealMetrics]:
    """``deal_metrics`` for each ``YYYY-MM`` month given."""
    out: list[DealMetrics] = []
    for key in months:
        year, month = int(key[:4]), int(key[5:7])
        period = Period(key, month_start(year, month), month_start(year, month + 1))
        out.append(deal_metrics(deals, period, now))
    return out
