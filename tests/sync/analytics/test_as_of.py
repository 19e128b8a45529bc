"""A dataset as it stood at a moment: what happened later is left out of every measure."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sync.analytics.periods import parse_period
from sync.analytics.records import Dataset, PersonFacts, Spend
from sync.analytics.settings import AnalyticsSettings
from sync.analytics.sla import SlaStatus, SlaTargets
from sync.analytics.summary import build_report
from sync.mapping.model import Stage
from tests.sync.analytics.builders import at, deal, member, stage, task

DAY = SlaTargets(default=timedelta(hours=24))


def _dataset() -> Dataset:
    return Dataset(
        now=at(1000),
        people={
            "ann": PersonFacts("ann", created_at=at(0)),
            "late": PersonFacts("late", created_at=at(500)),  # created after the moment
        },
        events=[
            stage("ann", 0, Stage.MQL, owner="rep-1"),
            task("ann", 300),  # answered long after the moment
            stage("ann", 301, Stage.DISQUALIFIED, reason="No budget"),
        ],
        memberships=[member("ann", "Webinar", 0), member("bo", "Expo", 400)],
        spend=[Spend("Webinar", Decimal(310), date(2026, 3, 1), date(2026, 3, 31))],
        deals=[
            deal("won-later", 1000, at(10), at(400), won=True),
            deal("opened-later", 500, at(300)),
        ],
    )


def test_as_of_leaves_out_what_happened_later() -> None:
    moment = at(100)  # 2026-03-06 13:00 UTC
    seen = _dataset().as_of(moment)
    assert seen.now == moment
    assert set(seen.people) == {"ann"}
    assert [e.at for e in seen.events] == [at(0)]
    assert [m.person for m in seen.memberships] == ["ann"]
    (won_later,) = seen.deals
    assert (won_later.key, won_later.is_closed, won_later.is_won) == ("won-later", False, False)
    # The March cost line counts for 1-6 March: 6 of its 31 days.
    (spend,) = seen.spend
    assert (spend.amount, spend.last) == (Decimal(60), date(2026, 3, 6))


def test_a_report_as_of_a_moment_sees_open_clocks_and_deals_as_they_were_then() -> None:
    moment = at(100)
    data = build_report(
        _dataset().as_of(moment), AnalyticsSettings(), parse_period("all", moment), DAY, {}
    )
    (case,) = data.sla_cases
    assert (case.status, case.first_action_at) == (SlaStatus.OVERDUE, None)
    assert case.overdue_by(data.generated_at) == timedelta(hours=76)
    assert (data.deals.won, data.deals.open_deals, data.deals.new_opportunities) == (0, 1, 1)
    assert data.reasons == []  # the disqualification came later
