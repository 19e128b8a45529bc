"""Spend in a period, cost per lead and ROI per campaign and attribution model."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sync.analytics.periods import ALL_TIME, parse_period
from sync.analytics.records import Spend
from sync.analytics.roi import cost_per_lead, first_touch_leads, roi_table, spend_in_period
from tests.sync.analytics.builders import member


def test_spend_is_spread_over_its_days_and_counted_inside_the_period() -> None:
    spend = [
        Spend("ads", Decimal(3_100), date(2026, 3, 1), date(2026, 3, 31)),  # 100 a day
        Spend("ads", Decimal(900), date(2026, 4, 1), date(2026, 4, 30)),
        Spend("expo", Decimal(100_000), date(2026, 3, 30), date(2026, 4, 2)),  # 25,000 a day
    ]
    march = spend_in_period(spend, parse_period("2026-03"))
    assert march == {"ads": Decimal("3100.00"), "expo": Decimal("50000.00")}
    second_half = spend_in_period(spend, parse_period("2026-03-16..2026-04-15"))
    assert second_half == {"ads": Decimal("2050.00"), "expo": Decimal("100000.00")}
    assert spend_in_period(spend, ALL_TIME)["ads"] == Decimal("4000.00")


def test_new_leads_are_people_whose_first_touch_came_from_the_campaign() -> None:
    members = [
        member("a", "newsletter", 0),
        member("a", "expo", 10),  # already known when the expo scanned her badge
        member("b", "expo", 5),
        member("c", "expo", 6),
    ]
    leads = first_touch_leads(members, ALL_TIME)
    assert leads == {"newsletter": 1, "expo": 2}
    cpl = cost_per_lead({"expo": Decimal(100_000), "ads": Decimal(500)}, leads)
    assert cpl == {"expo": Decimal("50000.00"), "ads": None}


def test_roi_is_attributed_revenue_minus_spend_over_spend_per_model() -> None:
    credits = {
        "first_touch": {"expo": Decimal(15_000), "webinar": Decimal(40_000)},
        "last_touch": {"webinar": Decimal(55_000)},
    }
    spend = {"expo": Decimal(100_000), "webinar": Decimal(10_000)}
    rows = {(r.model, r.campaign): r for r in roi_table(credits, spend)}
    expo = rows[("first_touch", "expo")]
    # The cautionary expo: $100k spent, $15k won back, ROI -85%.
    assert (expo.profit, expo.roi, expo.loses_money) == (Decimal(-85_000), -0.85, True)
    assert rows[("first_touch", "webinar")].roi == 3.0
    assert rows[("last_touch", "expo")].revenue == Decimal(0)
    assert rows[("last_touch", "expo")].roi == -1.0
    assert rows[("last_touch", "webinar")].roi == 4.5
    assert len(rows) == 4


def test_a_campaign_without_spend_has_no_roi_and_never_loses_money() -> None:
    (row,) = roi_table({"linear": {"referral": Decimal(5_000)}}, {})
    assert (row.roi, row.loses_money, row.spend) == (None, False, Decimal(0))
