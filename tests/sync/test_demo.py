"""``closedloop demo``: the whole loop against the in-process sandbox, then where to look."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sync.cli.demo_cmd import run_demo
from sync.cli.sync_cmd import _standalone


def test_demo_runs_every_pipeline_against_both_crms_and_prints_the_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(_standalone(), ["demo", "--dir", str(tmp_path / "demo")])

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
