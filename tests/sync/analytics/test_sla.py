"""SLA: hand-off to first sales action, statuses against targets, grouped summaries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sync.analytics.sla import SlaStatus, SlaTargets, percentile, sla_cases, sla_summary
from sync.mapping.model import Stage
from tests.sync.analytics.builders import at, person, reassign, stage, status, task

DAY = SlaTargets(default=timedelta(hours=24))


def test_first_status_change_or_task_after_the_hand_off_stops_the_clock() -> None:
    events = [
        stage("ann", 0, Stage.MQL, owner="rep-1"),
        reassign("ann", 1, "rep-2"),  # not a sales action
        status("ann", 2, "Attempting Contact"),  # an unmapped status still counts
        stage("ann", 5, Stage.SAL),
        stage("bo", 0, Stage.MQL, owner="rep-1"),
        task("bo", 30),  # a call, 30 hours later: too late
    ]
    cases = sla_cases(events, {}, DAY, now=at(100))
    by_person = {c.person: c for c in cases}
    assert by_person["ann"].response == timedelta(hours=2)
    assert by_person["ann"].status is SlaStatus.MET
    assert by_person["bo"].response == timedelta(hours=30)
    assert by_person["bo"].status is SlaStatus.BREACHED
    assert by_person["bo"].overdue_by(at(100)) == timedelta(hours=6)


def test_unanswered_hand_offs_wait_until_the_target_passes_and_then_are_overdue() -> None:
    events = [stage("cy", 0, Stage.MQL), stage("di", 90, Stage.MQL)]
    cases = {c.person: c for c in sla_cases(events, {}, DAY, now=at(100))}
    assert cases["cy"].status is SlaStatus.OVERDUE
    assert cases["cy"].overdue_by(at(100)) == timedelta(hours=76)
    assert cases["di"].status is SlaStatus.WAITING
    assert cases["di"].is_breach is False


def test_a_recycled_lead_that_scores_again_is_a_second_hand_off() -> None:
    events = [
        stage("ed", 0, Stage.MQL),
        stage("ed", 3, Stage.RECYCLED),
        stage("ed", 200, Stage.MQL),
        task("ed", 240),
    ]
    cases = sla_cases(events, {}, DAY, now=at(300))
    assert [(c.handed_off_at, c.response, c.status) for c in cases] == [
        (at(0), timedelta(hours=3), SlaStatus.MET),
        (at(200), timedelta(hours=40), SlaStatus.BREACHED),
    ]


def test_a_reps_own_target_wins_over_the_team_target_and_the_default() -> None:
    targets = SlaTargets(
        default=timedelta(hours=24),
        teams={"east": timedelta(hours=4)},
        reps={"rep-9": timedelta(hours=1)},
    )
    teams = {"rep-1": "east", "rep-9": "east"}
    events = [
        stage("fay", 0, Stage.MQL, owner="rep-1"),
        task("fay", 5),
        stage("gus", 0, Stage.MQL, owner="rep-9"),
        task("gus", 2),
        stage("hal", 0, Stage.MQL, owner="rep-3"),
        task("hal", 5),
    ]
    cases = {c.person: c for c in sla_cases(events, {}, targets, at(50), teams.get)}
    assert (cases["fay"].team, cases["fay"].target) == ("east", timedelta(hours=4))
    assert cases["fay"].status is SlaStatus.BREACHED
    assert cases["gus"].target == timedelta(hours=1)
    assert cases["gus"].status is SlaStatus.BREACHED
    assert (cases["hal"].team, cases["hal"].status) == (None, SlaStatus.MET)


def test_the_rep_is_the_hand_off_owner_else_the_persons_owner_and_source_is_the_lead_source() -> (
    None
):
    events = [stage("ivy", 0, Stage.MQL), task("ivy", 1)]
    facts = {"ivy": person("ivy", owner="rep-4", source="Web")}
    (case,) = sla_cases(events, facts, DAY, now=at(10))
    assert (case.rep, case.source, case.email) == ("rep-4", "Web", "ivy@example.com")


def test_summary_by_rep_counts_statuses_and_response_percentiles() -> None:
    events = []
    # rep-1: answered after 1, 2, 3 and 30 hours; one hand-off overdue.
    for i, hours in enumerate([1, 2, 3, 30]):
        events += [stage(f"p{i}", 0, Stage.MQL, owner="rep-1"), task(f"p{i}", hours)]
    events.append(stage("p9", 0, Stage.MQL, owner="rep-1"))
    # rep-2: one answer after 10 hours.
    events += [stage("q1", 0, Stage.MQL, owner="rep-2"), task("q1", 10)]
    cases = sla_cases(events, {}, DAY, now=at(48))
    rep1, rep2 = sla_summary(cases, lambda c: c.rep)
    assert (rep1.group, rep1.handed_off, rep1.answered) == ("rep-1", 5, 4)
    assert (rep1.met, rep1.breached, rep1.waiting, rep1.overdue) == (3, 1, 0, 1)
    assert rep1.median_hours == 2.5
    assert rep1.p90_hours == pytest.approx(21.9)  # rank 2.7: 3 + 0.7 * (30 - 3)
    assert rep1.breach_rate == 2 / 5
    assert (rep2.group, rep2.breach_rate, rep2.median_hours) == ("rep-2", 0.0, 10.0)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([10.0, 20.0], 25) == 12.5


def test_the_report_headline_gives_the_true_median_of_an_even_number_of_answers() -> None:
    from sync.analytics.periods import parse_period
    from sync.analytics.records import Dataset
    from sync.analytics.settings import AnalyticsSettings
    from sync.analytics.summary import build_report

    events = []
    for i, hours in enumerate([1, 2, 3, 30]):  # median (2 + 3) / 2 = 2.5 hours
        events += [stage(f"p{i}", 0, Stage.MQL, owner="rep-1"), task(f"p{i}", hours)]
    dataset = Dataset(now=at(48), events=events)
    data = build_report(dataset, AnalyticsSettings(), parse_period("all", at(48)), DAY, {})
    [headline] = [line for line in data.summary if "hand-offs in a median" in line]
    assert "a median of 2.5 hours against a target of 24 hours; 1 of 4" in headline


def test_mql_again_after_sales_took_the_lead_is_no_new_hand_off_but_after_recycling_it_is() -> None:
    events = [
        stage("ann", 0, Stage.MQL, owner="rep-1"),  # lead status OPEN
        stage("ann", 2, Stage.SAL),  # worked
        stage("ann", 3, Stage.MQL),  # HubSpot's lifecycle stage catches up late: no new case
        stage("bo", 0, Stage.MQL, owner="rep-1"),
        stage("bo", 1, Stage.SAL),
        stage("bo", 5, Stage.RECYCLED),
        stage("bo", 20, Stage.MQL),  # back from nurture: a new hand-off, unanswered
    ]
    cases = sla_cases(events, {}, DAY, now=at(60))
    assert [(c.person, c.handed_off_at) for c in cases] == [
        ("ann", at(0)),
        ("bo", at(0)),
        ("bo", at(20)),
    ]
    assert [c.status for c in cases] == [SlaStatus.MET, SlaStatus.MET, SlaStatus.OVERDUE]


def test_a_task_at_the_very_time_of_the_hand_off_is_a_response_of_zero_seconds() -> None:
    from sync.analytics.periods import parse_period
    from sync.analytics.records import Dataset, Event, EventKind
    from sync.analytics.settings import AnalyticsSettings
    from sync.analytics.summary import build_report
    from sync.report.export import tables

    events = [
        # The call was stored before the status change that handed the lead off, same second.
        Event("ann", at(0), EventKind.TASK, None, "Call", seq=1),
        Event("ann", at(0), EventKind.STATUS, Stage.MQL, "MQL", "rep-1", seq=2),
        stage("bo", 0, Stage.MQL, owner="rep-1"),
        task("bo", 3),
    ]
    ann, _bo = sla_cases(events, {}, DAY, now=at(100))
    assert (ann.response, ann.status) == (timedelta(0), SlaStatus.MET)
    data = build_report(
        Dataset(now=at(100), events=events), AnalyticsSettings(), parse_period("all"), DAY, {}
    )
    [headline] = [line for line in data.summary if "hand-offs in a median" in line]
    assert "a median of 1.5 hours" in headline  # (0 + 3) / 2: the 0 counts
    header, rows = tables(data)["sla_cases"]
    response = header.index("response_hours")
    assert [row[response] for row in rows] == [0.0, 3.0]


def test_each_crm_keeps_its_own_targets_and_later_stages_run_until_the_person_moves_on() -> None:
    targets = SlaTargets(
        by_crm={
            "salesforce": {Stage.MQL: timedelta(hours=24), Stage.SAL: timedelta(days=3)},
            "hubspot": {Stage.MQL: timedelta(hours=4)},
        }
    )
    events = [
        # Answered after 6 hours in both CRMs: within Salesforce's 24 h, past HubSpot's 4 h.
        stage("salesforce:L1", 0, Stage.MQL),
        stage("salesforce:L1", 6, Stage.SAL),
        task("salesforce:L1", 20),  # working the lead does not stop the SAL clock
        stage("salesforce:L1", 6 + 80, Stage.SQL),  # 80 h in SAL: past 3 days
        stage("hubspot:C1", 0, Stage.MQL),
        stage("hubspot:C1", 6, Stage.SAL),  # HubSpot agrees no SAL target: not measured
        stage("hubspot:C1", 200, Stage.SQL),
    ]
    cases = sla_cases(events, {}, targets, now=at(300))
    assert [
        (c.crm, c.person, c.stage, c.target, c.response, c.status) for c in cases
    ] == [
        ("hubspot", "hubspot:C1", Stage.MQL, timedelta(hours=4), timedelta(hours=6),
         SlaStatus.BREACHED),
        ("salesforce", "salesforce:L1", Stage.MQL, timedelta(hours=24), timedelta(hours=6),
         SlaStatus.MET),
        ("salesforce", "salesforce:L1", Stage.SAL, timedelta(days=3), timedelta(hours=80),
         SlaStatus.BREACHED),
    ]  # fmt: skip
    assert targets.stages == (Stage.MQL, Stage.SAL)
    # analytics.sla.default overrides the MQL target of every CRM, not the later stages.
    override = SlaTargets(default=timedelta(hours=8), by_crm=targets.by_crm)
    assert override.target(None, None, crm="hubspot") == timedelta(hours=8)
    assert override.target(None, None, crm="salesforce", stage=Stage.SAL) == timedelta(days=3)
    assert override.origin("salesforce", Stage.MQL) == "analytics.sla.default"
    assert override.origin("salesforce", Stage.SAL) == "lifecycle.sla.SAL"
