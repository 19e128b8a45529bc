"""The touches pipeline with ``campaign_members`` on: badge scans -> Tasks and CampaignMembers in
the Salesforce sandbox; refusals dead-lettered, crashes recovered, replays settled."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select

from connectors.salesforce.connector import SalesforceConnector
from sync.cli.import_cmd import import_file
from sync.connections import Connections
from sync.ledger import DeadLetterRow
from sync.pipelines import run_pipeline
from sync.pipelines.replay import replay_dead_letters
from tests.sync.pipelines.conftest import (
    BADGES,
    SCAN_DAY,
    Workspace,
    badge_pipeline,
    known_emails,
    with_salesforce_settings,
)

PIPELINE = "badges-to-salesforce"
EXPO = "Pipeline Expo"
NO_SUCH_ID = "701000000009999"  # a well-formed Campaign Id no Campaign has
BOOTH_SCANS = {
    "type": "files",
    "columns": {"email": "Email", "occurred_at": "Scanned", "source_id": "Badge",
                "campaign": "Booth"},
    "kind": "event_attended",
}  # fmt: skip


def _members_on(mapping: dict[str, Any]) -> None:
    mapping["campaign_members"] = {
        "enabled": True,
        "match": "name",
        "campaigns": {"Partner Booth": NO_SUCH_ID},
        "status_order": ["Sent", "Registered", "Attended", "Responded"],
        "statuses": {"event_attended": "Attended", "list_import": "Sent"},
    }


def _workspace(workspace_factory: Any) -> Workspace:
    ws: Workspace = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_members_on,
        connections={BADGES: BOOTH_SCANS},
    )
    store = ws.sandbox.store("salesforce")
    with store.lock:
        store.create("Campaign", {"Name": EXPO})
    return ws


def _import(ws: Workspace, scans: Sequence[tuple[str, str]]) -> None:
    """Import (email, booth) badge scans, one a minute."""
    path = ws.folder / "scans.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Badge", "Email", "Scanned", "Booth"])
        for n, (email, booth) in enumerate(scans):
            writer.writerow([f"B{n}", email, f"{SCAN_DAY:%Y-%m-%d}T10:{n:02d}:00Z", booth])
    settings = ws.config.connections[BADGES].settings
    assert import_file(ws.engine, path, BADGES, settings).imported == len(scans)  # type: ignore[arg-type]


def _members(ws: Workspace, campaign: str) -> dict[str, str]:
    """Email of each member of the Campaign named ``campaign`` -> its status."""
    store = ws.sandbox.store("salesforce")
    with store.lock:
        ids = {
            r["Id"] for r in store.records["Campaign"].values()
            if r["Name"] == campaign and not r.get("IsDeleted")
        }  # fmt: skip
        members = [
            r for r in store.records["CampaignMember"].values()
            if r["CampaignId"] in ids and not r.get("IsDeleted")
        ]  # fmt: skip
        found = {}
        for member in members:
            person = member.get("LeadId") or member.get("ContactId")
            _, row = store.lookup(person) or ("", {})
            found[str(row.get("Email")).lower()] = member["Status"]
    return found


def _open_letters(ws: Workspace) -> list[Any]:
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.status == "open").order_by(table.c.id))
        return list(rows.all())


def test_delivered_touches_make_members_once_and_refusals_become_dead_letters(
    workspace_factory: Any,
) -> None:
    ws = _workspace(workspace_factory)
    emails = known_emails(ws.sandbox, 8)
    _import(ws, [*((e, EXPO) for e in emails[:6]), (emails[6], "Nowhere Expo"),
                 (emails[7], "Partner Booth")])  # fmt: skip

    first = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert first.state == "succeeded", first.error
    assert first.count("pushed") == 8, "refused memberships do not hold back the Tasks"
    assert first.count("campaign_members") == 6
    assert first.count("campaign_members_created") == 6
    assert first.count("campaign_members_refused") == 2
    assert _members(ws, EXPO) == {e.lower(): "Attended" for e in emails[:6]}
    assert all(state == "confirmed" for state, _ in ws.deliveries().values())
    letters = {row.record_key: row for row in _open_letters(ws)}
    assert set(letters) == {f"{BADGES}:B6", f"{BADGES}:B7"}
    unknown, bad_id = letters[f"{BADGES}:B6"], letters[f"{BADGES}:B7"]
    assert (unknown.stage, unknown.code) == ("push", "UNKNOWN_CAMPAIGN")
    assert "no Campaign is named 'Nowhere Expo'" in unknown.reason
    assert (bad_id.stage, bad_id.code) == ("push", "INVALID_CROSS_REFERENCE_KEY")
    assert "invalid cross reference id" in bad_id.reason
    assert bad_id.payload["campaign_member"]["campaign"] == NO_SUCH_ID

    again = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert again.state == "succeeded"
    assert again.count("campaign_members") == 0
    assert len(_members(ws, EXPO)) == 6
    assert len(_open_letters(ws)) == 2

    # The fix for the unknown one: the Campaign now exists. Replay settles it; the bad Id stays.
    store = ws.sandbox.store("salesforce")
    with store.lock:
        store.create("Campaign", {"Name": "Nowhere Expo"})
    with Connections(ws.config) as connections:
        report = replay_dead_letters(ws.config, ws.engine, connections, pipeline=PIPELINE)

    assert report.replayed == [unknown.id]
    assert report.failed == [bad_id.id]
    assert _members(ws, "Nowhere Expo") == {emails[6].lower(): "Attended"}
    assert [row.id for row in _open_letters(ws)] == [bad_id.id]
    assert sum(ws.tasks_by_key().values()) == 8


def test_a_crash_after_the_task_push_loses_no_membership(
    workspace_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(workspace_factory)
    emails = known_emails(ws.sandbox, 5)
    _import(ws, [(e, EXPO) for e in emails])

    def die(*_args: Any, **_kwargs: Any) -> Any:
        raise SystemExit("killed between the Task push and the membership sync")

    with monkeypatch.context() as patch:
        patch.setattr(SalesforceConnector, "sync_campaign_members", die)
        with pytest.raises(SystemExit):
            run_pipeline(ws.config, PIPELINE, ws.engine)

    assert len(ws.tasks_by_key()) == 5, "the Tasks reached Salesforce before the crash"
    assert _members(ws, EXPO) == {}
    assert {state for state, _ in ws.deliveries().values()} == {"intended"}

    after = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert after.state == "succeeded", after.error
    assert _members(ws, EXPO) == {e.lower(): "Attended" for e in emails}
    assert set(ws.tasks_by_key().values()) == {1}
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}


def test_a_membership_refused_for_a_row_lock_stays_pending_and_is_settled_by_a_later_run(
    workspace_factory: Any,
) -> None:
    ws = with_salesforce_settings(_workspace(workspace_factory), lock_retry_backoff_s=0)
    emails = known_emails(ws.sandbox, 3)
    _import(ws, [(e, EXPO) for e in emails])
    store = ws.sandbox.store("salesforce")
    with store.lock:
        expo = next(r["Id"] for r in store.records["Campaign"].values() if r["Name"] == EXPO)
    store.hold_locks([expo])  # a mass update of the Campaign holds it past the 10 s wait

    first = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert first.state == "succeeded", first.error
    assert (first.count("pushed"), first.count("failed")) == (0, 3)
    assert first.count("campaign_members_refused") == 0
    assert _open_letters(ws) == []
    assert _members(ws, EXPO) == {}
    assert {state for state, _ in ws.deliveries().values()} == {"failed"}

    store.release_locks()
    second = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert (second.count("pushed"), second.count("campaign_members_created")) == (3, 3)
    assert _members(ws, EXPO) == {e.lower(): "Attended" for e in emails}
    assert sum(ws.tasks_by_key().values()) == 3  # the Tasks written twice, once each
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}
