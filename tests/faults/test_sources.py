"""The fault battery, sources: Marketo tokens expiring and invalidated mid-sync, and a poison
record of each kind from each source (Marketo REST pages and bulk export, HubSpot marketing
e-mail events, a webhook batch, a file import) among good ones.

Each case counts what Salesforce holds afterwards: every good touch on exactly one Task, and
compares the calls made with a fault-free run of the same good data.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connectors.webhook import WebhookSettings, sign
from sandbox.core import parse_faults
from sandbox.server import SandboxServer
from sync.cli.serve_cmd import build_service_app
from sync.ledger import DeadLetterRow
from tests.faults.conftest import Figure, assert_figure
from tests.faults.harness import Rig, figure, injected_text, make_rig, run_until_settled
from tests.sync.pipelines.conftest import BADGES, SCAN_DAY
from tests.sync.pipelines.test_poison_records import Marketo

pytestmark = pytest.mark.slow

GOOD = 300
LEADS = 120
MARKETO = {
    "kind": "touches", "source": "marketo", "sink": "salesforce",
    "mapping": "mappings/marketo-salesforce.yaml",
}  # fmt: skip


def marketo_rig(
    sandbox_factory: Callable[..., SandboxServer], folder: Path, path: str
) -> tuple[Rig, Marketo]:
    """An empty sandbox whose Marketo holds ``GOOD`` activities of ``LEADS`` leads, and a
    workspace pulling them (``path``: REST pages or a bulk export) into Salesforce."""
    marketo = Marketo(sandbox_factory(seed=None), good=GOOD, leads=LEADS)
    backfill = None if path == "rest" else 30
    rig = make_rig(
        marketo.sandbox, folder, "salesforce", pipeline=MARKETO,
        marketo={"bulk_backfill_days": backfill}, batch_size=100,
    )  # fmt: skip
    rig.keys = list(marketo.keys)
    rig.new_emails = [f"buyer{n}@poison-test.example" for n in range(LEADS)]
    return rig, marketo


def all_calls(sandbox: SandboxServer) -> int:
    return sum(sandbox.state.total_calls(api) for api in ("marketo", "salesforce", "hubspot"))


def letters(rig: Rig) -> list[Any]:
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with rig.engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


def _marketo_baseline(
    sandbox_factory: Callable[..., SandboxServer], folder: Path, path: str
) -> int:
    rig, marketo = marketo_rig(sandbox_factory, folder, path)
    marketo.sandbox.state.reset_counters()
    assert run_until_settled(rig, max_runs=1) == 1
    calls = all_calls(marketo.sandbox)
    rig.engine.dispose()
    marketo.sandbox.stop()
    return calls


def test_marketo_tokens_expired_602_and_invalidated_601_mid_sync_lose_and_double_nothing(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, figures: list[Figure]
) -> None:
    started = time.monotonic()
    base = _marketo_baseline(sandbox_factory, tmp_path / "baseline", "rest")
    rig, marketo = marketo_rig(sandbox_factory, tmp_path / "ws", "rest")
    state = marketo.sandbox.state
    state.reset_counters()
    state.faults.configure(parse_faults("marketo:expired_token=0.2"), seed=6)
    invalidated = 0

    def invalidate(api: str, _endpoint: str, _method: str) -> None:
        # Every 4th Marketo call: every token forgotten (Marketo answers 601 to the next call).
        nonlocal invalidated
        if api == "marketo" and state.total_calls("marketo") % 4 == 0:
            with marketo.store._guard:
                marketo.store._tokens.clear()
            invalidated += 1

    state.on_applied = invalidate
    try:
        runs = run_until_settled(rig)
    finally:
        state.on_applied = None
        injected = injected_text(rig)
        state.faults.configure([])
    lost, doubled = rig.lost_and_doubled()
    figures.append(Figure(
        "marketo -> salesforce: tokens 602/601", f"{injected} (602), {invalidated} x 601 "
        f"({runs} runs)", lost, doubled, all_calls(marketo.sandbox) / base,
        time.monotonic() - started,
    ))  # fmt: skip

    assert "marketo:expired_token" in injected
    assert invalidated > 0
    assert_figure(figures[-1])
    assert letters(rig) == []


def _poison_activities(lead: int, when: datetime) -> dict[str, Any]:
    """One activity of each kind Marketo's Swagger says cannot be read, by expected code."""
    base = {"activityTypeId": 10, "leadId": lead, "primaryAttributeValue": "Spring newsletter",
            "activityDate": f"{when:%Y-%m-%dT%H:%M:%SZ}", "attributes": []}  # fmt: skip
    return {
        "BAD_DATE": {
            **base,
            "id": 9_000_001,
            "marketoGUID": "poison-date",
            "activityDate": "31/02/2026 25:61",
        },
        "NO_ID": dict(base),
        "BAD_TYPE": {
            **base,
            "id": 9_000_003,
            "marketoGUID": "poison-type",
            "activityTypeId": "ten",
        },
        "BAD_LEAD_ID": {**base, "id": 9_000_004, "marketoGUID": "poison-lead", "leadId": None},
    }


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_a_poison_marketo_activity_of_each_kind_is_a_dead_letter_and_the_rest_land_once(
    path: str, sandbox_factory: Callable[..., SandboxServer], tmp_path: Path,
    figures: list[Figure],
) -> None:  # fmt: skip
    started = time.monotonic()
    base = _marketo_baseline(sandbox_factory, tmp_path / "baseline", path)
    rig, marketo = marketo_rig(sandbox_factory, tmp_path / "ws", path)
    poisons = _poison_activities(marketo.leads[3], marketo.now - timedelta(days=1))
    for n, activity in enumerate(poisons.values()):
        marketo.plant(activity, marketo.now - timedelta(days=1, minutes=n))
    marketo.sandbox.state.reset_counters()

    runs = run_until_settled(rig)
    calls = all_calls(marketo.sandbox)
    again = run_until_settled(rig, max_runs=1)
    codes = sorted(letter.code for letter in letters(rig))
    lost, doubled = rig.lost_and_doubled()
    figures.append(Figure(f"marketo {path}: poison activities",
                          f"{len(poisons)} poison records ({runs} runs)", lost, doubled,
                          calls / base, time.monotonic() - started))  # fmt: skip

    assert (runs, again) == (1, 1)  # no poison stops a run, or comes back
    assert codes == sorted(poisons)
    assert_figure(figures[-1])


