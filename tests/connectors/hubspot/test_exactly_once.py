"""Engagement writes land exactly once: replays, crashes, lost answers, bad records, 429s."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import urllib3

from connectors.base import RenderedTouch
from connectors.errors import ConfigError
from connectors.hubspot.connector import HubSpotConnector
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer
from tests.connectors.hubspot.conftest import KEY, keys_in_portal, known_contacts

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


def test_replayed_batch_creates_no_duplicate_notes(portal: SandboxServer, connect: Connect) -> None:
    touches = notes(portal, 150)
    first = connect().push_touches(touches)
    assert all(r.ok and r.created for r in first)
    replay = connect().push_touches(touches)
    assert [r.key for r in replay if r.ok] == [t.key for t in touches]
    assert [r.crm_id for r in replay] == [r.crm_id for r in first]
    assert all(r.created is False for r in replay)
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


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
    old = notes(portal, 40)
    connect().push_touches(old)
    mixed = notes(portal, 60)  # the first 40 keys again, 20 new ones
    results = connect().push_touches(mixed)
    assert all(r.ok for r in results)
    assert [r.created for r in results] == [False] * 40 + [True] * 20
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in mixed}


@pytest.mark.parametrize("mode", ["in_flight", "before_commit"])
def test_writer_killed_between_the_call_and_the_ledger_commit_leaves_no_duplicate(
    portal: SandboxServer, connect: Connect, tmp_path: Path, mode: str
) -> None:
    touches = notes(portal, 230)
    touches_file = tmp_path / "touches.json"
    touches_file.write_text(json.dumps([asdict(t) for t in touches]))
    ledger = tmp_path / "ledger.jsonl"
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

    # A fresh process re-sends every delivery whose outcome the ledger does not know.
    results = connect().push_touches([t for t in touches if t.key in unconfirmed])
    assert all(r.ok for r in results)
    assert {r.key for r in results if r.created is False} == written_before
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_a_lost_create_answer_is_recovered_by_reading_not_by_resending(
    portal: SandboxServer, connect: Connect
) -> None:
    connector = connect()
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
    assert dropped
    assert all(r.ok for r in results)
    assert connector.client.calls_by["notes batch create"] == 1
    assert connector.client.calls_by["notes batch read"] == 1
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}


def test_an_invalid_record_is_dead_lettered_and_the_rest_written(
    portal: SandboxServer, connect: Connect
) -> None:
    touches = notes(portal, 10)
    bad = RenderedTouch(
        "marketo:bad", "note", {"hs_note_body": "no timestamp"}, touches[0].person_id
    )
    results = connect().push_touches([*touches[:5], bad, *touches[5:]])
    failed = [r for r in results if not r.ok]
    assert [(r.key, r.error_code) for r in failed] == [("marketo:bad", "VALIDATION_ERROR")]
    assert "hs_timestamp" in (failed[0].error_message or "")
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


def test_without_the_unique_key_property_nothing_is_written(
    sandbox: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = sandbox.store("hubspot")
    with store.lock:
        del store.data.properties["meetings"][KEY]
        store.data._reindex_unique("meetings")
    touch = RenderedTouch(
        "marketo:m", "meeting", {"hs_timestamp": 1}, known_contacts(sandbox, 1)[0][1]
    )
    with pytest.raises(ConfigError, match="check hubspot --fix"):
        connect().push_touches([touch])
    assert keys_in_portal(sandbox, "meetings") == []


def test_a_key_property_without_unique_values_is_refused(
    sandbox: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = sandbox.store("hubspot")
    with store.lock:
        store.data.properties["calls"][KEY]["hasUniqueValue"] = False
        store.data._reindex_unique("calls")
    touch = RenderedTouch(
        "marketo:c", "call", {"hs_timestamp": 1}, known_contacts(sandbox, 1)[0][1]
    )
    with pytest.raises(ConfigError, match="unique"):
        connect().push_touches([touch])


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
        portal.store("hubspot").data._reindex_unique("notes")
    portal.state.reset_counters()
    portal.set_faults("hubspot:429=0.2", seed=7)
    faulty = run()
    portal.set_faults(None)
    assert Counter(keys_in_portal(portal)) == {t.key: 1 for t in touches}
    assert faulty > clean, "no 429 was injected: the test proves nothing"
    assert faulty <= 1.4 * clean, f"{faulty} calls with 429s, {clean} without"
