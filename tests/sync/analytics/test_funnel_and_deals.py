"""Funnel cohorts and conversion; pipeline, win rate and revenue per period."""

from __future__ import annotations

from decimal import Decimal

from sync.analytics.deals import deal_metrics, monthly_deal_metrics
from sync.analytics.funnel import (
    cohort_by_campaign,
    cohort_by_channel,
    cohort_by_month,
    entered_funnel_at,
    funnel_rows,
    reached_by_person,
)
from sync.analytics.lifecycle import build_histories
from sync.analytics.periods import ALL_TIME, parse_period
from sync.analytics.records import CampaignInfo
from sync.mapping.model import Stage
from tests.sync.analytics.builders import T0, at, deal, member, stage

# Four people touched by campaigns; two reach MQL, one of them becomes a customer.
EVENTS = [
    stage("a", 1, Stage.MQL),
    stage("a", 2, Stage.SAL),
    stage("a", 50, Stage.CUSTOMER),  # converted straight through: SQL, Opportunity implied
    stage("b", 3, Stage.MQL),
    stage("b", 4, Stage.RECYCLED),
    stage("d", 900, Stage.MQL),  # entered in April
]
MEMBERS = [
    member("a", "web-1", 0),
    member("b", "web-1", 0),
    member("b", "expo", 2),
    member("c", "expo", 1),
    member("d", "expo", 800),
]
CAMPAIGNS = {
    "web-1": CampaignInfo("web-1", "Webinar", "webinar"),
    "expo": CampaignInfo("expo", "Expo", "event"),
}


def _reached() -> dict[str, frozenset[Stage]]:
    histories = build_histories(EVENTS)
    return reached_by_person(["a", "b", "c", "d"], histories)


def test_funnel_counts_people_per_stage_and_conversion_from_the_stage_before() -> None:
    (row,) = funnel_rows({"all": ["a", "b", "c", "d"]}, _reached())
    counts = {s.stage: s.count for s in row.steps}
    assert counts == {
        Stage.INQUIRY: 4,
        Stage.MQL: 3,
        Stage.SAL: 1,
        Stage.SQL: 1,
        Stage.OPPORTUNITY: 1,
        Stage.CUSTOMER: 1,
    }
    conversions = [s.conversion for s in row.steps]
    assert conversions == [None, 3 / 4, 1 / 3, 1.0, 1.0, 1.0]
    assert row.rate(Stage.CUSTOMER) == 1 / 4
    assert (row.recycled, row.disqualified) == (1, 0)


def test_campaign_cohorts_hold_every_member_and_channel_cohorts_use_the_campaign_channel() -> None:
    march = parse_period("2026-03")
    by_campaign = funnel_rows(cohort_by_campaign(MEMBERS, march, CAMPAIGNS), _reached())
    rows = {r.group: r for r in by_campaign}
    assert set(rows) == {"Webinar", "Expo"}
    assert (rows["Webinar"].size, rows["Webinar"].rate(Stage.MQL)) == (2, 1.0)
    # Expo members in March: b (MQL, recycled) and c (inquiry only); d joined in April.
    assert (rows["Expo"].size, rows["Expo"].rate(Stage.MQL), rows["Expo"].recycled) == (2, 0.5, 1)
    channels = cohort_by_channel(MEMBERS, ALL_TIME, CAMPAIGNS)
    assert {k: sorted(v) for k, v in channels.items()} == {
        "event": ["b", "c", "d"],
        "webinar": ["a", "b"],
    }


def test_month_cohorts_group_people_by_when_they_first_appeared() -> None:
    entered = entered_funnel_at({}, build_histories(EVENTS), MEMBERS)
    assert entered["b"] == at(0)
    cohorts = cohort_by_month(entered, ALL_TIME)
    assert {k: sorted(v) for k, v in cohorts.items()} == {
        "2026-03": ["a", "b", "c"],
        "2026-04": ["d"],
    }


def test_deal_metrics_of_a_month_count_new_won_lost_revenue_and_open_pipeline() -> None:
    march = T0.replace(day=1)
    deals = [
        deal("o1", 10_000, march.replace(day=3), march.replace(day=20), won=True),
        deal("o2", 5_000, march.replace(day=5), march.replace(day=25)),  # lost in March
        deal("o3", 7_000, march.replace(day=10)),  # still open
        deal("o4", 3_000, march.replace(month=2), march.replace(month=4, day=2), won=True),
    ]
    now = march.replace(month=5)
    m = deal_metrics(deals, parse_period("2026-03"), now)
    assert (m.new_opportunities, m.new_pipeline) == (3, Decimal(22_000))
    assert (m.won, m.lost, m.revenue, m.win_rate) == (1, 1, Decimal(10_000), 0.5)
    # Open on April 1st: o3 (never closed) and o4 (closed on April 2nd).
    assert (m.open_deals, m.open_pipeline) == (2, Decimal(10_000))
    april = monthly_deal_metrics(deals, ["2026-04"], now)[0]
    assert (april.won, april.revenue, april.new_opportunities, april.average_deal) == (
        1,
        Decimal(3_000),
        0,
        Decimal("3000.00"),
    )
