"""The HubSpot connector against the sandbox: calls per 10,000 touches, search windows, 429s.

Done-means figures of issue 6, each printed with its target:

- pushing 10,000 touches for known contacts takes at most 102 calls (100 batch creates of 100
  plus one check of the touch-key property); a replay of the same touches writes nothing new;
- pulling 50,000 changed contacts (one burst of 12,000 in a single millisecond among them)
  never reads a search window above 10,000 results (oversized windows are probed once and split);
- with 20% injected 429s every touch lands once and the calls stay within 1.4x the fault-free
  count.

The sandbox's own rate limits are lifted and waits use a ``ManualClock``: this measures call
counts and window sizes, not HubSpot's pacing.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from connectors.base import Cursor, RenderedTouch
from connectors.hubspot import changes
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings
from connectors.ratelimit import ManualClock
from sandbox import credentials
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer

TOUCHES = 10_000
CONTACTS = 50_000
BURST = 12_000
KEY = "closedloop_touch_key"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _settings(server: SandboxServer) -> HubSpotSettings:
    return HubSpotSettings.model_validate(
        {
            "host": server.hubspot_url,
            "auth": {"method": "private_app", "access_token": credentials.HUBSPOT_TOKEN},
            "burst_limit_per_10s": 190,
            "search_per_second": 1000,
        }
    )


def _prepare(store: HubSpotStore) -> None:
    store.rate_limit_max = store.search_per_second = store.daily_limit = 10**9
    with store.lock:
        store.data.create_property(
            "notes",
            {"name": KEY, "label": "touch key", "type": "string", "fieldType": "text",
             "groupName": "closedloop", "hasUniqueValue": True},
        )  # fmt: skip


def _contacts(store: HubSpotStore, count: int, at: datetime, prefix: str) -> list[str]:
    ids: list[str] = []
    store.clock.set(at)
    with store.lock:
        for start in range(0, count, 100):
            inputs = [
                {"properties": {"email": f"{prefix}{i}@example.com"}}
                for i in range(start, min(count, start + 100))
            ]
            _, body = store.data.batch_create("contacts", {"inputs": inputs})
            ids += [r["id"] for r in body["results"]]
    return ids


def _touches(contacts: list[str], prefix: str) -> list[RenderedTouch]:
    return [
        RenderedTouch(
            f"marketo:{prefix}{i}",
            "note",
            {"hs_timestamp": 1_790_000_000_000 + i, "hs_note_body": f"touch {i}"},
            contacts[i % len(contacts)],
        )
        for i in range(TOUCHES)
    ]


def _push(server: SandboxServer, touches: list[RenderedTouch]) -> tuple[int, bool]:
    server.state.reset_counters()
    connector = HubSpotConnector("hubspot", _settings(server), clock=ManualClock())
    results = connector.push_touches(touches)
    connector.close()
    return server.state.total_calls("hubspot"), all(r.ok for r in results)


def _keys_once(store: HubSpotStore, touches: list[RenderedTouch]) -> bool:
    with store.lock:
        found = Counter(r.properties.get(KEY) for r in store.data.objects["notes"].values())
    return all(found[t.key] == 1 for t in touches)


def run() -> list[str]:
    """Run the three scenarios on a fresh, empty sandbox and report them against the targets."""
    lines: list[str] = []
    with SandboxServer(seed=None) as server:
        store: HubSpotStore = server.store("hubspot")
        store.clock.rebase(START, frozen=True)
        _prepare(store)
        contacts = _contacts(store, 200, START, "known")

        touches = _touches(contacts, "a")
        started = time.perf_counter()
        calls, ok = _push(server, touches)
        took = time.perf_counter() - started
        lines.append(
            f"push {TOUCHES:,} touches, known contacts: {calls} calls (target <= 102), "
            f"all ok: {ok}, each key once: {_keys_once(store, touches)}, {took:.1f} s"
        )
        replay, ok = _push(server, touches)
        lines.append(
            f"replay of the same {TOUCHES:,}: {replay} calls, all ok: {ok}, "
            f"each key once: {_keys_once(store, touches)}"
        )

        faulty_touches = _touches(contacts, "b")
        server.set_faults("hubspot:429=0.2", seed=11)
        faulty, ok = _push(server, faulty_touches)
        server.set_faults(None)
        ratio = faulty / calls
        lines.append(
            f"push {TOUCHES:,} with 20% 429s: {faulty} calls = {ratio:.2f}x fault-free "
            f"(target <= 1.40x), all ok: {ok}, each key once: {_keys_once(store, faulty_touches)}"
        )

        lines += _pull(server, store)
    return lines


def _pull(server: SandboxServer, store: HubSpotStore) -> list[str]:
    base = START + timedelta(days=1)
    created: list[str] = []
    spread = CONTACTS - BURST
    for day in range(30):
        per_day = spread // 30
        created += _contacts(store, per_day, base + timedelta(days=day, hours=9), f"d{day}-")
    created += _contacts(store, BURST, base + timedelta(days=31), "burst-")
    until = base + timedelta(days=32)
    connector = HubSpotConnector("hubspot", _settings(server), clock=ManualClock())
    server.state.reset_counters()
    started = time.perf_counter()
    seen: Counter[str] = Counter()
    since = Cursor(changes.format_cursor_time(int(base.timestamp() * 1000) - 1))
    for page in connector.pull_changes("people", since, until):
        seen.update(p.external_id for p in page.records)
    took = time.perf_counter() - started
    stats = connector.changes.last_stats
    assert stats is not None
    exact = seen == dict.fromkeys(created, 1)
    connector.close()
    return [
        f"pull {len(created):,} changed contacts: largest search window read "
        f"{stats.largest_window:,} results (target <= 10,000), {stats.windows} windows, "
        f"{stats.oversized_probes} oversized probes split, {stats.calls} searches",
        f"pulled each contact exactly once: {exact}; {server.state.total_calls('hubspot')} "
        f"calls in all, {took:.1f} s",
    ]
