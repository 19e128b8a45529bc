"""The sync log of real runs: what each push sent and what Salesforce answered, per touch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from sync.cli import main
from sync.connections import Connections
from sync.pipelines import run_pipeline
from sync.pipelines.replay import replay_dead_letters
from sync.synclog import story
from tests.sync.pipelines.conftest import BADGES, badge_pipeline, badge_rows, files_mapping
from tests.sync.pipelines.test_touches import _dead_letters, _notes_as_related_record

PIPELINE = "badges-to-salesforce"


@dataclass
class _Outcome:
    exit_code: int
    output: str


def _closedloop(capsys: pytest.CaptureFixture[str], *args: str) -> _Outcome:
    """``closedloop ARGS`` through the real entry point (its error handling included)."""
    capsys.readouterr()
    code = 0
    try:
        main(list(args))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    captured = capsys.readouterr()
    return _Outcome(code, captured.out + captured.err)


def _leads(ws: Any, count: int) -> list[str]:
    assert ws.sandbox.world is not None
    return [
        p.email for p in ws.sandbox.world.people
        if p.crm_kind == "lead" and p.converted_at is None and p.email
    ][:count]  # fmt: skip


def test_each_push_logs_the_payload_sent_and_the_answer_and_a_replay_is_logged(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_notes_as_related_record,
    )
    emails = _leads(ws, 3)
    rows = badge_rows(emails)
    rows[1]["notes"] = "not-an-id"
    ws.import_badges(rows)

    first = run_pipeline(ws.config, PIPELINE, ws.engine)
    assert first.state == "succeeded", first.error
    with ws.engine.connect() as conn:
        good = story(conn, email=emails[0])
        refused = story(conn, touch_key=f"{BADGES}:B1")

    assert [s.operation for s in good] == ["pull", "match", "create"]
    match, create = good[1], good[2]
    assert (match.answer or "").startswith("found lead ")
    task_id = ws.deliveries()[f"{BADGES}:B0"][1]
    assert (create.crm_id, create.run_id, create.crm) == (task_id, first.run_id, "salesforce")
    assert create.answer == f"ok: created Task {task_id}"
    assert create.payload is not None
    assert create.payload["target"] == "Task"
    assert create.payload["payload"]["WhoId"] == match.crm_id
    assert [s.operation for s in refused] == ["pull", "match", "refuse"]
    assert (refused[-1].answer or "").startswith("MALFORMED_ID: ")
    assert refused[-1].payload is not None
    assert refused[-1].payload["payload"]["WhatId"] == "not-an-id"

    files_mapping(ws.folder)  # the fix: the shipped mapping has no WhatId
    [letter] = _dead_letters(ws.engine)
    with Connections(ws.config) as connections:
        replay_dead_letters(ws.config, ws.engine, connections, ids=[letter.id])
    with ws.engine.connect() as conn:
        after = story(conn, touch_key=f"{BADGES}:B1")
        by_record = story(conn, crm_id=task_id)

    assert [s.operation for s in after] == ["pull", "match", "refuse", "replay", "match", "create"]
    assert after[3].answer == f"dead letter {letter.id} replayed: resolved"
    assert [s.touch_key for s in by_record] == [f"{BADGES}:B0", f"{BADGES}:B0"]


def test_closedloop_log_shows_a_persons_story_as_a_table_and_as_json(
    workspace_factory: Any, ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    [email] = _leads(ws, 1)
    ws.import_badges(badge_rows([email]))
    config = str(ws.config_path)
    synced = _closedloop(capsys, "sync", "--config", config)
    assert synced.exit_code == 0, synced.output
    task_id = ws.deliveries()[f"{BADGES}:B0"][1]

    table = _closedloop(capsys, "log", "-c", config, "--email", email.upper(), "--payload")
    as_json = _closedloop(capsys, "log", "-c", config, "--record", task_id, "--format", "json")
    nothing = _closedloop(capsys, "log", "-c", config, "--touch", "nope:1")
    both = _closedloop(capsys, "log", "-c", config, "--email", email, "--record", task_id)

    assert table.exit_code == 0, table.output
    for shown in ("pulled", "matched", "sent: created", task_id, "Closedloop_Key__c"):
        assert shown in table.output
    assert as_json.exit_code == 0, as_json.output
    steps = json.loads(as_json.output)
    assert [s["operation"] for s in steps] == ["pull", "create"]
    assert steps[1]["payload"]["payload"]["Closedloop_Key__c"] == f"{BADGES}:B0"
    assert (nothing.exit_code, nothing.output.strip()) == (0, "nothing logged for --touch nope:1")
    assert both.exit_code == 2
    assert "exactly one of --email, --touch or --record" in both.output
