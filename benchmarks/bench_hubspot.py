"""The HubSpot connector against the sandbox: calls per 10,000 touches, search windows, 429s.

HubSpot deduplicates nothing on activities, so engagement pushes are measured through the whole
engine (ledger, key audit, connector) on a sandbox that does not either:

- a first push of 10,000 touches of 10,000 distinct contacts: at most 101 push calls (100 batch
  creates of 100 and one key audit search; the touch-key property is not read: a portal lacking
  it refuses the first create, and the connector creates it then); people lookups are reported
  apart;
- a crash replay: every one of those 10,000 deliveries left "intended" after HubSpot applied
  them (a kill between the call and the ledger commit), then the next run;
- a lost ledger: the same 10,000 touches synced again from a new, empty ledger;
- with 20% injected 429s every touch lands once and the calls stay within 1.4x the fault-free
  count (connector level);
- pulling 50,000 changed contacts (one burst of 12,000 in a single millisecond among them)
  never reads a search window above 10,000 results (oversized windows are probed once and split).

The sandbox's own rate limits are lifted and the connector-level waits use a ``ManualClock``:
this measures call counts and window sizes, not HubSpot's pacing.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from connectors.base import Cursor, RenderedTouch
from connectors.hubspot import changes
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings
from connectors.ratelimit import ManualClock
from sandbox import credentials
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer
from sync.cli.config_cmd import shipped_mappings_dir
from sync.cli.import_cmd import import_file
from sync.config import Config, load_config
from sync.connections import Connections
from sync.ledger import DeliveryRow, open_ledger
from sync.logs import configure_logging
from sync.pipelines import RunSummary, run_pipeline

TOUCHES = 10_000
CONTACTS = 50_000
BURST = 12_000
KEY = "closedloop_touch_key"
START = datetime(2026, 1, 1, tzinfo=UTC)
PUSH_ENDPOINTS = (
    "notes.batch_create", "notes.batch_update", "notes.search", "properties.get",
    "properties.create",
)  # fmt: skip


def _settings(server: SandboxServer) -> HubSpotSettings:
    return HubSpotSettings.model_validate(
        {
            "host": server.hubspot_url,
            "auth": {"method": "private_app", "access_token": credentials.HUBSPOT_TOKEN},
            "burst_limit_per_10s": 190,
            "search_per_second": 1000,
        }
    )


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


def _keys_once(store: HubSpotStore, keys: list[str]) -> bool:
    """Every key of ``keys`` on exactly one note, and no key of the portal on two."""
    with store.lock:
        found = Counter(r.properties.get(KEY) for r in store.data.objects["notes"].values())
    found.pop(None, None)
    return all(found[k] == 1 for k in keys) and max(found.values(), default=1) == 1


# -- the engine: files -> HubSpot notes -------------------------------------------------------


def _workspace(server: SandboxServer, folder: Path, ledger: str) -> Config:
    mappings = shipped_mappings_dir()
    assert mappings is not None
    (folder / "token").write_text(credentials.HUBSPOT_TOKEN + "\n", encoding="utf-8")
    path = folder / f"closedloop-{ledger}.yaml"
    path.write_text(
        f"""version: 1
ledger: {{url: "sqlite:///{folder / ledger}"}}
connections:
  hubspot:
    type: hubspot
    host: {server.hubspot_url}
    auth: {{method: private_app, access_token_file: token}}
    burst_limit_per_10s: 190
    search_per_second: 1000
    search_settle_seconds: 0
  scans:
    type: files
    columns: {{email: Email, occurred_at: Scanned, source_id: Badge}}
    kind: event_attended
    campaign: Bench Expo
pipelines:
  bench:
    kind: touches
    source: scans
    sink: hubspot
    mapping: {mappings / "files-hubspot.yaml"}
    batch_size: 1000
