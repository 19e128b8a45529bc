"""Unreadable HubSpot marketing records (e-mail events, form submissions) are refused one by one.

Planted in the sandbox portal with its test hooks (``PortalData.plant_email_event``,
``plant_submission``); what HubSpot documents an event and a submission to carry (an ``id`` and a
``created`` time in ms; a ``conversionId`` and a ``submittedAt`` in ms) decides what is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from connectors.base import Cursor, Touch
from connectors.errors import RecordRejected
from connectors.hubspot.connector import HubSpotConnector
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer

Connect = Callable[..., HubSpotConnector]


def _pull(connector: HubSpotConnector, until: datetime) -> tuple[list[Touch], list[RecordRejected]]:
    touches: list[Touch] = []
    rejects: list[RecordRejected] = []
    for page in connector.pull_touches(Cursor(), until):
        touches.extend(page.records)
        rejects.extend(page.rejects)
    return touches, rejects


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_unreadable_email_events_and_submissions_are_refused_and_the_rest_is_read(
    portal: SandboxServer, connect: Connect
) -> None:
    assert portal.world is not None
    until = portal.world.now
    before, nothing = _pull(connect(), until)
    store: HubSpotStore = portal.store("hubspot")
    day = until - timedelta(days=1)
    form_id = next(iter(store.data.forms))
    planted: dict[str, dict[str, Any]] = {
        "event without id": {"type": "OPEN", "recipient": "ann@example.com", "created": _ms(day)},
        "event with a text time": {
            "id": "ev-text-time", "type": "CLICK", "recipient": "ann@example.com",
            "created": "2026-01-01T00:00:00Z",
        },
        "submission without conversionId": {
            "submittedAt": _ms(day), "values": [{"name": "email", "value": "bo@example.com"}],
        },
        "submission with a text time": {
            "conversionId": "conv-text-time", "submittedAt": "yesterday", "values": [],
        },
    }  # fmt: skip
    unbounce = {"id": "ev-unbounce", "created": _ms(day), "recipient": "ann@example.com"}
    with store.lock:
        store.data.plant_email_event(planted["event without id"], day)
        store.data.plant_email_event(planted["event with a text time"], day)
        store.data.plant_email_event(unbounce, day)  # UNBOUNCE events carry no type: passed over
        store.data.plant_submission(form_id, planted["submission without conversionId"], day)
        store.data.plant_submission(form_id, planted["submission with a text time"], day)

    touches, rejects = _pull(connect(), until)

    assert nothing == []
    assert [t.key for t in touches] == [t.key for t in before]
    refused = {repr(r.payload): (r.code, r.key or "") for r in rejects}
    assert len(rejects) == len(planted)
    assert sorted(refused) == sorted(map(repr, planted.values()))
    outcome = {name: refused[repr(record)] for name, record in planted.items()}
    assert outcome["event with a text time"] == ("BAD_DATE", "hubspot:email:ev-text-time")
    assert outcome["submission with a text time"] == ("BAD_DATE", "hubspot:form:conv-text-time")
    for name in ("event without id", "submission without conversionId"):
        code, key = outcome[name]
        assert code == "NO_ID"
        assert key.startswith("hubspot:raw-")
    assert any("e-mail event ev-text-time" in str(r) for r in rejects)
