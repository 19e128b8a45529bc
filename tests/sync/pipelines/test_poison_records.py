"""One unreadable source record never stops a pipeline: it becomes a dead letter of stage pull.

Through the whole pipeline against the sandbox (Marketo -> Salesforce, both the REST activity
pages and the bulk export), on SQLite and PostgreSQL: the poison activity is planted in the
Marketo emulator with its test hook (``MarketoStore.plant_activity``), never produced by it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from sandbox.server import SandboxServer
from sync.cli import app
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import Config, load_config
from sync.ledger import DeadLetterRow, DeliveryRow, TouchRow, open_ledger
from sync.pipelines import run_pipeline

PIPELINE = "marketo-to-salesforce"
GOOD = 5000
LEADS = 50
# Open Email, Click Email, Fill Out Form: kinds the shipped mapping writes one Task each for.
TYPES = (10, 11, 2)
POISON_GUID = "poison-activity-0001"


def _poison(lead_id: int) -> dict[str, Any]:
    """A Marketo activity whose activityDate cannot be read (Marketo's Swagger: a date-time)."""
    return {
        "id": 999_999_999,
        "marketoGUID": POISON_GUID,
        "leadId": lead_id,
        "activityDate": "31/02/2026 25:61",
        "activityTypeId": 10,
        "primaryAttributeValueId": 77,
        "primaryAttributeValue": "Spring newsletter",
        "attributes": [],
    }


class Marketo:
    """An empty sandbox whose Marketo instance holds ``good`` activities of ``leads`` leads."""

    def __init__(self, sandbox: SandboxServer, good: int = GOOD, leads: int = LEADS) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store("marketo")
        self.now = self.store.clock.now()
        self.keys: list[str] = []
        with self.store.lock:
            self.leads = [
                self.store.add_lead(
                    {
                        "email": f"buyer{n}@poison-test.example",
                        "lastName": f"Buyer {n}",
                        "company": f"Poison Test {n % 7}",
                    },
                    self.now - timedelta(days=3),
                )
                for n in range(leads)
            ]
            start = self.now - timedelta(days=2)
            for n in range(good):
                activity = self.store.add_activity(
                    self.leads[n % leads],
                    TYPES[n % len(TYPES)],
                    start + timedelta(seconds=17 * n),
                    primary=(100 + n % 9, f"Asset {n % 9}"),
                )
                self.keys.append(f"marketo:{activity['marketoGUID']}")

    def plant(self, activity: Any, at: datetime) -> None:
        with self.store.lock:
            self.store.plant_activity(activity, at)

    def tasks_by_key(self) -> Counter[str]:
        store = self.sandbox.store("salesforce")
        with store.lock:
            rows = list(store.records["Task"].values())
        return Counter(
            r["Closedloop_Key__c"]
            for r in rows
            if r.get("Closedloop_Key__c") and not r.get("IsDeleted")
        )


@pytest.fixture
def marketo(sandbox_factory: Callable[..., SandboxServer]) -> Marketo:
    return Marketo(sandbox_factory(seed=None))


@pytest.fixture
def workspace(
    tmp_path: Path, ledger_url: str
) -> Iterator[Callable[[Marketo, str], tuple[Config, Engine]]]:
    engines: list[Engine] = []

    def make(marketo: Marketo, path: str) -> tuple[Config, Engine]:
        """A config whose Marketo pull reads REST pages (``rest``) or a bulk export (``bulk``)."""
        extra = {"bulk_backfill_days": None} if path == "rest" else {"bulk_backfill_days": 30}
        written = write_sandbox_config(
            tmp_path,
            marketo.sandbox,
            pipelines={
                PIPELINE: {
                    "kind": "touches",
                    "source": "marketo",
                    "sink": "salesforce",
                    "mapping": "mappings/marketo-salesforce.yaml",
                }
            },
            ledger_url=ledger_url,
        )
        data = yaml.safe_load(written.read_text(encoding="utf-8"))
        data["connections"]["marketo"].update(extra)
        written.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        config = load_config(written)
        engine = open_ledger(ledger_url)
        engines.append(engine)
        return config, engine

    yield make
    for engine in engines:
        engine.dispose()


def _letters(engine: Engine) -> list[Any]:
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_a_poison_marketo_activity_among_5000_good_ones_is_one_dead_letter_and_5000_land(
    marketo: Marketo, workspace: Callable[[Marketo, str], tuple[Config, Engine]], path: str
) -> None:
    poison = _poison(marketo.leads[3])
    marketo.plant(poison, marketo.now - timedelta(days=1))
    config, engine = workspace(marketo, path)

    first = run_pipeline(config, PIPELINE, engine)

    assert first.state == "succeeded", first.error
    assert first.count("pushed") == GOOD
    tasks = marketo.tasks_by_key()
    assert {k: tasks[k] for k in marketo.keys} == dict.fromkeys(marketo.keys, 1)
    assert sum(tasks.values()) == GOOD
    [letter] = _letters(engine)
    assert (letter.pipeline, letter.stage, letter.code) == (PIPELINE, "pull", "BAD_DATE")
    assert letter.record_key == f"marketo:{POISON_GUID}"
    assert POISON_GUID in letter.reason
    assert "activityDate" in letter.reason
    assert letter.payload["marketoGUID"] == POISON_GUID
    assert letter.payload["activityDate"] == poison["activityDate"]
    assert any("dead-letters" in note for note in first.notes)

    again = run_pipeline(config, PIPELINE, engine)

    assert again.state == "succeeded", again.error
    assert again.count("pushed") == 0
    assert len(_letters(engine)) == 1
    assert sum(marketo.tasks_by_key().values()) == GOOD


def test_a_poison_hubspot_email_event_is_a_dead_letter_and_the_pipeline_delivers_the_rest(
    workspace_factory: Any,
) -> None:
    name = "hubspot-to-salesforce"
    ws = workspace_factory(
        {
            name: {
                "kind": "touches",
                "source": "hubspot",
                "sink": "salesforce",
                "mapping": "mappings/hubspot-salesforce.yaml",
            }
        }
    )
    assert ws.sandbox.world is not None
    day = ws.sandbox.world.now - timedelta(days=2)
    poison = {"type": "OPEN", "recipient": "ann@example.com", "created": "2 days ago"}
    poison["id"] = "ev-poison-1"
    store = ws.sandbox.store("hubspot")
    with store.lock:
        store.data.plant_email_event(poison, day)

    summary = run_pipeline(ws.config, name, ws.engine)

    assert summary.state == "succeeded", summary.error
    assert summary.count("pushed") > 0
    [letter] = _letters(ws.engine)
    assert (letter.pipeline, letter.stage, letter.code) == (name, "pull", "BAD_DATE")
    assert letter.record_key == "hubspot:email:ev-poison-1"
    assert letter.payload == poison


def test_a_pull_that_fails_midway_still_delivers_the_touches_it_stored(
    sandbox_factory: Callable[..., SandboxServer],
    workspace: Callable[[Marketo, str], tuple[Config, Engine]],
) -> None:
    # One lead per activity: a page of 300 is looked up (and stored) before the next is read.
    marketo = Marketo(sandbox_factory(seed=None), good=900, leads=900)
    config, engine = workspace(marketo, "rest")
    # Pages of one slice, no empty ones: token, types, paging token, a page of 300 and its lead
    # lookup (stored), the other type group's page, the next page of 300: then 607.
    marketo.store.page_slice = timedelta(days=400)
    marketo.store.daily_quota = 7

    summary = run_pipeline(config, PIPELINE, engine)

    assert summary.state == "interrupted", summary.error
    assert "daily API quota" in (summary.error or "")
    touch, delivery = TouchRow.__table__, DeliveryRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        stored = conn.execute(select(touch.c.key)).scalars().all()
        states = dict(
            conn.execute(
                select(touch.c.key, delivery.c.state).join(
                    delivery, delivery.c.touch_id == touch.c.id
                )
            ).all()
        )
    assert 0 < len(stored) < 900
    assert summary.count("pushed") == len(stored)
    assert states == dict.fromkeys(stored, "confirmed")
    assert sum(marketo.tasks_by_key().values()) == len(stored)


def test_a_nul_in_a_marketo_text_field_is_stored_and_delivered_without_it(
    sandbox_factory: Callable[..., SandboxServer],
    workspace: Callable[[Marketo, str], tuple[Config, Engine]],
) -> None:
    marketo = Marketo(sandbox_factory(seed=None), good=20, leads=5)
    with marketo.store.lock:
        nul = marketo.store.add_activity(
            marketo.leads[0],
            10,
            marketo.now - timedelta(hours=1),
            primary=(501, "Spring\x00 newsletter"),
            attributes={"Subject Line": "Hello\x00 there"},
        )
    config, engine = workspace(marketo, "rest")

    summary = run_pipeline(config, PIPELINE, engine)

    assert summary.state == "succeeded", summary.error
    assert summary.count("pushed") == 21
    assert _letters(engine) == []
    key = f"marketo:{nul['marketoGUID']}"
    store = marketo.sandbox.store("salesforce")
    with store.lock:
        [task] = [r for r in store.records["Task"].values() if r.get("Closedloop_Key__c") == key]
    assert "Spring newsletter" in task["Subject"]
    assert "\x00" not in task["Subject"] + (task.get("Description") or "")
    touch = TouchRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        row = conn.execute(select(touch).where(touch.c.key == key)).one()
    assert row.asset == "Spring newsletter"
    assert row.attributes["Subject Line"] == "Hello there"
    assert row.raw["primaryAttributeValue"] == "Spring\\x00 newsletter"


def test_dead_letters_list_and_show_a_poison_activity_with_its_raw_payload_and_reason(
    sandbox_factory: Callable[..., SandboxServer],
    workspace: Callable[[Marketo, str], tuple[Config, Engine]],
    ledger_url: str,
) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")
    marketo = Marketo(sandbox_factory(seed=None), good=30, leads=5)
    marketo.plant(_poison(marketo.leads[0]), marketo.now - timedelta(hours=3))
    config, _ = workspace(marketo, "rest")
    cli = CliRunner()

    synced = cli.invoke(app, ["sync", "--config", str(config.path)])
    listed = cli.invoke(app, ["dead-letters", "list", "--config", str(config.path)])
    shown = cli.invoke(app, ["dead-letters", "show", "1", "--config", str(config.path)])

    assert synced.exit_code == 0, synced.output
    assert listed.exit_code == 0, listed.output
    assert f"marketo:{POISON_GUID}" in listed.output.replace("\n", "").replace("│", "")
    assert "BAD_DATE" in listed.output
    letter = json.loads(shown.output)
    assert (letter["stage"], letter["code"]) == ("pull", "BAD_DATE")
    assert "unreadable activityDate '31/02/2026 25:61'" in letter["reason"]
    assert letter["payload"] == _poison(marketo.leads[0])
    assert "backfill" in letter["next"]