""",
        encoding="utf-8",
    )
    return load_config(path)


def _sync(
    server: SandboxServer, config: Config, csv_path: Path
) -> tuple[RunSummary, dict[str, int]]:
    engine = open_ledger(config.database_url())
    try:
        import_file(engine, csv_path, "scans", config.connections["scans"].settings)  # type: ignore[arg-type]
        server.state.reset_counters()
        with Connections(config) as connections:
            summary = run_pipeline(config, "bench", engine, connections=connections)
    finally:
        engine.dispose()
    if summary.state != "succeeded":
        raise RuntimeError(f"the sync ended {summary.state}: {summary.error}")
    return summary, server.state.counts("hubspot")


def _push_calls(counts: dict[str, int]) -> str:
    total = sum(counts.get(e, 0) for e in PUSH_ENDPOINTS)
    parts = ", ".join(f"{counts[e]} {e}" for e in PUSH_ENDPOINTS if counts.get(e))
    return f"{total} push calls ({parts or 'none'})"


def _people_calls(counts: dict[str, int]) -> int:
    return sum(n for e, n in counts.items() if e.startswith("contacts."))


def _engine(server: SandboxServer, store: HubSpotStore) -> list[str]:
    """First push, crash replay and lost ledger of 10,000 touches through the whole engine."""
    configure_logging("error")
    emails = [f"buyer{i}@example.com" for i in range(TOUCHES)]
    _contacts(store, TOUCHES, START, "buyer")
    folder = Path(tempfile.mkdtemp(prefix="bench-hubspot-"))
    csv_path = folder / "scans.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Badge", "Email", "Scanned"])
        for n, email in enumerate(emails):
            writer.writerow(
                [
                    f"B{n}",
                    email,
                    f"2026-05-14T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
                ]
            )
    keys = [f"scans:B{n}" for n in range(TOUCHES)]
    config = _workspace(server, folder, "ledger.db")
    with Connections(config) as connections:
        connections.crm("hubspot").check_and_fix()  # type: ignore[attr-defined]
    lines: list[str] = []

    started = time.perf_counter()
    summary, counts = _sync(server, config, csv_path)
    took = time.perf_counter() - started
    lines.append(
        f"first push of {TOUCHES:,} touches ({TOUCHES:,} distinct contacts): {_push_calls(counts)} "
        f"(target <= 101); {_people_calls(counts)} contact lookups; pushed "
        f"{summary.count('pushed'):,}; each key once: {_keys_once(store, keys)}; {took:.1f} s"
    )

    # A kill between the calls and the ledger commits: HubSpot holds every note, the ledger
    # knows only that each was sent.
    engine = open_ledger(config.database_url())
    table = DeliveryRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            update(table).values(
                state="intended", crm_id=None, confirmed_at=None,
                intended_at=datetime.now(UTC) - timedelta(minutes=5),
            )
        )  # fmt: skip
    engine.dispose()
    summary, counts = _sync(server, config, csv_path)
    lines.append(
        f"crash replay of those {TOUCHES:,} (all left intended): {_push_calls(counts)}; "
        f"found in HubSpot {summary.count('found_in_crm'):,}; each key once: "
        f"{_keys_once(store, keys)}"
    )

    lost = _workspace(server, folder, "new-ledger.db")
    summary, counts = _sync(server, lost, csv_path)
    lines.append(
        f"the same {TOUCHES:,} from a new, empty ledger: {_push_calls(counts)}; keys learned "
        f"{summary.count('keys_learned'):,}; each key once: {_keys_once(store, keys)}"
    )
    return lines


# -- the connector alone ----------------------------------------------------------------------


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


def run() -> list[str]:
    """Run the scenarios on a fresh, empty sandbox and report them against the targets."""
    lines: list[str] = []
    with SandboxServer(seed=None) as server:
        store: HubSpotStore = server.store("hubspot")
        store.clock.rebase(START, frozen=True)
        store.rate_limit_max = store.search_per_second = store.daily_limit = 10**9
        lines += _engine(server, store)

        contacts = _contacts(store, 200, START, "known")
        clean_touches = _touches(contacts, "a")
        calls, ok = _push(server, clean_touches)
        faulty_touches = _touches(contacts, "b")
        server.set_faults("hubspot:429=0.2", seed=11)
        faulty, ok = _push(server, faulty_touches)
        server.set_faults(None)
        ratio = faulty / calls
        lines.append(
            f"connector push of {TOUCHES:,} with 20% 429s: {faulty} calls = {ratio:.2f}x "
            f"fault-free (target <= 1.40x), all ok: {ok}, each key once: "
            f"{_keys_once(store, [t.key for t in [*clean_touches, *faulty_touches]])}"
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
