"""Report details a reader sees: the footer's command runs, months without deals are left out
of the pipeline table, channels have one name each, settings are said in the reader's words."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from sandbox.world import World
from sync.analytics.channels import channel_name
from sync.analytics.deals import DealMetrics
from sync.cli import app
from sync.config import Config
from sync.report import report_data
from sync.report.export import to_json
from sync.report.html import active_months, render_html, reproduce_command
from tests.sync.report_world import analytics_config, world_ledger


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, World, Config]]:
    folder = tmp_path_factory.mktemp("details")
    engine, world = world_ledger(folder)
    yield engine, world, analytics_config(folder)
    engine.dispose()


def _footer_command(html: str) -> list[str]:
    start = html.index("<footer>")
    code = html[html.index("<code>", start) + len("<code>") : html.index("</code>", start)]
    return shlex.split(code.replace("&#34;", '"').replace("&#39;", "'"))


@pytest.mark.parametrize("period", [None, "2026-Q3", "last-90d", "2026-07-01..2026-09-30"])
def test_the_footers_command_runs_and_gives_the_reports_numbers(
    world: tuple[Engine, World, Config], tmp_path: Path, period: str | None
) -> None:
    engine, seeded, config = world
    data = report_data(engine, config, period=period, now=seeded.now)
    command = _footer_command(render_html(data))
    assert command[:2] == ["closedloop", "report"]
    out = tmp_path / "again.json"
    extra = ["--out", str(out), "--config", str(config.path), "--database-url", str(engine.url)]
    result = CliRunner().invoke(app, [*command[1:], *extra])
    assert result.exit_code == 0, result.output
    again = json.loads(out.read_text(encoding="utf-8"))
    assert again["period"]["label"] == data.period.label
    assert again == json.loads(to_json(data))  # every number, measured at the same moment


def test_the_old_footers_all_time_label_is_a_period_too(
    world: tuple[Engine, World, Config], tmp_path: Path
) -> None:
    engine, _seeded, _config = world
    out = tmp_path / "r.json"
    args = ["report", "--period", "all time", "--format", "json", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--database-url", str(engine.url)])
    assert result.exit_code == 0, result.output


def test_reproduce_command_quotes_nothing_a_shell_would_split() -> None:
    class _Data:
        generated_at = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)

        class period:  # noqa: N801
            label, start, end = "last 12 weeks", datetime(2026, 8, 9, tzinfo=UTC), None

    text = reproduce_command(_Data())  # type: ignore[arg-type]
    assert text == (
        "closedloop report --period last-12w --as-of 2026-11-01T09:30:00Z --format json"
    )


def _month(label: str, new: int = 0, open_pipeline: int = 0, revenue: int = 0) -> DealMetrics:
    return DealMetrics(label, new, Decimal(0), Decimal(open_pipeline), 0, 0, 0, Decimal(revenue))


def test_pipeline_months_start_at_the_first_busy_month_and_end_at_the_last() -> None:
    months = [
        _month("2025-01"),
        _month("2025-02"),
        _month("2025-03", new=2),
        _month("2025-04"),  # quiet in between: kept, it is part of the trend
        _month("2025-05", open_pipeline=5000),
        _month("2025-06", revenue=100),
        _month("2025-07"),
    ]
    assert [m.label for m in active_months(months)] == ["2025-03", "2025-04", "2025-05", "2025-06"]
    assert active_months([_month("2025-01")]) == []


def test_the_pipeline_table_has_no_all_zero_months_at_its_ends(
    world: tuple[Engine, World, Config],
) -> None:
    engine, seeded, config = world
    data = report_data(engine, config, now=seeded.now)
    html = render_html(data)
    table = html[html.index('id="revenue"') : html.index('id="campaigns"')]
    shown = active_months(data.deals_by_month)
    assert len(shown) < len(data.deals_by_month)  # the all-time range pads empty months
    for m in data.deals_by_month:
        assert (f"<tr><td>{m.label}</td>" in table) == (m in shown)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("web", "Website"),
        ("Website", "Website"),
        ("Advertisement", "Advertising"),
        ("advertising", "Advertising"),
        ("Banner Ads", "Banner ads"),
        ("banner_ads", "Banner ads"),
        ("paid_search", "Paid search"),
        ("Paid Search", "Paid search"),
        ("EMAIL", "Email"),
        ("e-mail", "Email"),
        ("Conference", "Event"),
        ("trade_show", "Trade show"),
        ("Referral Program", "Referral program"),
        ("SEO audit", "SEO audit"),
        ("  podcast  ", "Podcast"),
        ("", None),
        (None, None),
    ],
)
def test_every_spelling_of_a_channel_shows_one_name(raw: str | None, shown: str | None) -> None:
    assert channel_name(raw) == shown


def test_the_report_shows_each_channel_under_one_name(
    world: tuple[Engine, World, Config],
) -> None:
    engine, seeded, config = world
    data = report_data(engine, config, now=seeded.now)
    channels = [row.group for row in data.funnel_by_channel]
    assert channels
    assert len({c.lower() for c in channels}) == len(channels)
    assert all(c == channel_name(c) or c.startswith("(") for c in channels)
    assert {c.channel for c in data.campaigns} >= {"Email", "Webinar", "Paid search"}


def test_a_report_of_chosen_crms_says_so_without_setting_names(tmp_path: Path) -> None:
    engine, seeded = world_ledger(tmp_path)
    try:
        config = analytics_config(tmp_path)
        text = config.path.read_text(encoding="utf-8")
        config.path.write_text(text.replace("analytics:\n", "analytics:\n  crms: [salesforce]\n"))
        from sync.config import load_config

        data = report_data(engine, load_config(config.path), now=seeded.now)
    finally:
        engine.dispose()
    html = render_html(data)
    assert "analytics.crms" not in html
    assert "This report counts the people, deals and campaigns of salesforce only" in html


def test_sla_breaches_csv_holds_the_same_records_as_its_json(
    world: tuple[Engine, World, Config],
) -> None:
    engine, _seeded, config = world
    args = ["sla", "breaches", "--since", "2020-01-01", "--as-of", "2026-11-01"]
    args += ["--config", str(config.path), "--database-url", str(engine.url)]
    as_json = CliRunner().invoke(app, [*args, "--format", "json"])
    as_csv = CliRunner().invoke(app, [*args, "--format", "csv"])
    assert as_json.exit_code == as_csv.exit_code == 0, as_csv.output
    records = json.loads(as_json.output)
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert len(rows) == len(records) > 10
    assert [r["email"] for r in rows] == [r["email"] or "" for r in records]
    assert [float(r["late_by_hours"]) for r in rows] == [r["late_by_hours"] for r in records]
