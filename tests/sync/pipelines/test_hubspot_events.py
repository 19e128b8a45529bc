"""The touches pipeline into HubSpot event targets: badge scans become timeline events exactly
once (replays and a crash before the ledger commit included) or custom behavioral events, which
replays never repeat once the ledger confirmed them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.events import event_id
from sandbox.hubspot import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, HubSpotStore
from sandbox.server import SandboxServer
from sync.pipelines import run_pipeline
from tests.sync.pipelines.conftest import (
    BADGES,
    CAMPAIGN,
    SCAN_DAY,
    Workspace,
    badge_rows,
    known_emails,
)

PIPELINE = "badges-to-hubspot"
TEMPLATE = "1001298"
MAPPING = "mappings/test-files-hubspot.yaml"


def _mapping(folder: Path, kind_rule: dict[str, Any]) -> None:
    source = Path(__file__).resolve().parents[3] / "mappings" / "files-hubspot.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["touches"]["kinds"] = {"event_attended": kind_rule}
    path = folder / MAPPING
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


TIMELINE = {
    "target": "timeline_event",
    "event": {"template_id": TEMPLATE, "extra_data": {"badge": {"source": "touch.source_id"}}},
    "fields": {
        "event": "{{ touch.campaign }}",
        "notes": "{{ touch.attributes.notes | default('-') }}",
    },
}
BEHAVIORAL = {
    "target": "behavioral_event",
    "event": {"name": "pe123_booth_visit"},
    "fields": {"booth_event": {"source": "touch.campaign"}},
}


@pytest.fixture
def hub(sandbox: SandboxServer) -> Iterator[HubSpotStore]:
    """The sandbox portal with one event template; reset afterwards."""
    store: HubSpotStore = sandbox.store("hubspot")
    with store.lock:
        store.data.event_templates = {TEMPLATE}
    yield store
    with store.lock:
        store.data.event_templates = None


def _workspace(
    workspace_factory: Any,
    tmp_path: Path,
    sandbox: SandboxServer,
    rule: dict[str, Any],
    emails: int = 6,
) -> Workspace:
    # Timeline events need the public app's OAuth token, not the demo's private app token.
    oauth = {
        "type": "hubspot",
        "host": sandbox.hubspot_url,
        "auth": {"method": "oauth", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                 "refresh_token": REFRESH_TOKEN},
    }  # fmt: skip
    pipeline = {"kind": "touches", "source": BADGES, "sink": "hubspot", "mapping": MAPPING}
    _mapping(tmp_path / "ws", rule)  # the workspace's folder, before its config is loaded
    ws: Workspace = workspace_factory({PIPELINE: pipeline}, connections={"hubspot": oauth})
    # What a user does once per portal (`closedloop check hubspot --fix`): the mapping's other
    # kinds write notes with closedloop's own properties, which the sync checks the portal has.
    connector = ws.config.connections["hubspot"].build()
    try:
        connector.check_and_fix()
    finally:
        connector.close()
    ws.import_badges(badge_rows(known_emails(ws.sandbox, emails), notes="met at the booth"))
    return ws


def _timeline_events(store: HubSpotStore) -> dict[str, dict[str, Any]]:
    with store.lock:
        return {e["id"]: dict(e) for e in store.data.timeline_events.values()}


def test_badge_scans_become_timeline_events_once_over_three_runs_and_a_crash(
    workspace_factory: Any,
    tmp_path: Path,
    sandbox: SandboxServer,
    hub: HubSpotStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = _workspace(workspace_factory, tmp_path, sandbox, TIMELINE)
    original = HubSpotConnector.push_touches

    def crash_after_the_call(self: HubSpotConnector, touches: Any) -> Any:
        original(self, touches)
        raise SystemExit("killed between the call and the ledger commit")

    with monkeypatch.context() as patch:
        patch.setattr(HubSpotConnector, "push_touches", crash_after_the_call)
        with pytest.raises(SystemExit):
            run_pipeline(ws.config, PIPELINE, ws.engine)
    assert len(_timeline_events(hub)) == 6, "the events reached HubSpot before the crash"

    runs = [run_pipeline(ws.config, PIPELINE, ws.engine) for _ in range(3)]

    assert [r.state for r in runs] == ["succeeded"] * 3
    assert runs[0].count("pushed") == 6  # the intended deliveries, settled by their event ids
    assert runs[1].count("pushed") == runs[2].count("pushed") == 0
    keys = [f"{BADGES}:B{n}" for n in range(6)]
    events = _timeline_events(hub)
    assert sorted(events) == sorted(event_id(k) for k in keys)
    assert {k: ws.deliveries()[k] for k in keys} == {k: ("confirmed", event_id(k)) for k in keys}
    first = events[event_id(f"{BADGES}:B0")]
    assert first["eventTemplateId"] == TEMPLATE
    assert first["tokens"] == {"event": CAMPAIGN, "notes": "met at the booth"}
    assert first["extraData"] == {"badge": "B0"}
    assert first["timestamp"].startswith(f"{SCAN_DAY:%Y-%m-%d}T09:00:00")


def test_behavioral_events_are_not_repeated_by_runs_after_the_ledger_confirmed_them(
    workspace_factory: Any, tmp_path: Path, sandbox: SandboxServer, hub: HubSpotStore
) -> None:
    ws = _workspace(workspace_factory, tmp_path, sandbox, BEHAVIORAL, emails=4)

    runs = [run_pipeline(ws.config, PIPELINE, ws.engine) for _ in range(3)]

    assert [r.state for r in runs] == ["succeeded"] * 3
    with hub.lock:
        sent = [dict(e) for e in hub.data.behavioral_events]
    assert len(sent) == 4
    assert Counter(e["eventName"] for e in sent) == {"pe123_booth_visit": 4}
    assert {e["properties"]["booth_event"] for e in sent} == {CAMPAIGN}
    assert {ws.deliveries()[f"{BADGES}:B{n}"][0] for n in range(4)} == {"confirmed"}


def test_a_crash_before_the_commit_can_repeat_a_behavioral_event(
    workspace_factory: Any,
    tmp_path: Path,
    sandbox: SandboxServer,
    hub: HubSpotStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The documented limit of this sink: HubSpot does not de-duplicate custom events."""
    ws = _workspace(workspace_factory, tmp_path, sandbox, BEHAVIORAL, emails=2)
    original = HubSpotConnector.push_touches

    def crash_after_the_call(self: HubSpotConnector, touches: Any) -> Any:
        original(self, touches)
        raise SystemExit("killed between the call and the ledger commit")

    with monkeypatch.context() as patch:
        patch.setattr(HubSpotConnector, "push_touches", crash_after_the_call)
        with pytest.raises(SystemExit):
            run_pipeline(ws.config, PIPELINE, ws.engine)
    run_pipeline(ws.config, PIPELINE, ws.engine)

    with hub.lock:
        assert len(hub.data.behavioral_events) == 4  # at-least-once: each occurrence twice
