"""Welch's interval, Student's t quantiles, and the plain-language experiment verdict."""

from __future__ import annotations

import pytest

from sync.analytics.experiments import compare_groups, production_by_rep_month
from sync.analytics.stats import t_cdf, t_quantile, welch_interval
from tests.sync.analytics.builders import T0, deal


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706204736),
        (0.975, 5, 2.570581836),
        (0.975, 10, 2.228138852),
        (0.95, 30, 1.697260887),
        (0.995, 4, 4.604094871),
        (0.975, 1000, 1.962339081),
        (0.025, 10, -2.228138852),
    ],
)
def test_t_quantiles_match_published_tables(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)
    assert t_cdf(expected, df) == pytest.approx(p, abs=1e-9)


def test_welch_interval_of_two_small_groups() -> None:
    # mean 20 vs 14; variances 10 and 10 over 5 values each: se = sqrt(4) = 2, df = 8.
    a = [16.0, 18.0, 20.0, 22.0, 24.0]
    b = [10.0, 12.0, 14.0, 16.0, 18.0]
    interval = welch_interval(a, b, 0.95)
    assert (interval.mean_a, interval.mean_b, interval.difference) == (20.0, 14.0, 6.0)
    assert interval.df == pytest.approx(8.0)
    margin = 2.306004135 * 2  # t(0.975, 8) * se
    assert interval.low == pytest.approx(6.0 - margin, abs=1e-6)
    assert interval.high == pytest.approx(6.0 + margin, abs=1e-6)


def test_production_per_rep_month_sums_won_revenue_by_close_month_with_zeros() -> None:
    march, april = T0.replace(day=10), T0.replace(month=4, day=10)
    deals = [
        deal("o1", 1_000, march, march, won=True, owner="r1"),
        deal("o2", 2_000, march, april, won=True, owner="r1"),
        deal("o3", 9_000, march, april, won=False, owner="r1"),  # lost: no revenue
        deal("o4", 4_000, march, april, won=True, owner="r3"),  # not in the experiment
    ]
    table = production_by_rep_month(deals, ["r1", "r2"], ["2026-03", "2026-04"], "won_revenue")
    assert table == {"r1": [1000.0, 2000.0], "r2": [0.0, 0.0]}
    counts = production_by_rep_month(deals, ["r1"], ["2026-03", "2026-04"], "new_opportunities")
    assert counts == {"r1": [3.0, 0.0]}


def test_verdict_names_the_group_that_produced_more_when_the_interval_excludes_zero() -> None:
    result = compare_groups(
        "marketing leads",
        {"with_leads": [16.0, 18.0, 20.0, 22.0, 24.0], "prospecting": [1.0, 2.0, 3.0, 2.0, 2.0]},
        "won_deals",
        0.95,
    )
    assert result.interval is not None
    assert result.interval.low > 0
    assert result.verdict.startswith("Reps in 'with_leads' produced more deals won: 18.00 more")
    assert "unlikely to be chance" in result.verdict


def test_verdict_says_no_clear_difference_when_the_interval_includes_zero() -> None:
    result = compare_groups(
        "x", {"a": [10.0, 30.0, 20.0], "b": [15.0, 25.0, 18.0]}, "won_revenue", 0.9, "EUR"
    )
    assert result.interval is not None
    assert result.interval.low < 0 < result.interval.high
    assert result.verdict.startswith("No clear difference in won revenue yet: 'a' averaged EUR 20")
    assert "90% confidence interval" in result.verdict


def test_verdict_asks_for_more_data_with_fewer_than_two_rep_months_in_a_group() -> None:
    result = compare_groups("x", {"a": [5.0], "b": [1.0, 2.0]}, "won_deals", 0.95)
    assert result.interval is None
    assert result.verdict == (
        "Not enough data yet: each group needs at least two rep-months (a: 1, b: 2)."
    )