def test_a_poison_hubspot_email_event_of_each_kind_is_a_dead_letter_and_the_rest_land_once(
    sandbox: SandboxServer, tmp_path: Path, figures: list[Figure]
) -> None:
    started = time.monotonic()
    spec = {"kind": "touches", "source": "hubspot", "sink": "salesforce",
            "mapping": "mappings/hubspot-salesforce.yaml"}  # fmt: skip
    clean = make_rig(sandbox, tmp_path / "baseline", "salesforce", pipeline=spec, batch_size=200)
    sandbox.state.reset_counters()
    assert run_until_settled(clean, max_runs=1) == 1
    base = clean.calls() + sandbox.state.total_calls("hubspot")
    good = sorted(k for k, state in clean.deliveries().items() if state == "confirmed")
    clean.engine.dispose()
    sandbox.reset()

    assert sandbox.world is not None
    day = sandbox.world.now - timedelta(days=2)
    poisons = {
        "BAD_DATE": {
            "id": "ev-poison-date",
            "type": "OPEN",
            "recipient": "ann@example.com",
            "created": "2 days ago",
        },
        "NO_ID": {"type": "OPEN", "recipient": "ann@example.com", "created": 1767607200000},
    }
    store = sandbox.store("hubspot")
    with store.lock:
        for event in poisons.values():
            store.data.plant_email_event(event, day)
    rig = make_rig(sandbox, tmp_path / "ws", "salesforce", pipeline=spec, batch_size=200)
    rig.keys = good
    sandbox.state.reset_counters()

    runs = run_until_settled(rig)
    codes = sorted(letter.code for letter in letters(rig))
    lost, doubled = rig.lost_and_doubled()
    calls = rig.calls() + sandbox.state.total_calls("hubspot")
    figures.append(Figure("hubspot marketing -> salesforce: poison events",
                          f"{len(poisons)} poison records ({runs} runs)", lost, doubled,
                          calls / base, time.monotonic() - started))  # fmt: skip

    assert runs == 1
    assert codes == sorted(poisons)
    assert_figure(figures[-1])


SECRET = "whsec-battery-0123456789abcdef"


def _post(rig: Rig, items: list[Any]) -> httpx.Response:
    body = json.dumps(items).encode()
    stamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-Closedloop-Timestamp": str(stamp),
               "X-Closedloop-Signature": sign(SECRET, stamp, body)}  # fmt: skip
    app = build_service_app(rig.engine, {"events": WebhookSettings(secret=SecretStr(SECRET))})

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
            return await client.post("/hooks/events", content=body, headers=headers)

    return asyncio.run(send())


