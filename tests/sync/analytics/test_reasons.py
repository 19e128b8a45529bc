"""Why sales said no: decisions, counts and shares per reason, dominance, first touches."""

from __future__ import annotations

import pytest

from sync.analytics.lifecycle import build_histories
from sync.analytics.reasons import (
    NO_REASON,
    NO_TOUCH,
    Decision,
    ReasonCount,
    decision_after,
    decisions,
    dominant_reason,
    first_touches,
    reason_counts,
    reason_gaps,
)
from sync.analytics.records import CampaignInfo, Event, EventKind
from sync.mapping.model import Stage
from tests.sync.analytics.builders import at, member, person, stage

DQ, RC = Stage.DISQUALIFIED, Stage.RECYCLED


def test_every_disqualification_and_recycle_is_a_decision_with_its_reason_and_rep() -> None:
    events = [
        stage("sf:a", 0, Stage.MQL, owner="rep-1"),
        stage("sf:a", 5, RC, owner="rep-1", reason="Not ready to buy"),
        stage("sf:a", 200, Stage.MQL, owner="rep-2"),
        stage("sf:a", 210, DQ, owner="rep-2", reason="No budget"),
        stage("sf:b", 3, DQ),  # no reason, no owner on the change: the person's owner
        stage("sf:c", 4, Stage.SAL),
    ]
    found = decisions(build_histories(events), {"sf:b": person("sf:b", owner="rep-9")})
    assert found == [
        Decision("sf:b", at(3), DQ, NO_REASON, "rep-9"),
        Decision("sf:a", at(5), RC, "Not ready to buy", "rep-1"),
        Decision("sf:a", at(210), DQ, "No budget", "rep-2"),
    ]
    assert [d.given for d in found] == [False, True, True]
    assert found[0].crm == "sf"


def test_a_reason_on_either_field_of_the_same_change_is_the_decisions_reason() -> None:
    # Salesforce: Status and closedloop's lifecycle field both say Disqualified at 09:00; only
    # the Status row carries Disqualified_Reason__c, and it was stored second.
    events = [
        Event("sf:a", at(1), EventKind.STATUS, DQ, "Disqualified", seq=1),
        Event("sf:a", at(1), EventKind.STATUS, DQ, "Disqualified", reason="Competitor", seq=2),
    ]
    (decision,) = decisions(build_histories(events))
    assert decision.reason == "Competitor"


def test_spellings_of_one_reason_count_together_under_the_most_frequent_one() -> None:
    events = [
        stage("a", 1, DQ, reason="No budget"),
        stage("b", 1, DQ, reason="no  budget "),
        stage("c", 1, DQ, reason="No budget"),
        stage("d", 1, DQ, reason="   "),  # blank is no reason
    ]
    rows = reason_counts(decisions(build_histories(events)), lambda _d: "all")
    assert [(r.reason, r.count, r.total) for r in rows] == [("No budget", 3, 4), (NO_REASON, 1, 4)]


def test_shares_are_of_the_groups_decisions_of_the_same_outcome() -> None:
    chosen = [
        Decision("a", at(0), DQ, "No budget", "rep-1"),
        Decision("b", at(1), DQ, "No budget", "rep-1"),
        Decision("c", at(2), DQ, "Competitor", "rep-1"),
        Decision("d", at(3), DQ, NO_REASON, "rep-1"),
        Decision("e", at(4), RC, "Not ready to buy", "rep-1"),
        Decision("f", at(5), RC, NO_REASON, "rep-2"),
    ]
    rows = reason_counts(chosen, lambda d: d.rep)
    assert [(r.group, str(r.outcome), r.reason, r.count, r.total) for r in rows] == [
        ("rep-1", "Disqualified", "No budget", 2, 4),
        ("rep-1", "Disqualified", "Competitor", 1, 4),
        ("rep-1", "Disqualified", NO_REASON, 1, 4),
        ("rep-1", "Recycled", "Not ready to buy", 1, 1),
        ("rep-2", "Recycled", NO_REASON, 1, 1),
    ]
    assert [r.share for r in rows[:3]] == [0.5, 0.25, 0.25]
    ordered = reason_counts(chosen, lambda d: d.rep, groups=["rep-2", "rep-3", "rep-1"])
    assert list(dict.fromkeys(r.group for r in ordered)) == ["rep-2", "rep-1"]


