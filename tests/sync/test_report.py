"""The report: one self-contained HTML file, JSON and CSV exports, and the commands."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from connectors.errors import ConfigError
from sandbox.world import World
from sync.cli import report_cmd, sla_cmd
from sync.config import Config, load_config
from sync.report import report_data, write_report
from tests.sync.report_world import analytics_config, world_ledger


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, World, Config]]:
    folder = tmp_path_factory.mktemp("report")
    engine, world = world_ledger(folder)
    yield engine, world, analytics_config(folder)
    engine.dispose()


def test_html_report_is_one_file_that_fetches_nothing(
    world: tuple[Engine, World, Config], tmp_path: Path
) -> None:
    engine, seeded, config = world
    out = write_report(engine, config, tmp_path / "r" / "report.html", now=seeded.now)
    html = out.read_text(encoding="utf-8")
    urls = set(re.findall(r"(?:src|href)=\"([^\"#][^\"]*)\"", html))
    assert urls == set()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert html.count('<svg class="chart"') == 8
    summary = html.index('id="summary"')
    assert summary < html.index('id="funnel"') < html.index('id="campaigns"')


def test_money_losing_campaigns_are_red_and_named_in_the_summary(
    world: tuple[Engine, World, Config],
) -> None:
    engine, seeded, config = world
    data = report_data(engine, config, now=seeded.now)
    losers = [c.name for c in data.money_losers]
    assert losers[0] == "Global Marketing Expo"  # the YAML cost (100,000) replaced the CRM's
    expo = data.money_losers[0]
    assert expo.spend == 100_000
    assert any("Global Marketing Expo, cost USD 100,000" in line for line in data.summary)
    from sync.report.html import render_html

    html = render_html(data)
    row = re.search(r'<tr class="loss"><td>Global Marketing Expo</td>', html)
    assert row is not None


def test_json_export_holds_every_table_with_numbers_that_agree(
    world: tuple[Engine, World, Config], tmp_path: Path
) -> None:
    engine, seeded, config = world
    out = write_report(engine, config, tmp_path / "report.json", fmt="json", now=seeded.now)
    document = json.loads(out.read_text(encoding="utf-8"))
    tables = document["tables"]
    assert {"funnel", "sla_by_rep", "sla_cases", "campaigns", "roi", "deals", "experiments"} <= set(
        tables
    )
    cases = tables["sla_cases"]
    breaches = sum(1 for c in cases if c["status"] in ("breached", "overdue"))
    assert sum(r["breached"] + r["overdue"] for r in tables["sla_by_rep"]) == breaches
    assert all(c["target_hours"] == 24 for c in cases)
    assert {r["team"] for r in tables["sla_by_team"]} == {"east", "west"}
    won = [d for d in seeded.opportunities if d.is_won]
    assert tables["deals"][0]["won"] == len(won)
    assert tables["deals"][0]["revenue"] == f"{sum(d.amount for d in won):.2f}"
    (experiment,) = tables["experiments"]
    assert experiment["experiment"] == "marketing-leads"
    assert experiment["verdict"]
    assert "Dana Ross" in {r["rep"] for r in tables["sla_by_rep"]}
    # Every model credits the same won revenue in total (attribution never creates money).
    totals: dict[str, float] = {}
    for row in tables["roi"]:
        totals[row["model"]] = totals.get(row["model"], 0.0) + float(row["attributed_revenue"])
    assert totals["crm_primary_campaign"] == float(sum(d.amount for d in won))


def test_csv_export_writes_one_file_per_table(
    world: tuple[Engine, World, Config], tmp_path: Path
) -> None:
    engine, seeded, config = world
    folder = write_report(engine, config, tmp_path / "csv", fmt="csv", now=seeded.now)
    names = sorted(p.name for p in folder.iterdir())
    assert "campaigns.csv" in names
    assert "sla_by_rep.csv" in names
    with (folder / "campaigns.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expo = next(r for r in rows if r["campaign"] == "Global Marketing Expo")
    assert expo["spend"] == "100000.00"
    assert expo["loses_money_w_shaped"] == "True"


def test_a_period_narrows_deals_to_that_period(world: tuple[Engine, World, Config]) -> None:
    engine, seeded, config = world
    everything = report_data(engine, config, now=seeded.now)
    october = report_data(engine, config, period="2026-10", now=seeded.now)
    in_october = [d for d in seeded.opportunities if d.created_at.strftime("%Y-%m") == "2026-10"]
    assert october.deals.new_opportunities == len(in_october)
    assert everything.deals.new_opportunities == len(seeded.opportunities)
    assert october.period.label == "2026-10"


def _app() -> typer.Typer:
    """The two commands mounted the way ``sync.cli`` mounts them."""
    app = typer.Typer()
    app.command("report")(report_cmd.report_command)
    app.add_typer(sla_cmd.app, name="sla")
    return app


def test_report_command_writes_the_file_and_prints_its_path(
    world: tuple[Engine, World, Config], tmp_path: Path
) -> None:
    engine, _seeded, config = world
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        _app(),
        [
            "report",
            "--format",
            "json",
            "--out",
            str(out),
            "--config",
            str(config.path),
            "--database-url",
            str(engine.url),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}"
    assert json.loads(out.read_text(encoding="utf-8"))["period"]["label"] == "all time"


def test_as_of_measures_the_report_at_the_end_of_that_day(
    world: tuple[Engine, World, Config], tmp_path: Path
) -> None:
    engine, _seeded, config = world
    out = tmp_path / "r.json"
    args = ["report", "--format", "json", "--out", str(out), "--period", "last-30d"]
    args += ["--as-of", "2026-06-30", "--config", str(config.path)]
    result = CliRunner().invoke(_app(), [*args, "--database-url", str(engine.url)])
    assert result.exit_code == 0, result.output
    period = json.loads(out.read_text(encoding="utf-8"))["period"]
    assert period["end"].startswith("2026-06-30T23:59:59")
    assert period["start"].startswith("2026-05-31T23:59:59")


def test_report_command_refuses_a_bad_period_with_the_accepted_forms(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["report", "--period", "Q5"])
    assert isinstance(result.exception, ConfigError)
    assert "2026-Q3" in str(result.exception)


def test_sla_breaches_lists_late_hand_offs_as_json(world: tuple[Engine, World, Config]) -> None:
    engine, _seeded, config = world
    result = CliRunner().invoke(
        _app(),
        [
            "sla",
            "breaches",
            "--since",
            "2020-01-01",
            "--format",
            "json",
            "--config",
            str(config.path),
            "--database-url",
            str(engine.url),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows
    assert {r["status"] for r in rows} <= {"breached", "overdue"}
    assert all(r["target_hours"] == 24 for r in rows)
    late = [r for r in rows if r["status"] == "breached"]
    assert all(r["late_by_hours"] > 0 for r in late)


def test_analytics_section_mistakes_are_reported_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\nanalytics:\n  period: next-week\n  experiments:\n    x:\n"
        "      groups: {a: [r1], b: [r1]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = "\n".join(f"{i.line}: {i.message}" for i in raised.value.issues)
    assert "unknown period 'next-week'" in text
    assert "reps in both groups: r1" in text
