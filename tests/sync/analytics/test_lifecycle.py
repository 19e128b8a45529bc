"""Lifecycle histories: visits in order, repeats collapsed, time in stage, current stage."""

from __future__ import annotations

from datetime import timedelta

from sync.analytics.lifecycle import build_histories, current_stages, reached_stages
from sync.mapping.model import Stage
from tests.sync.analytics.builders import at, reassign, stage, task


def test_history_lists_each_stage_once_per_stay_in_time_order() -> None:
    events = [
        stage("ann", 30, Stage.SAL, seq=3),
        stage("ann", 0, Stage.INQUIRY, seq=1),
        stage("ann", 10, Stage.MQL, seq=2),
        stage("ann", 10, Stage.MQL, seq=4),  # the same change seen on a second field
        task("ann", 20),
        reassign("ann", 25, "rep-2"),
    ]
    history = build_histories(events)["ann"]
    assert [(v.stage, v.entered_at, v.left_at) for v in history.visits] == [
        (Stage.INQUIRY, at(0), at(10)),
        (Stage.MQL, at(10), at(30)),
        (Stage.SAL, at(30), None),
    ]
    assert history.current_stage is Stage.SAL


def test_time_in_stage_adds_every_visit_and_counts_an_open_one_up_to_now() -> None:
    events = [
        stage("bo", 0, Stage.MQL),
        stage("bo", 5, Stage.RECYCLED),
        stage("bo", 100, Stage.MQL),  # scored again after nurturing
        stage("bo", 103, Stage.SAL),
    ]
    history = build_histories(events)["bo"]
    assert history.time_in_stage(Stage.MQL, now=at(200)) == timedelta(hours=5 + 3)
    assert history.time_in_stage(Stage.SAL, now=at(200)) == timedelta(hours=97)
    assert history.time_in_stage(Stage.RECYCLED, now=at(200)) == timedelta(hours=95)
    assert history.entered(Stage.MQL) == [at(0), at(100)]


def test_reaching_a_later_stage_implies_the_main_line_stages_before_it() -> None:
    assert reached_stages([Stage.INQUIRY, Stage.SQL]) == {
        Stage.INQUIRY,
        Stage.MQL,
        Stage.SAL,
        Stage.SQL,
    }
    assert reached_stages([Stage.DISQUALIFIED]) == {Stage.DISQUALIFIED}


def test_current_stage_counts_people_by_where_they_are_now() -> None:
    events = [
        stage("a", 0, Stage.MQL),
        stage("b", 0, Stage.MQL),
        stage("b", 1, Stage.SAL),
        stage("c", 0, Stage.RECYCLED),
    ]
    assert current_stages(build_histories(events)) == {
        Stage.MQL: 1,
        Stage.SAL: 1,
        Stage.RECYCLED: 1,
    }
