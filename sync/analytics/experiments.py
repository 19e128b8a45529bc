"""Experiments (DOMAIN.md section 7): do reps with marketing leads produce more?

Reps are tagged into two groups in ``analytics.experiments``. Production is measured per rep
and calendar month (won revenue, won deals or new opportunities, by the deal's owner), and
the groups' means per rep-month are compared with Welch's t interval. Rep-months of one rep
are treated as independent observations, which is the usual simplification for a sales
report; the verdict says so when the groups are small.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sync.analytics.periods import month_key
from sync.analytics.records import Deal
from sync.analytics.stats import WelchInterval, welch_interval

__all__ = ["ExperimentResult", "compare_groups", "production_by_rep_month"]

METRIC_WORDS = {
    "won_revenue": "won revenue",
    "won_deals": "deals won",
    "new_opportunities": "new opportunities",
}


def _event_time(deal: Deal, metric: str) -> datetime | None:
    if metric == "new_opportunities":
        return deal.created_at
    if deal.is_closed and deal.is_won:
        return deal.close_date
    return None


def production_by_rep_month(
    deals: Iterable[Deal], reps: Iterable[str], months: Sequence[str], metric: str
) -> dict[str, list[float]]:
    """Each rep's production in each month of ``months`` (zeros included), in month order."""
    wanted = list(dict.fromkeys(reps))
    table: dict[str, dict[str, float]] = {rep: dict.fromkeys(months, 0.0) for rep in wanted}
    for deal in deals:
        if deal.owner not in table:
            continue
        when = _event_time(deal, metric)
        if when is None:
            continue
        key = month_key(when)
        row = table[deal.owner]
        if key in row:
            row[key] += float(deal.amount) if metric == "won_revenue" else 1.0
    return {rep: [table[rep][m] for m in months] for rep in wanted}


@dataclass(frozen=True)
class ExperimentResult:
    """Two groups compared: sample sizes, means per rep-month, interval and a verdict."""

    name: str
    metric: str
    groups: tuple[str, str]
    n: tuple[int, int]
    means: tuple[float, float]
    interval: WelchInterval | None
    verdict: str


def _amount(value: float, metric: str, currency: str) -> str:
    if metric == "won_revenue":
        return f"{currency} {value:,.0f}"
    return f"{value:,.2f}"


def compare_groups(
    name: str,
    groups: Mapping[str, Sequence[float]],
    metric: str,
    confidence: float,
    currency: str = "USD",
) -> ExperimentResult:
    """Compare the first group with the second and say in plain words what the data show."""
    (a_name, a), (b_name, b) = list(groups.items())[:2]
    words = METRIC_WORDS.get(metric, metric)
    mean_a = sum(a) / len(a) if a else 0.0
    mean_b = sum(b) / len(b) if b else 0.0
    level = f"{confidence * 100:.0f}%"
    base = ExperimentResult(
        name, metric, (a_name, b_name), (len(a), len(b)), (mean_a, mean_b), None, ""
    )
    if len(a) < 2 or len(b) < 2:
        verdict = (
            f"Not enough data yet: each group needs at least two rep-months "
            f"({a_name}: {len(a)}, {b_name}: {len(b)})."
        )
        return _with(base, None, verdict)
    interval = welch_interval(a, b, confidence)
    diff = _amount(abs(interval.difference), metric, currency)
    span = (
        f"{level} confidence interval {_amount(interval.low, metric, currency)} "
        f"to {_amount(interval.high, metric, currency)}"
    )
    if interval.low > 0:
        verdict = (
            f"Reps in '{a_name}' produced more {words}: {diff} more per rep per month on "
            f"average ({span}). The difference is unlikely to be chance."
        )
    elif interval.high < 0:
        verdict = (
            f"Reps in '{b_name}' produced more {words}: {diff} more per rep per month than "
            f"'{a_name}' on average ({span}). The difference is unlikely to be chance."
        )
    else:
        verdict = (
            f"No clear difference in {words} yet: '{a_name}' averaged "
            f"{_amount(mean_a, metric, currency)} and '{b_name}' "
            f"{_amount(mean_b, metric, currency)} per rep per month, but the {span} "
            f"includes zero. Keep the experiment running to collect more months."
        )
    if min(len(a), len(b)) < 6:
        verdict += " Few rep-months so far: treat this as a first look."
    return _with(base, interval, verdict)


def _with(base: ExperimentResult, interval: WelchInterval | None, verdict: str) -> ExperimentResult:
    return ExperimentResult(
        base.name, base.metric, base.groups, base.n, base.means, interval, verdict
    )
