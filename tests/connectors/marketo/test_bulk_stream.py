"""The bulk activity export read as a stream, against the sandbox over loopback HTTP: a file
larger than a download chunk parses the same across chunk boundaries, and a long export becomes
pages (each with its cursor) while it is read, not one list at its end."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from connectors.base import Cursor
from connectors.marketo import source as marketo_source
from connectors.marketo.activities import format_marketo_time
from connectors.marketo.settings import MarketoSettings
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from sandbox import credentials
from sandbox.marketo_store import MarketoStore
from sandbox.server import SandboxServer

# Values a CSV writer must quote: commas, quotes, line breaks, and multi-byte UTF-8 characters
# (a chunk boundary inside one must not spoil it).
AWKWARD = 'line one, still one\nline "two"\r\nthree: é, 漢字, 🙂, end'


@pytest.fixture
def store(sandbox: SandboxServer) -> MarketoStore:
    """The emulator's store, its clock frozen at the world's now."""
    store: MarketoStore = sandbox.store("marketo")
    store.clock.advance(0)
    return store


def settings_for(sandbox: SandboxServer, bulk_backfill_days: int = 30) -> MarketoSettings:
    return MarketoSettings.model_validate({
        "base_url": sandbox.marketo_url,
        "client_id": credentials.MARKETO_CLIENT_ID,
        "client_secret": credentials.MARKETO_CLIENT_SECRET,
        "bulk_backfill_days": bulk_backfill_days,
        "bulk_poll_interval_s": 1,
    })  # fmt: skip


def test_an_export_file_larger_than_a_chunk_parses_the_same_across_chunk_boundaries(
    sandbox: SandboxServer, store: Any
) -> None:
    start = store.clock.now() - timedelta(days=400)  # before the demo world: only these
    lead = next(iter(store.leads))
    planted = [
        store.add_activity(
            lead,
            10,
            start + timedelta(minutes=i),
            primary=(i, f"Asset, {i}"),
            attributes={"Comment": f"{i}: {AWKWARD}", "n": i},
        )
        for i in range(400)
    ]
    with MarketoSource("marketo", settings_for(sandbox), clock=ManualClock(start)) as source:
        rows = source.bulk_export(start, start + timedelta(days=1), [10])
    file_size = store.exports[next(reversed(store.exports))]["fileSize"]
    # Many network chunks and 8 KB reads of the parser, their boundaries inside quoted values,
    # escaped quotes and multi-byte characters.
    assert file_size > 64 * 1024
    assert [r["marketoGUID"] for r in rows] == [a["marketoGUID"] for a in planted]
    for row, activity in zip(rows, planted, strict=True):
        assert row["primaryAttributeValue"] == activity["primaryAttributeValue"]
        assert row["attributes"] == activity["attributes"]
    assert json.dumps(rows[3]["attributes"], ensure_ascii=False).count("漢字") == 1


def test_a_long_export_becomes_pages_as_it_is_read_each_moving_the_cursor(
    sandbox: SandboxServer, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marketo_source, "_BULK_PAGE", 100)
    now = store.clock.now()
    start = now - timedelta(days=400)
    leads = list(store.leads)[:5]
    for i in range(450):
        store.add_activity(leads[i % 5], 10, start + timedelta(hours=1, minutes=i))
    until = start + timedelta(days=2)
    cursor = Cursor(format_marketo_time(start))
    settings = settings_for(sandbox, bulk_backfill_days=1)  # two days: one bulk export
    with MarketoSource("marketo", settings, clock=ManualClock(now)) as source:
        pages = list(source.pull_touches(cursor, until))
    assert sandbox.state.counts("marketo")["export.create"] == 1  # one export: one window
    assert [len(p.records) for p in pages] == [100, 100, 100, 100, 50, 0]
    # Each page's cursor stands at its last touch (everything before it is in); the window's
    # end, read through, moves it to ``until``.
    last_of_page = [max(t.occurred_at for t in p.records) for p in pages[:5]]
    assert [p.cursor.value for p in pages[:5]] == [format_marketo_time(t) for t in last_of_page]
    assert pages[-1].cursor.value == format_marketo_time(until)
    assert len({t.key for p in pages for t in p.records}) == 450


def test_a_download_that_breaks_off_resumes_and_the_file_is_whole(
    sandbox: SandboxServer, store: Any
) -> None:
    start = store.clock.now() - timedelta(days=400)
    lead = next(iter(store.leads))
    planted = [
        store.add_activity(lead, 10, start + timedelta(minutes=i), attributes={"n": AWKWARD})
        for i in range(300)
    ]
    # Half the file.json answers send half their bytes, then the connection drops.
    sandbox.set_faults("marketo/export.file:cut_off=0.5", seed=8)
    settings = settings_for(sandbox).model_copy(update={"max_attempts": 10})
    with MarketoSource("marketo", settings, clock=ManualClock(start)) as source:
        rows = source.bulk_export(start, start + timedelta(days=1), [10])
    assert [r["marketoGUID"] for r in rows] == [a["marketoGUID"] for a in planted]
    assert sandbox.state.faults.injected["marketo:cut_off"] >= 1
    assert sandbox.state.counts("marketo")["export.file"] > 1  # resumed, checksum matched


def test_an_export_file_out_of_time_order_holds_the_cursor_until_the_window_is_read(
    sandbox: SandboxServer, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marketo_source, "_BULK_PAGE", 100)
    now = store.clock.now()
    start = now - timedelta(days=400)
    lead = next(iter(store.leads))
    added = [
        store.add_activity(lead, 10, start + timedelta(hours=1, minutes=i)) for i in range(250)
    ]
    # Served last in the file, though it happened before every other activity of the window.
    late = dict(added[0], id=10**9, marketoGUID="late-1", activityDate=format_marketo_time(start))
    with store.lock:
        store.plant_activity(late, start + timedelta(hours=20))
    until = start + timedelta(days=2)
    cursor = Cursor(format_marketo_time(start))
    settings = settings_for(sandbox, bulk_backfill_days=1)
    with MarketoSource("marketo", settings, clock=ManualClock(now)) as source:
        pages = list(source.pull_touches(cursor, until))
    assert [len(p.records) for p in pages] == [100, 100, 51, 0]
    # A crash before the window's end re-reads it all (the ledger drops what it holds): the
    # cursor must not pass the late activity before it is stored.
    assert {p.cursor.value for p in pages[:3]} == {cursor.value}
    assert pages[-1].cursor.value == format_marketo_time(until)
    assert "marketo:late-1" in {t.key for p in pages for t in p.records}


def test_a_bulk_pull_asks_marketo_for_each_lead_once_though_its_leads_recur_in_every_page(
    sandbox: SandboxServer, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marketo_source, "_BULK_PAGE", 400)
    asked: Counter[str] = Counter()
    answer = store.leads_by_filter

    def recorded(params: dict[str, str]) -> dict[str, Any]:
        asked.update(params["filterValues"].split(","))
        return answer(params)

    monkeypatch.setattr(store, "leads_by_filter", recorded)
    now = store.clock.now()
    start = now - timedelta(days=400)
    # 320 leads Marketo knows and one it does not: each one in every page of 400 rows.
    stranger = max(store.leads) + 1000
    leads = [*list(store.leads)[:320], stranger]
    for i in range(4 * 400):
        store.add_activity(leads[i % len(leads)], 10, start + timedelta(hours=1, minutes=i))
    settings = settings_for(sandbox, bulk_backfill_days=1)
    with MarketoSource("marketo", settings, clock=ManualClock(now)) as source:
        pages = list(source.pull_touches(Cursor(format_marketo_time(start)), start + timedelta(2)))
    assert [len(p.records) for p in pages[:4]] == [400, 400, 400, 400]
    assert asked == Counter({str(lead): 1 for lead in leads})
    assert sandbox.state.counts("marketo")["leads"] == 2  # 300 ids, then the other 21
    for touch in (t for p in pages for t in p.records):
        lead = int(touch.person_ref or 0)
        known = store.leads.get(lead, {}).get("email")
        assert touch.email == (known.strip().lower() if known else None)
