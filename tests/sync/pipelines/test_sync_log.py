"""The sync log of real runs: what each push sent and what Salesforce answered, per touch."""

from __future__ import annotations

from typing import Any

from sync.connections import Connections
from sync.pipelines import run_pipeline
from sync.pipelines.replay import replay_dead_letters
from sync.synclog import story
from tests.sync.pipelines.conftest import BADGES, badge_pipeline, badge_rows, files_mapping
from tests.sync.pipelines.test_touches import _dead_letters, _notes_as_related_record

PIPELINE = "badges-to-salesforce"


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