def _webhook_items(emails: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": f"evt-{n}", "kind": "webinar_attended", "email": email,
         "occurred_at": f"{SCAN_DAY:%Y-%m-%d}T10:{n % 60:02d}:00Z", "campaign": "Winter webinar"}
        for n, email in enumerate(emails)
    ]  # fmt: skip


def _sources_rig(sandbox: SandboxServer, folder: Path) -> Rig:
    spec = {"kind": "touches", "source": "events", "sink": "salesforce",
            "mapping": "mappings/files-salesforce.yaml"}  # fmt: skip
    return make_rig(
        sandbox, folder, "salesforce", pipeline=spec,
        connections={"events": {"type": "webhook", "secret": SECRET}}, batch_size=100,
    )  # fmt: skip


def test_a_poison_webhook_item_of_each_kind_is_a_dead_letter_and_the_rest_land_once(
    sandbox: SandboxServer, tmp_path: Path, figures: list[Figure]
) -> None:
    from tests.sync.pipelines.conftest import known_emails

    started = time.monotonic()
    emails = [*known_emails(sandbox, 100), *(f"hook{n}@fault-battery.example" for n in range(50))]
    items = _webhook_items(emails)
    clean = _sources_rig(sandbox, tmp_path / "baseline")
    assert _post(clean, items).status_code == 200
    sandbox.state.reset_counters()
    assert run_until_settled(clean, max_runs=1) == 1
    base = clean.calls()
    clean.engine.dispose()
    sandbox.reset()

    poisons = {
        "bad_date": {
            "id": "evt-bad-date",
            "kind": "webinar_attended",
            "email": emails[0],
            "occurred_at": "yesterday-ish",
        },
        "missing_email": {
            "id": "evt-no-email",
            "kind": "webinar_attended",
            "occurred_at": "2024-12-30T10:00:00Z",
        },
        "unknown_kind": {
            "id": "evt-odd-kind",
            "kind": "teleported",
            "email": emails[1],
            "occurred_at": "2024-12-30T10:00:00Z",
        },
        "wrong_type": "just a string",
    }
    rig = _sources_rig(sandbox, tmp_path / "ws")
    rig.keys = [f"events:{item['id']}" for item in items]
    rig.new_emails = [e for e in emails if e.endswith("fault-battery.example")]
    answer = _post(rig, [*items[:75], *poisons.values(), *items[75:]])
    sandbox.state.reset_counters()

    runs = run_until_settled(rig)
    codes = sorted(letter.code for letter in letters(rig))
    figures.append(
        figure(
            rig,
            "webhook -> salesforce: poison items",
            f"{len(poisons)} poison records ({runs} runs)",
            base,
            started,
        )
    )

    assert answer.status_code == 207, answer.text
    assert runs == 1
    assert codes == sorted(poisons)
    assert_figure(figures[-1])


def test_a_poison_csv_row_of_each_kind_is_a_dead_letter_and_the_rest_land_once(
    sandbox: SandboxServer, tmp_path: Path, figures: list[Figure]
) -> None:
    from tests.faults.harness import badge_data

    started = time.monotonic()
    rows, new = badge_data(sandbox, "csv-battery", 200)
    clean = make_rig(sandbox, tmp_path / "baseline", "salesforce", batch_size=100)
    clean.import_badges(rows, "scans.csv")
    sandbox.state.reset_counters()
    assert run_until_settled(clean, max_runs=1) == 1
    base = clean.calls()
    clean.engine.dispose()
    sandbox.reset()

    rig = make_rig(sandbox, tmp_path / "ws", "salesforce", batch_size=100)
    rig.new_emails = new
    poisons = [
        {"Badge": "P1", "Email": "someone@example.com", "Scanned": "31/02/2026 25:61"},
        {"Badge": "P2", "Email": "", "Scanned": f"{SCAN_DAY:%Y-%m-%d}T10:00:00Z"},
        {"Badge": "", "Email": "nobadge@example.com", "Scanned": "not a date either"},
    ]
    imported = rig.import_badges([*rows[:100], *poisons, *rows[100:]], "scans.csv")
    rig.keys = [f"{BADGES}:{r['Badge']}" for r in rows]
    sandbox.state.reset_counters()

    runs = run_until_settled(rig)
    dead = letters(rig)
    figures.append(
        figure(
            rig,
            "file import -> salesforce: poison rows",
            f"{len(poisons)} poison records ({runs} runs)",
            base,
            started,
        )
    )

    assert runs == 1
    assert imported >= len(rows)
    assert sorted(d.code for d in dead) == ["bad_date", "bad_date", "missing_email"]
    assert_figure(figures[-1])