def _rows(**counts: int) -> list[ReasonCount]:
    total = sum(counts.values())
    return [
        ReasonCount("all", DQ, NO_REASON if name == "none" else name, n, total)
        for name, n in counts.items()
    ]


@pytest.mark.parametrize(
    ("counts", "dominant"),
    [
        ({"budget": 3, "rival": 2}, "budget"),  # 3 of 5 given: a majority of enough decisions
        ({"budget": 3, "rival": 1}, None),  # only 4 decisions give a reason
        ({"budget": 3, "rival": 3}, None),  # half is no majority
        ({"budget": 4, "rival": 2, "data": 2}, None),  # 4 of 8: still only half
        ({"budget": 5, "rival": 4, "none": 20}, "budget"),  # unexplained decisions do not count
    ],
)
def test_a_reason_dominates_with_more_than_half_of_at_least_five_given_reasons(
    counts: dict[str, int], dominant: str | None
) -> None:
    top = dominant_reason(_rows(**counts), DQ)
    assert (top.reason if top else None) == dominant
    assert dominant_reason(_rows(**counts), RC) is None


def test_the_first_touch_names_the_campaign_and_its_channel_else_the_touchs() -> None:
    campaigns = {"701A": CampaignInfo("701A", "Spring Webinar", "Webinar")}
    memberships = [
        member("a", "Fall Expo", 5, channel="event"),
        member("a", "701A", 2, channel="email"),  # first: the campaign's channel wins
        member("b", "Unknown List", 1, channel="list"),
    ]
    touched = first_touches(memberships, campaigns)
    assert touched == {"a": ("Spring Webinar", "Webinar"), "b": ("Unknown List", "list")}
    assert touched.get("c", (NO_TOUCH, NO_TOUCH)) == (NO_TOUCH, NO_TOUCH)


def test_reason_gaps_count_decisions_without_a_reason_per_crm_with_its_reason_fields() -> None:
    chosen = [
        Decision("salesforce:1", at(0), DQ, "No budget"),
        Decision("salesforce:2", at(0), DQ, NO_REASON),
        Decision("salesforce:3", at(0), RC, NO_REASON),
        Decision("hubspot:4", at(0), DQ, NO_REASON),
    ]
    gaps = reason_gaps(chosen, {"salesforce": ("Disqualified_Reason__c",)})
    assert [(g.crm, str(g.outcome), g.missing, g.total, g.fields) for g in gaps] == [
        ("hubspot", "Disqualified", 1, 1, ()),
        ("salesforce", "Disqualified", 1, 2, ("Disqualified_Reason__c",)),
        ("salesforce", "Recycled", 1, 1, ("Disqualified_Reason__c",)),
    ]


def test_a_hand_off_ends_in_the_first_decision_before_the_next_hand_off() -> None:
    events = [
        stage("a", 0, Stage.MQL),
        stage("a", 5, RC, reason="No response"),
        stage("a", 100, Stage.MQL),
        stage("a", 120, DQ, reason="No budget"),
        stage("b", 0, Stage.MQL),
        stage("b", 3, Stage.SAL),
    ]
    histories = build_histories(events)
    mine = decisions(histories)
    first = decision_after(histories["a"], mine, at(0))
    second = decision_after(histories["a"], mine, at(100))
    assert (first.reason if first else None) == "No response"
    assert (second.reason if second else None) == "No budget"
    assert decision_after(histories["b"], [], at(0)) is None
