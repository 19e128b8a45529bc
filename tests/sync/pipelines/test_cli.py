"""``closedloop sync|backfill|runs|dead-letters`` as a user runs them (SQLite ledger)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import ConfigError
from sync.cli import app
from tests.sync.pipelines.conftest import (
    BADGES,
    SCAN_DAY,
    badge_pipeline,
    badge_rows,
    known_emails,
)

PIPELINE = "badges-to-salesforce"


def _require_notes(mapping: dict[str, Any]) -> None:
    mapping["touches"]["fields"]["Description"] = {
        "source": "touch.attributes.notes",
        "required": True,
    }


@pytest.fixture
def ws(workspace_factory: Any, ledger_url: str) -> Any:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")
    workspace = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_require_notes,
    )
    rows = badge_rows(known_emails(workspace.sandbox, 4), notes="met at the booth")
    rows[1]["notes"] = ""
    workspace.import_badges(rows)
    return workspace


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def test_sync_prints_what_each_run_did_and_runs_lists_it(ws: Any) -> None:
    done = _cli("sync", "--config", str(ws.config_path))

    assert done.exit_code == 0, done.output
    assert PIPELINE in done.output
    assert "succeeded" in done.output
    listed = _cli("runs", "--config", str(ws.config_path))
    assert listed.exit_code == 0
    assert PIPELINE in listed.output
    assert "pushed 3" in listed.output


def test_dead_letters_can_be_listed_shown_and_discarded(ws: Any) -> None:
    _cli("sync", "--config", str(ws.config_path))

    listed = _cli("dead-letters", "list", "--config", str(ws.config_path))
    assert listed.exit_code == 0
    assert f"{BADGES}:B1" in listed.output
    shown = _cli("dead-letters", "show", "1", "--config", str(ws.config_path))
    letter = json.loads(shown.output)
    assert (letter["stage"], letter["code"], letter["status"]) == ("map", "MAPPING", "open")
    assert letter["payload"]["key"] == f"{BADGES}:B1"
    gone = _cli("dead-letters", "discard", "1", "--config", str(ws.config_path))
    assert "discarded 1 of 1" in gone.output
    assert (
        "no open dead letters"
        in _cli("dead-letters", "list", "--config", str(ws.config_path)).output
    )


def test_runs_and_dead_letters_print_json_and_csv_for_scripts(ws: Any) -> None:
    _cli("sync", "--config", str(ws.config_path))

    runs = json.loads(_cli("runs", "--format", "json", "--config", str(ws.config_path)).output)
    assert [r["pipeline"] for r in runs] == [PIPELINE]
    assert runs[0]["state"] == "succeeded"
    assert runs[0]["counts"]["pushed"] == 3
    assert runs[0]["started_at"] <= runs[0]["finished_at"]
    listed = _cli("runs", "--format", "csv", "--config", str(ws.config_path))
    (row,) = csv.DictReader(io.StringIO(listed.output))
    assert (row["id"], row["pipeline"], row["state"]) == (str(runs[0]["id"]), PIPELINE, "succeeded")
    assert "pushed=3" in row["counts"].split("; ")

    letters = _cli("dead-letters", "list", "--format", "json", "--config", str(ws.config_path))
    (letter,) = json.loads(letters.output)
    assert (letter["record"], letter["stage"], letter["code"]) == (f"{BADGES}:B1", "map", "MAPPING")
    assert letter["status"] == "open"
    as_csv = _cli("dead-letters", "list", "--format", "csv", "--config", str(ws.config_path))
    (row,) = csv.DictReader(io.StringIO(as_csv.output))
    assert row["record"] == f"{BADGES}:B1"
    assert row["reason"] == letter["reason"]  # in full, not cut to the table's width
    bad = _cli("runs", "--format", "yaml", "--config", str(ws.config_path))
    assert bad.exit_code != 0
    assert "table, json or csv" in str(bad.exception)


def test_runs_keeps_pipeline_names_whole_at_80_columns(ws: Any) -> None:
    _cli("sync", "--config", str(ws.config_path))

    result = CliRunner().invoke(
        app, ["runs", "--config", str(ws.config_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "\u2026" not in result.output  # nothing cut short
    (first,) = [line for line in lines if PIPELINE in line]  # whole, not broken mid-word
    assert "succeeded" in first
    assert any("pushed 3" in line for line in lines)
    wide = CliRunner().invoke(
        app, ["runs", "--config", str(ws.config_path)], env={"COLUMNS": "200"}
    )
    assert "\u2503 pipeline" in wide.output  # a table where it fits


def test_replay_of_a_still_broken_record_exits_1_and_keeps_it_open(ws: Any) -> None:
    _cli("sync", "--config", str(ws.config_path))

    again = _cli("dead-letters", "replay", "--all", "--config", str(ws.config_path))

    assert again.exit_code == 1
    assert "still failing 1" in again.output
    shown = json.loads(_cli("dead-letters", "show", "1", "--config", str(ws.config_path)).output)
    assert (shown["status"], shown["attempts"]) == ("open", 1)


def test_backfill_rejects_a_date_it_cannot_read(ws: Any) -> None:
    result = _cli("backfill", "--since", "last tuesday", "--config", str(ws.config_path))

    assert isinstance(result.exception, ConfigError)
    assert "2024-05-01" in str(result.exception)


def test_backfill_from_a_date_is_idempotent(ws: Any) -> None:
    since = f"{SCAN_DAY - timedelta(days=30):%Y-%m-%d}"  # before every scan
    first = _cli("backfill", "--since", since, "--config", str(ws.config_path))
    second = _cli("backfill", "--since", since, "--config", str(ws.config_path))

    assert first.exit_code == 0
    assert second.exit_code == 0
    assert sorted(ws.tasks_by_key().values()) == [1, 1, 1]
