"""``closedloop demo``: the whole loop against the in-process sandbox, then where to look."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import ConfigError
from sandbox.seed import DISQUALIFY_REASONS, RECYCLE_REASONS, generate
from sync.cli import app
from sync.cli.demo_cmd import DEMO_SEED, DemoResult, parse_now, run_demo
from sync.report import report_data
from sync.report.export import to_json


def test_demo_runs_every_pipeline_against_both_crms_and_prints_the_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")])

    assert result.exit_code == 0, result.output
    expected = (
        "What the loop did",
        "touches pushed to CRM timelines",
        "dispositions recorded",
        "API calls to salesforce",
        "closedloop runs",
        "closedloop dead-letters list",
    )
    for words in expected:
        assert words in result.output
    assert "failed" not in result.output


def test_demo_pushes_to_salesforce_and_hubspot_and_is_repeatable(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    second = run_demo(tmp_path)

    for outcome in (first, second):
        runs = {s.pipeline: s for s in outcome.summaries}
        assert all(s.state == "succeeded" for s in runs.values()), {
            n: s.error for n, s in runs.items()
        }
        assert runs["marketo-to-salesforce"].count("pushed") > 0
        assert runs["marketo-to-hubspot"].count("pushed") > 0
        assert runs["badge-scans-to-salesforce"].count("pushed") > 0
        assert runs["salesforce-dispositions"].count("dispositions") > 0
        assert outcome.skipped == {}
        if outcome.engine is not None:
            outcome.engine.dispose()
    assert first.summaries[2].counts == second.summaries[2].counts


# -- the same demo on any day --------------------------------------------------------------------

_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?\+00:00")


def _seen(result: DemoResult) -> dict[str, Any]:
    """What a user sees of a demo run, with every time told relative to the world's now.

    Left out, because they follow the calendar rather than the world: the report's per-month
    rows, and how many records the mappings' page-view digests wrote ("rendered") with the API
    calls that carry them: digests group by local day in zones with daylight saving, whose
    changes fall on calendar dates.
    """
    assert result.engine is not None
    assert result.as_of is not None
    as_of = result.as_of
    report = json.loads(to_json(report_data(result.engine, result.config, period="all", now=as_of)))
    result.engine.dispose()
    del report["tables"]["funnel_by_month"]
    del report["tables"]["reasons_by_month"]
    report["tables"]["deals"] = [r for r in report["tables"]["deals"] if r["period"] == "all time"]
    text = _ISO_TIME.sub(
        lambda m: f"now{(datetime.fromisoformat(m.group(0)) - as_of).total_seconds():+}",
        json.dumps(report, sort_keys=True),
    )
    runs = {
        s.pipeline: (s.state, {k: v for k, v in s.counts.items() if k != "rendered"})
        for s in result.summaries
    }
    return {
        "runs": runs,
        "imported": (result.imported, result.import_rejects),
        "report": json.loads(text),
    }


@pytest.fixture(scope="module")
def today(tmp_path_factory: pytest.TempPathFactory) -> tuple[datetime, dict[str, Any]]:
    result = run_demo(tmp_path_factory.mktemp("today"))
    assert result.as_of is not None
    return result.as_of, _seen(result)


def _next_month(day: datetime) -> datetime:
    """Midnight (UTC) on the first of the month after ``day``'s."""
    return datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "later",
    [
        lambda now: now + timedelta(days=365),
        lambda now: _next_month(_next_month(now)) - timedelta(minutes=30),
        lambda now: _next_month(_next_month(now)) + timedelta(minutes=30),
    ],
    ids=["a-year-ahead", "the-last-half-hour-of-next-month", "an-hour-later-in-the-month-after"],
)
def test_the_demo_pulls_pushes_and_reports_the_same_whatever_day_it_is(
    tmp_path: Path,
    today: tuple[datetime, dict[str, Any]],
    later: Callable[[datetime], datetime],
) -> None:
    as_of, seen_today = today
    moment = later(datetime.now(UTC))

    result = run_demo(tmp_path, now=moment)

    assert result.as_of == datetime.combine(moment.date(), time(0), UTC) != as_of
    seen = _seen(result)
    assert seen == seen_today
    pulled = seen["runs"]["marketo-to-salesforce"][1]["pulled"]
    assert pulled == len(generate(DEMO_SEED, now=as_of).activities)  # every seeded activity


def test_the_demo_report_shows_the_reasons_reps_gave_for_recycles_and_disqualifications(
    today: tuple[datetime, dict[str, Any]],
) -> None:
    _, seen = today
    tables = seen["report"]["tables"]
    given = {(r["outcome"], r["reason"]) for r in tables["reasons"]}

    assert {reason for outcome, reason in given if outcome == "Recycled"} <= set(RECYCLE_REASONS)
    assert {r for o, r in given if o == "Disqualified"} <= set(DISQUALIFY_REASONS)
    assert {outcome for outcome, _ in given} == {"Recycled", "Disqualified"}
    assert [r["without_reason"] for r in tables["reasons_missing"]] == [0, 0]


def test_an_unreadable_now_is_refused_before_the_demo_starts(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(folder)], env={"CLOSEDLOOP_DEMO_NOW": "next friday"}
    )

    assert isinstance(result.exception, ConfigError)
    assert "'next friday' is neither a date (2027-06-01) nor an ISO time" in str(result.exception)
    assert not folder.exists()


def test_now_takes_a_date_or_an_iso_time_read_as_utc() -> None:
    assert parse_now("2027-06-01") == datetime(2027, 6, 1, tzinfo=UTC)
    assert parse_now("2027-06-01T09:30:00") == datetime(2027, 6, 1, 9, 30, tzinfo=UTC)
    assert parse_now("2027-06-01T09:30:00+02:00") == datetime(2027, 6, 1, 7, 30, tzinfo=UTC)
