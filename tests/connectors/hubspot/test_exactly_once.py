"""Engagement writes land exactly once: replays, crashes, lost answers, bad records, 429s.

HubSpot deduplicates nothing on activities (no unique values there), so these tests run against a
sandbox that does not either: what keeps each key once is what the ledger tells the connector
(``attempted_at`` for a send whose answer was lost, ``crm_id`` for a known record) and search.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3

from connectors.base import RenderedTouch
from connectors.errors import ConfigError
from connectors.hubspot.connector import HubSpotConnector
from connectors.ratelimit import SystemClock
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer
from tests.connectors.hubspot.conftest import KEY, keys_in_portal, known_contacts, settings_for

WRITER = Path(__file__).with_name("killed_writer.py")
ROOT = Path(__file__).parents[3]
Connect = Callable[..., HubSpotConnector]


def notes(server: SandboxServer, count: int, prefix: str = "marketo:a") -> list[RenderedTouch]:
    """``count`` notes on known contacts, each with its own touch key."""
    contacts = known_contacts(server, 25)
    return [
        RenderedTouch(
            key=f"{prefix}{i}",
            target="note",
            payload={"hs_timestamp": 1_790_000_000_000 + i, "hs_note_body": f"touch {i}"},
            person_id=contacts[i % len(contacts)][1],
        )
        for i in range(count)
    ]


def resent(touches: list[RenderedTouch], at: datetime) -> list[RenderedTouch]:
    """The touches as the engine sends them again after a send at ``at`` got no answer."""
    return [replace(t, attempted_at=at) for t in touches]


def test_a_resend_after_a_lost_answer_creates_no_duplicate_notes(
    portal: SandboxServer, connect: Connect
) -> None:
    touches = notes(portal, 150)
    sent = datetime.now(UTC)
    first = connect().push_touches(touches)
    assert all(r.ok and r.created for r in first)
    connector = connect()
    replay = connector.push_touches(resent(touches, sent))
    assert [r.key for r in replay if r.ok] == [t.key for t in touches]
    assert [r.crm_id for r in replay] == [r.crm_id for r in first]
    assert all(r.created is False for r in replay)
    assert connector.client.calls_by["notes batch create"] == 0
    assert connector.client.calls_by["notes search"] == 2  # 100 keys per search
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_touch_the_ledger_vouches_for_is_created_without_a_search(
    portal: SandboxServer, connect: Connect
) -> None:
    connector = connect()
    results = connector.push_touches(notes(portal, 250))
    assert all(r.ok and r.created for r in results)
    assert connector.client.calls_by["notes batch create"] == 3
    assert connector.client.calls_by["notes search"] == 0
    assert connector.client.calls_by["notes property get"] == 0


def test_notes_are_associated_with_contact_company_and_deal(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    contact = known_contacts(portal, 1)[0][1]
    company = next(iter(store.company_ids.values()))
    deal = next(iter(store.deal_ids.values()))
    touch = RenderedTouch(
        "marketo:assoc", "task", {"hs_timestamp": 1_790_000_000_000, "hs_task_subject": "Call"},
        contact, company, deal,
    )  # fmt: skip
    [result] = connect().push_touches([touch])
    links = {
        a["to"] for a in portal.dump()["hubspot"]["associations"]
        if a["from"] == f"tasks:{result.crm_id}"
    }  # fmt: skip
    assert links == {f"contacts:{contact}", f"companies:{company}", f"deals:{deal}"}


def test_a_mixed_replay_writes_only_the_new_touches(
    portal: SandboxServer, connect: Connect
) -> None:
    sent = datetime.now(UTC)
    old = notes(portal, 40)
    connect().push_touches(old)
    mixed = [*resent(old, sent), *notes(portal, 60)[40:]]  # the first 40 again, 20 new ones
    results = connect().push_touches(mixed)
    assert all(r.ok for r in results)
    assert [r.created for r in results] == [False] * 40 + [True] * 20
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in mixed}


def test_a_digest_sent_with_its_record_id_is_rewritten_in_place(
    portal: SandboxServer, connect: Connect
) -> None:
    [touch] = notes(portal, 1)
    [first] = connect().push_touches([touch])
    grown = replace(touch, payload={**touch.payload, "hs_note_body": "viewed 3 pages"},
                    crm_id=first.crm_id)  # fmt: skip
    [again] = connect().push_touches([grown])
    assert (again.ok, again.crm_id, again.created) == (True, first.crm_id, False)
    store: HubSpotStore = portal.store("hubspot")
    with store.lock:
        record = store.data.objects["notes"][str(first.crm_id)]
        assert record.properties["hs_note_body"] == "viewed 3 pages"
    assert keys_in_portal(portal) == [touch.key]


@pytest.mark.parametrize("mode", ["in_flight", "before_commit"])
def test_writer_killed_between_the_call_and_the_ledger_commit_leaves_no_duplicate(
    portal: SandboxServer, connect: Connect, tmp_path: Path, mode: str
) -> None:
    touches = notes(portal, 230)
    touches_file = tmp_path / "touches.json"
    touches_file.write_text(json.dumps([asdict(t) for t in touches]))
    ledger = tmp_path / "ledger.jsonl"
    sent = datetime.now(UTC)
    killed = subprocess.run(
        [sys.executable, str(WRITER), portal.hubspot_url, str(touches_file), str(ledger), mode],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    states = [json.loads(line) for line in ledger.read_text().splitlines()]
    unconfirmed = {s["key"] for s in states} - {
        s["key"] for s in states if s["state"] == "confirmed"
    }
    assert unconfirmed == {t.key for t in touches}
    written_before = set(keys_in_portal(portal))
    assert written_before, "the killed writer wrote nothing: the test proves nothing"

    # A fresh process re-sends every delivery whose outcome the ledger does not know, after
    # HubSpot's search index has caught up with the killed writer's creates.
    portal.store("hubspot").data.search_index_lag_s = 0.0
    results = connect().push_touches(resent([t for t in touches if t.key in unconfirmed], sent))
    assert all(r.ok for r in results)
    assert {r.key for r in results if r.created is False} == written_before
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_lost_create_answer_is_recovered_by_searching_after_the_index_caught_up(
    portal: SandboxServer,
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    store.data.search_index_lag_s = 0.4
    connector = HubSpotConnector(
        "hubspot", settings_for(portal, search_settle_seconds=0.6), clock=SystemClock()
    )
    pool = connector.client._pool
    original = pool.urlopen
    dropped: list[str] = []

    def drop_first_create_answer(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = original(method, url, *args, **kwargs)
        if url.endswith("/batch/create") and not dropped:
            dropped.append(url)
            raise urllib3.exceptions.ProtocolError("Connection aborted.")
        return response

    pool.urlopen = drop_first_create_answer  # type: ignore[method-assign]
    touches = notes(portal, 100)
    results = connector.push_touches(touches)
    connector.close()
    assert dropped
    assert all(r.ok for r in results)
    assert connector.client.calls_by["notes batch create"] == 1
    assert connector.client.calls_by["notes search"] == 1
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_create_lost_twice_stays_pending_and_the_next_push_writes_it_once(
    portal: SandboxServer, connect: Connect
) -> None:
    connector = connect()
    pool = connector.client._pool
    original = pool.urlopen

    def lose_every_create(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("/batch/create"):
            raise urllib3.exceptions.ProtocolError("Connection aborted.")
        return original(method, url, *args, **kwargs)

    pool.urlopen = lose_every_create  # type: ignore[method-assign]
    touches = notes(portal, 20)
    sent = datetime.now(UTC)
    results = connector.push_touches(touches)
    assert {(r.ok, r.retryable, r.error_code) for r in results} == {
        (False, True, "OUTCOME_UNKNOWN")
    }
    assert keys_in_portal(portal) == []

    again = connect().push_touches(resent(touches, sent))
    assert all(r.ok and r.created for r in again)
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_resend_soon_after_the_lost_answer_waits_for_the_index_before_searching(
    portal: SandboxServer,
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    store.data.search_index_lag_s = 0.5
    settings = settings_for(portal, search_settle_seconds=0.8)
    touches = notes(portal, 30)
    sent = datetime.now(UTC)
    with HubSpotConnector("hubspot", settings, clock=SystemClock()) as first:
        first.push_touches(touches)
    with HubSpotConnector("hubspot", settings, clock=SystemClock()) as again:
        results = again.push_touches(resent(touches, sent))
    assert all(r.ok and r.created is False for r in results)
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_an_invalid_record_is_refused_alone_and_the_rest_written_in_one_call(
    portal: SandboxServer, connect: Connect
) -> None:
    touches = notes(portal, 10)
    bad = RenderedTouch(
        "marketo:bad", "note", {"hs_note_body": "no timestamp"}, touches[0].person_id
    )
    connector = connect()
    results = connector.push_touches([*touches[:5], bad, *touches[5:]])
    failed = [r for r in results if not r.ok]
    assert [(r.key, r.error_code) for r in failed] == [("marketo:bad", "VALIDATION_ERROR")]
    assert "hs_timestamp" in (failed[0].error_message or "")
    assert connector.client.calls_by["notes batch create"] == 1  # HubSpot answered 207
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_persistent_bad_record_never_holds_back_the_others(
    portal: SandboxServer, connect: Connect
) -> None:
    touches = notes(portal, 30)
    gone = RenderedTouch("marketo:gone", "note", {"hs_timestamp": 1}, person_id="999999999")
    for _ in range(3):  # three runs: the bad record fails each time, the rest land once
        results = connect().push_touches([gone, *touches])
        assert (results[0].key, results[0].ok) == ("marketo:gone", False)
        assert all(r.ok for r in results[1:])
        touches = resent(touches, datetime.now(UTC))
    assert "does not exist" in (results[0].error_message or "")
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_target_that_is_no_engagement_type_fails_that_touch_only(
    portal: SandboxServer, connect: Connect
) -> None:
    touches = notes(portal, 2)
    odd = RenderedTouch("marketo:odd", "postcard", {"hs_timestamp": 1}, touches[0].person_id)
    results = connect().push_touches([*touches, odd])
    assert [(r.key, r.ok) for r in results] == [(touches[0].key, True), (touches[1].key, True),
                                                 ("marketo:odd", False)]  # fmt: skip
    assert results[2].error_code == "UNKNOWN_TARGET"


def _without_key_property(server: SandboxServer, object_type: str) -> None:
    store: HubSpotStore = server.store("hubspot")
    with store.lock:
        del store.data.properties[object_type][KEY]


def _has_key_property(server: SandboxServer, object_type: str) -> bool:
    store: HubSpotStore = server.store("hubspot")
    with store.lock:
        return KEY in store.data.properties[object_type]


def test_a_first_push_on_a_portal_without_the_key_property_creates_it_and_each_meeting_once(
    sandbox: SandboxServer, connect: Connect
) -> None:
    _without_key_property(sandbox, "meetings")
    contact = known_contacts(sandbox, 1)[0][1]
    touches = [
        RenderedTouch(f"marketo:m{i}", "meeting", {"hs_timestamp": 1 + i}, contact)
        for i in range(150)
    ]
    results = connect().push_touches(touches)
    assert all(r.ok and r.created for r in results)
    assert _has_key_property(sandbox, "meetings")
    assert Counter(keys_in_portal(sandbox, "meetings")) == {t.key: 1 for t in touches}
    counts = sandbox.state.counts("hubspot")
    # The first batch refused (nothing of it written), the property created, both sent again.
    assert (counts["meetings.batch_create"], counts["properties.create"]) == (3, 1)
    assert "properties.get" not in counts


def test_a_replay_on_a_portal_without_the_property_finds_nothing_and_writes_each_note_once(
    sandbox: SandboxServer, connect: Connect
) -> None:
    _without_key_property(sandbox, "notes")
    touches = resent(notes(sandbox, 120), datetime.now(UTC))
    results = connect(search_settle_seconds=0).push_touches(touches)
    assert all(r.ok and r.created for r in results)
    assert Counter(keys_in_portal(sandbox)) == {t.key: 1 for t in touches}
    counts = sandbox.state.counts("hubspot")
    # The search on the missing property was refused and the property read to tell why.
    assert (counts["notes.search"], counts["properties.get"]) == (1, 1)
    assert _has_key_property(sandbox, "notes")


def test_a_token_that_may_not_create_the_property_stops_the_push_and_writes_nothing(
    sandbox: SandboxServer, connect: Connect
) -> None:
    _without_key_property(sandbox, "meetings")
    sandbox.set_faults("hubspot/properties.create:403=1")
    touch = RenderedTouch(
        "marketo:m", "meeting", {"hs_timestamp": 1}, known_contacts(sandbox, 1)[0][1]
    )
    with pytest.raises(ConfigError, match="check hubspot --fix"):
        connect().push_touches([touch])
    assert keys_in_portal(sandbox, "meetings") == []
    assert not _has_key_property(sandbox, "meetings")


def test_with_20_percent_429s_every_touch_lands_once_within_1_4x_the_calls(
    portal: SandboxServer, connect: Connect
) -> None:
    emails = [e for e, _ in known_contacts(portal, 200)]
    touches = notes(portal, 2000)

    def run() -> int:
        connector = connect()
        assert len(connector.resolve_people(emails)) == len(emails)
        results = connector.push_touches(touches)
        assert all(r.ok for r in results)
        return portal.state.total_calls("hubspot")

    portal.state.reset_counters()
    clean = run()
    with portal.store("hubspot").lock:
        portal.store("hubspot").data.objects["notes"].clear()
    portal.state.reset_counters()
    portal.set_faults("hubspot:429=0.2", seed=7)
    faulty = run()
    portal.set_faults(None)
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}
    assert faulty > clean, "no 429 was injected: the test proves nothing"
    assert faulty <= 1.4 * clean, f"{faulty} calls with 429s, {clean} without"
