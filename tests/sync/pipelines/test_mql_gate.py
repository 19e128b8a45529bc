"""``lifecycle.mql_gate``: people are created, or their touches pushed, only once they are MQL.

Through ``closedloop sync`` against the Salesforce sandbox, with badge scans (event_attended) and
an MQL definition of two event visits: what waits is held with the verdict in words, looked at
again on every run, and delivered once the person qualifies (each touch once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sync.cli import app
from sync.ledger.models import DeliveryRow
from tests.sync.pipelines.conftest import SCAN_DAY, badge_pipeline, badge_rows, known_emails

PIPELINE = "badges-to-salesforce"
TWO_VISITS = {"any_of": [{"touched": {"kinds": ["event_attended"], "at_least": 2}}]}


def _gate(*what: str) -> Any:
    def edit(mapping: dict[str, Any]) -> None:
        mapping["lifecycle"]["mql"] = TWO_VISITS
        mapping["lifecycle"]["mql_gate"] = list(what)

    return edit


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _leads(ws: Any) -> set[str]:
    store = ws.sandbox.store("salesforce")
    with store.lock:
        return {(r.get("Email") or "").lower() for r in store.records["Lead"].values()}


def _held(ws: Any) -> list[str]:
    """The reasons of the deliveries left waiting."""
    table = DeliveryRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        rows = conn.execute(select(table.c.last_error).where(table.c.state == "failed"))
        return [row.last_error for row in rows]


def _scan(ws: Any, email: str, badge: str, minute: int) -> None:
    at = f"{SCAN_DAY:%Y-%m-%d}T15:{minute:02d}:00Z"
    ws.import_badges([{"Badge": badge, "Email": email, "Scanned": at}], name=f"{badge}.csv")


@pytest.fixture
def sqlite_only(ledger_url: str) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")


def test_people_are_created_only_once_they_are_mql(
    workspace_factory: Any, sqlite_only: None
) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_gate("create_people"),
    )
    known = known_emails(ws.sandbox, 1)[0]
    rows = badge_rows(["twice@expo.example", "twice@expo.example", "once@expo.example", known])
    ws.import_badges(rows)

    first = _cli("sync", "--config", str(ws.config_path))

    assert first.exit_code == 0, first.output
    assert "1 touch(es) wait until their person is MQL" in first.output
    assert "twice@expo.example" in _leads(ws)
    assert "once@expo.example" not in _leads(ws)
    # A person the CRM knows is not gated by create_people: their one scan is pushed.
    assert sorted(ws.tasks_by_key().values()) == [1, 1, 1]
    assert _held(ws) == [
        "held until MQL (lifecycle.mql_gate): not MQL: one of (2+ event_attended: no)"
    ]

    _scan(ws, "once@expo.example", "B900", 30)
    second = _cli("sync", "--config", str(ws.config_path))

    assert second.exit_code == 0, second.output
    assert "once@expo.example" in _leads(ws)
    assert sorted(ws.tasks_by_key().values()) == [1, 1, 1, 1, 1]


def test_touches_of_known_people_wait_until_they_are_mql(
    workspace_factory: Any, sqlite_only: None, tmp_path: Path
) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_gate("push_touches"),
    )
    known = known_emails(ws.sandbox, 1)[0]
    ws.import_badges(badge_rows([known]))

    first = _cli("sync", "--config", str(ws.config_path))

    assert first.exit_code == 0, first.output
    assert ws.tasks_by_key() == {}
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        json.dumps({
            "source": "badges", "source_id": "S1", "kind": "event_attended",
            "occurred_at": "2024-05-03T14:00:00Z", "email": known,
            "crm_person": {"external_id": "00Q000000000001", "kind": "lead"},
        }) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    preview = _cli(
        "mappings", "preview", "--pipeline", PIPELINE, "--from", str(samples),
        "--config", str(ws.config_path),
    )  # fmt: skip
    assert preview.exit_code == 0, preview.output
    assert "not MQL: one of (2+ event_attended: no)" in preview.output
    assert "HELD" in preview.output

    _scan(ws, known, "B901", 45)
    second = _cli("sync", "--config", str(ws.config_path))

    assert second.exit_code == 0, second.output
    assert sorted(ws.tasks_by_key().values()) == [1, 1]


def test_a_gate_without_an_mql_definition_is_refused_where_it_is_written(
    workspace_factory: Any, sqlite_only: None
) -> None:
    def edit(mapping: dict[str, Any]) -> None:
        mapping["lifecycle"].pop("mql", None)
        mapping["lifecycle"]["mql_gate"] = ["create_people"]

    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")}, edit_mapping=edit
    )

    checked = _cli("config", "check", "--config", str(ws.config_path))

    assert checked.exit_code == 2
    assert "mql_gate needs an mql definition" in checked.output
