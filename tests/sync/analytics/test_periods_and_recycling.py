"""Report periods, and the share of handed-over leads sales sends back."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sync.analytics.lifecycle import build_histories
from sync.analytics.periods import months_between, parse_period
from sync.analytics.recycling import recycle_rates, rep_of
from sync.mapping.model import Stage
from tests.sync.analytics.builders import person, stage


def test_periods_are_half_open_calendar_ranges() -> None:
    q3 = parse_period("2026-Q3")
    assert (q3.start, q3.end) == (
        datetime(2026, 7, 1, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    assert q3.contains(datetime(2026, 9, 30, 23, 59, tzinfo=UTC))
    assert not q3.contains(datetime(2026, 10, 1, tzinfo=UTC))
    december = parse_period("2026-12")
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)
    days = parse_period("2026-07-01..2026-07-31")
    assert days.end == datetime(2026, 8, 1, tzinfo=UTC)
    assert days.overlap_days(date(2026, 6, 21), date(2026, 7, 10)) == (10, 20)
    last = parse_period("last-30d", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert last.start == datetime(2026, 10, 2, tzinfo=UTC)
    assert parse_period("all").contains(None)


@pytest.mark.parametrize("text", ["2026-13", "Q3", "last-0d", "2026-09-30..2026-09-01"])
def test_bad_periods_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"2026|ends before"):
        parse_period(text)


def test_months_between_lists_every_month_inclusive() -> None:
    start, end = datetime(2025, 11, 5, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    assert months_between(start, end) == ["2025-11", "2025-12", "2026-01", "2026-02"]


def test_recycle_rate_per_rep_counts_people_recycled_after_their_hand_off() -> None:
    events = [
        stage("a", 0, Stage.MQL, owner="rep-1"),
        stage("a", 5, Stage.RECYCLED, reason="Not ready to buy"),
        stage("b", 0, Stage.MQL, owner="rep-1"),
        stage("b", 5, Stage.SAL),
        stage("c", 0, Stage.MQL, owner="rep-1"),
        stage("c", 5, Stage.DISQUALIFIED, reason="No budget"),
        stage("d", 0, Stage.MQL, owner="rep-2"),
        stage("d", 9, Stage.RECYCLED, reason="Not ready to buy"),
        stage("e", 0, Stage.RECYCLED),  # never handed off: not counted
    ]
    histories = build_histories(events)
    people = {"a": person("a", source="Web"), "d": person("d", source="Trade Show")}
    by_rep = {r.group: r for r in recycle_rates(histories, people, rep_of)}
    assert (by_rep["rep-1"].handed_off, by_rep["rep-1"].recycled) == (3, 1)
    assert by_rep["rep-1"].rate == 1 / 3
    assert by_rep["rep-1"].disqualified == 1
    assert by_rep["rep-2"].rate == 1.0
    by_source = {
        r.group: r.rate
        for r in recycle_rates(histories, people, lambda _h, f: f.source if f else None)
    }
    assert by_source == {"Web": 1.0, "Trade Show": 1.0, "(none)": 0.0}
