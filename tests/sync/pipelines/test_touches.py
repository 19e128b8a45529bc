"""The touches pipeline end to end: file import -> Salesforce sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.base import Cursor, Page, Touch, TouchKind
from sync.cli.import_cmd import import_file
from sync.connections import Connections
from sync.ledger import DeadLetterRow, DeliveryRow, LeaseRow, SyncRunRow, TouchRow, utcnow
from sync.ledger.models import PersonRow
from sync.pipelines import Fence, FenceLost, deliveries, run_pipeline
from sync.pipelines import touches as touches_pipeline
from sync.pipelines.replay import replay_dead_letters
from tests.sync.pipelines.conftest import (
    BADGES,
    CAMPAIGN,
    SCAN_DAY,
    badge_pipeline,
    badge_rows,
    files_mapping,
    known_emails,
    with_salesforce_settings,
)

PIPELINE = "badges-to-salesforce"


def _dead_letters(engine: Any) -> list[Any]:
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


def test_touches_land_once_and_a_rerun_creates_nothing(workspace_factory: Any) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    known = known_emails(ws.sandbox, 30)
    new = [f"visitor{n}@expo-guests.example" for n in range(10)]
    assert ws.import_badges(badge_rows([*known, *new])) == 40
    leads_before = ws.sandbox.store("salesforce").dump()["counts"]["Lead"]

    first = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert first.state == "succeeded", first.error
    assert first.count("pushed") == 40
    assert first.count("created_people") == 10
    tasks = ws.tasks_by_key()
    keys = {f"{BADGES}:B{n}" for n in range(40)}
    assert {k: tasks[k] for k in keys} == dict.fromkeys(keys, 1)
    deliveries = ws.deliveries()
    assert all(state == "confirmed" and crm_id for state, crm_id in deliveries.values())

    again = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert again.state == "succeeded"
    assert again.count("pushed") == 0
    assert ws.tasks_by_key() == tasks
    assert ws.sandbox.store("salesforce").dump()["counts"]["Lead"] == leads_before + 10


def _require_notes(mapping: dict[str, Any]) -> None:
    mapping["touches"]["fields"]["Description"] = {
        "source": "touch.attributes.notes",
        "required": True,
    }


def test_a_record_the_mapping_cannot_render_is_dead_lettered_and_replayed_after_a_fix(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_require_notes,
    )
    rows = badge_rows(known_emails(ws.sandbox, 5), notes="asked for a demo")
    rows[2]["notes"] = ""
    ws.import_badges(rows)

    summary = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert summary.state == "succeeded"
    assert summary.count("pushed") == 4
    [letter] = _dead_letters(ws.engine)
    assert (letter.stage, letter.code, letter.record_key) == ("map", "MAPPING", f"{BADGES}:B2")
    assert "Description is required but blank" in letter.reason
    assert letter.payload["email"] == rows[2]["Email"].lower()
    assert f"{BADGES}:B2" not in ws.tasks_by_key()

    files_mapping(ws.folder)  # the fix: the shipped mapping, where a blank note has a default
    with Connections(ws.config) as connections:
        report = replay_dead_letters(ws.config, ws.engine, connections, ids=[letter.id])

    assert report.replayed == [letter.id]
    [after] = _dead_letters(ws.engine)
    assert after.status == "replayed"
    assert ws.tasks_by_key()[f"{BADGES}:B2"] == 1
    assert ws.deliveries()[f"{BADGES}:B2"][0] == "confirmed"


def _notes_as_related_record(mapping: dict[str, Any]) -> None:
    # A record id only Salesforce can judge: no schema says which ids exist or are well-formed.
    mapping["touches"]["kinds"]["event_attended"]["fields"]["WhatId"] = {
        "source": "touch.attributes.notes"
    }


def test_a_record_salesforce_rejects_goes_to_dead_letters_while_the_rest_land(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_notes_as_related_record,
    )
    assert ws.sandbox.world is not None
    leads = [
        p.email for p in ws.sandbox.world.people
        if p.crm_kind == "lead" and p.converted_at is None and p.email
    ][:6]  # fmt: skip
    rows = badge_rows(leads)
    rows[3]["notes"] = "not-an-id"
    ws.import_badges(rows)

    summary = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert summary.state == "succeeded"
    assert summary.count("pushed") == 5
    assert summary.count("dead_lettered") == 1
    [letter] = _dead_letters(ws.engine)
    assert (letter.stage, letter.record_key) == ("push", f"{BADGES}:B3")
    assert letter.code == "MALFORMED_ID"
    assert "not-an-id" in letter.reason
    assert letter.payload["payload"]["WhatId"] == "not-an-id"
    assert ws.deliveries()[f"{BADGES}:B3"][0] == "dead"
    assert sorted(ws.tasks_by_key()) == sorted(f"{BADGES}:B{n}" for n in (0, 1, 2, 4, 5))


def _hold_unknown(mapping: dict[str, Any]) -> None:
    mapping["people"]["unknown"] = "hold"


def test_held_touches_wait_until_the_person_appears_in_the_crm(workspace_factory: Any) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")},
        edit_mapping=_hold_unknown,
    )
    ws.import_badges(badge_rows(["newcomer@expo-guests.example", *known_emails(ws.sandbox, 2)]))

    first = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert (first.count("pushed"), first.count("held")) == (2, 1)
    assert ws.deliveries()[f"{BADGES}:B0"][0] == "failed"
    ws.sandbox.store("salesforce").insert(
        "Lead", {"Email": "newcomer@expo-guests.example", "LastName": "Comer", "Company": "Expo"}
    )

    second = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert (second.count("pushed"), second.count("held")) == (1, 0)
    assert ws.tasks_by_key()[f"{BADGES}:B0"] == 1


def test_a_commit_after_the_lease_moved_on_is_refused(workspace_factory: Any) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 3)))
    now = utcnow()
    with ws.engine.begin() as conn:
        conn.execute(
            LeaseRow.__table__.insert().values(  # type: ignore[attr-defined]
                name="pipeline:x", owner="replica-b", fencing_token=2, acquired_at=now,
                expires_at=now,
            )
        )  # fmt: skip

    with pytest.raises(FenceLost):
        run_pipeline(ws.config, PIPELINE, ws.engine, fence=Fence("pipeline:x", "replica-a", 1))

    assert ws.tasks_by_key() == {}
    assert ws.deliveries() == {}
    runs = SyncRunRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        state, error = conn.execute(select(runs.c.state, runs.c.error)).one()
    assert state == "failed"
    assert "replica-a" in error


def test_a_run_with_the_current_lease_token_delivers(workspace_factory: Any) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 3)))
    now = utcnow()
    with ws.engine.begin() as conn:
        conn.execute(
            LeaseRow.__table__.insert().values(  # type: ignore[attr-defined]
                name="pipeline:x", owner="replica-a", fencing_token=7, acquired_at=now,
                expires_at=now,
            )
        )  # fmt: skip

    summary = run_pipeline(
        ws.config, PIPELINE, ws.engine, fence=Fence("pipeline:x", "replica-a", 7)
    )

    assert summary.count("pushed") == 3


def test_a_stop_request_ends_the_run_as_interrupted_after_committing_its_batch(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline(batch_size=2)})
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 12)))
    stop = threading.Event()

    def progress(stage: str, amount: int) -> None:
        if stage == "push":
            stop.set()

    first = run_pipeline(ws.config, PIPELINE, ws.engine, stop=stop, progress=progress)

    assert first.state == "interrupted"
    assert 0 < first.count("pushed") < 12
    rest = run_pipeline(ws.config, PIPELINE, ws.engine)
    assert rest.state == "succeeded"
    assert first.count("pushed") + rest.count("pushed") == 12
    assert set(ws.tasks_by_key().values()) == {1}
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_touches_refused_for_a_row_lock_are_retried_within_the_run_and_land_once(
    workspace_factory: Any,
) -> None:
    ws = with_salesforce_settings(
        workspace_factory({PIPELINE: badge_pipeline()}), lock_retry_backoff_s=0
    )
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 60)))
    ws.sandbox.set_faults("salesforce:unable_to_lock_row=0.2", seed=5)

    summary = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert summary.state == "succeeded", summary.error
    assert (summary.count("pushed"), summary.count("failed")) == (60, 0)
    assert summary.count("dead_lettered") == 0
    assert ws.tasks_by_key() == dict.fromkeys((f"{BADGES}:B{n}" for n in range(60)), 1)
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}


def test_touches_of_a_person_another_process_keeps_locked_stay_pending_and_land_later(
    workspace_factory: Any,
) -> None:
    ws = with_salesforce_settings(
        workspace_factory({PIPELINE: badge_pipeline()}), lock_retry_backoff_s=0
    )
    emails = known_emails(ws.sandbox, 5)
    ws.import_badges(badge_rows([*emails, emails[1]]))
    store = ws.sandbox.store("salesforce")
    busy = [
        r["Id"]
        for sobject in ("Lead", "Contact")
        for r in store.records[sobject].values()
        if (r.get("Email") or "").lower() == emails[1].lower()
    ]
    store.hold_locks(busy)  # another integration holds the person past Salesforce's 10 s wait

    first = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert first.state == "succeeded", first.error
    assert (first.count("pushed"), first.count("failed")) == (4, 2)
    assert first.count("dead_lettered") == 0
    assert _dead_letters(ws.engine) == []
    locked = {f"{BADGES}:B1", f"{BADGES}:B5"}
    assert {k: ws.deliveries()[k][0] for k in locked} == dict.fromkeys(locked, "failed")
    assert _last_errors(ws.engine, locked) == {
        "salesforce refused the record for now: UNABLE_TO_LOCK_ROW: unable to obtain exclusive "
        "access to this record or 2 records; will retry"
    }
    assert locked.isdisjoint(ws.tasks_by_key())

    store.release_locks()
    second = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert (second.count("pushed"), second.count("failed")) == (2, 0)
    assert ws.tasks_by_key() == dict.fromkeys((f"{BADGES}:B{n}" for n in range(6)), 1)
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}


def test_touches_whose_collection_the_server_fails_stay_pending_and_land_later(
    workspace_factory: Any,
) -> None:
    """A 5xx subrequest inside a successful Composite answer says nothing about its records:
    sent again within the run, then left pending, never dead letters."""
    ws = with_salesforce_settings(
        workspace_factory({PIPELINE: badge_pipeline()}), lock_retry_backoff_s=0
    )
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 6)))
    ws.sandbox.set_faults("salesforce:subrequest_500=1")

    first = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert first.state == "succeeded", first.error
    assert (first.count("pushed"), first.count("failed")) == (0, 6)
    assert first.count("dead_lettered") == 0
    assert _dead_letters(ws.engine) == []
    assert ws.tasks_by_key() == {}
    [error] = _last_errors(ws.engine, {f"{BADGES}:B{n}" for n in range(6)})
    assert error.startswith("salesforce refused the record for now: UNKNOWN_EXCEPTION: ")

    ws.sandbox.set_faults("")
    second = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert (second.count("pushed"), second.count("failed")) == (6, 0)
    assert ws.tasks_by_key() == dict.fromkeys((f"{BADGES}:B{n}" for n in range(6)), 1)
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}


def _last_errors(engine: Any, keys: set[str]) -> set[str]:
    touch, delivery = TouchRow.__table__, DeliveryRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            select(delivery.c.last_error)
            .join(touch, touch.c.id == delivery.c.touch_id)
            .where(touch.c.key.in_(keys))
        ).all()
    return {r.last_error for r in rows}


def test_a_new_email_becomes_a_lead_with_the_rows_name_company_title_and_country(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    path = ws.folder / "cards.csv"
    # As Excel writes it on a German Windows: cp1252, ";", the person's columns by usual names.
    path.write_bytes(
        "Badge;Email;Scanned;First Name;Last Name;Company;Job Title;Land\r\n"
        f"B0;juergen@new-guests.example;{SCAN_DAY:%Y-%m-%d}T10:00:00Z;Jürgen;Müller;"
        "Bäcker GmbH;Einkauf;Deutschland\r\n"
        f"B1;anon@new-guests.example;{SCAN_DAY:%Y-%m-%d}T10:05:00Z;;;;;\r\n".encode("cp1252")
    )
    settings = ws.config.connections[BADGES].settings
    assert import_file(ws.engine, path, BADGES, settings).imported == 2

    run = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert run.state == "succeeded", run.error
    assert run.count("created_people") == 2
    store = ws.sandbox.store("salesforce")
    (named,) = store.find("Lead", "Email", "juergen@new-guests.example")
    lead = store.get("Lead", named)
    assert lead is not None
    assert (lead["FirstName"], lead["LastName"]) == ("Jürgen", "Müller")
    assert (lead["Company"], lead["Title"]) == ("Bäcker GmbH", "Einkauf")
    assert lead["Country"] == "Deutschland"
    (anonymous,) = store.find("Lead", "Email", "anon@new-guests.example")
    assert store.get("Lead", anonymous)["Company"] == "[not provided]"  # type: ignore[index]
    with ws.engine.connect() as conn:
        person = conn.execute(
            select(PersonRow.first_name, PersonRow.last_name, PersonRow.company).where(
                PersonRow.email == "juergen@new-guests.example"
            )
        ).one()
    assert tuple(person) == ("Jürgen", "Müller", "Bäcker GmbH")  # the ledger's person too


@pytest.mark.parametrize(
    ("email_window", "ahead_chunk", "lookups"),
    [(touches_pipeline.EMAIL_WINDOW, deliveries.AHEAD_CHUNK, 1), (777, 100, 5)],
)
def test_people_new_to_the_ledger_are_looked_up_in_one_call_for_the_whole_run(
    workspace_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    email_window: int,
    ahead_chunk: int,
    lookups: int,
) -> None:
    # 10,000 scans of 500 people the org knows and the ledger does not, 20 each in random
    # order, pushed in batches of 1,000: each batch meets people no batch before it met, but
    # the run looks them all up in one call (500 emails fit one Composite call): 10 pushes + 1.
    # Read in windows of 777 touches, every person recurs in window after window, and with
    # lookups of 100 people the run still asks for each person once, in 5 full lookups.
    monkeypatch.setattr(touches_pipeline, "EMAIL_WINDOW", email_window)
    monkeypatch.setattr(deliveries, "AHEAD_CHUNK", ahead_chunk)
    ws = workspace_factory({PIPELINE: badge_pipeline(batch_size=1000)})
    *people, first = known_emails(ws.sandbox, 501)
    assert len(people) == 500
    assert ws.import_badges(badge_rows([first], start=90_000)) == 1
    assert run_pipeline(ws.config, PIPELINE, ws.engine).state == "succeeded"  # schema cached
    emails = [email for email in people for _ in range(20)]
    random.Random(18).shuffle(emails)
    assert ws.import_badges(badge_rows(emails)) == 10_000
    ws.sandbox.state.reset_counters()

    run = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert run.state == "succeeded", run.error
    assert run.count("pushed") == 10_000
    assert run.count("created_people") == 0
    calls = ws.sandbox.state.counts("salesforce")
    made = sum(n for endpoint, n in calls.items() if endpoint != "oauth_token")
    assert made <= 10 + lookups, calls


class _Feed:
    """A source whose second page comes only once the first page's touches are in Salesforce
    (or 30 s passed): a run that pulled everything before delivering would wait it out. The
    first page holds the ten batches a round of delivery waits for (``ROUND_BATCHES``)."""

    name = BADGES

    def __init__(self, ws: Any, emails: list[str]) -> None:
        self.ws = ws
        self.emails = emails
        self.first_landed_before_second_page: bool | None = None

    def check(self) -> list[Any]:
        return []

    def _page(self, start: int, size: int) -> Page[Touch]:
        touches = [
            Touch(source=BADGES, source_id=f"F{n}", kind=TouchKind.EVENT_ATTENDED,
                  occurred_at=SCAN_DAY + timedelta(minutes=n), email=self.emails[n],
                  campaign=CAMPAIGN)
            for n in range(start, start + size)
        ]  # fmt: skip
        return Page(touches, Cursor(touches[-1].occurred_at.isoformat()))

    def pull_touches(self, cursor: Cursor, until: datetime) -> Iterator[Page[Touch]]:
        del cursor, until  # one feed, read whole
        yield self._page(0, 20)
        deadline = time.monotonic() + 30
        first = {f"{BADGES}:F{n}" for n in range(20)}
        while not first <= set(self.ws.tasks_by_key()) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.first_landed_before_second_page = first <= set(self.ws.tasks_by_key())
        yield self._page(20, 5)


def test_a_page_pulled_is_delivered_while_the_source_is_still_being_pulled(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline(batch_size=2)})
    feed = _Feed(ws, known_emails(ws.sandbox, 25))
    connections = Connections(ws.config, instances={BADGES: feed})
    try:
        summary = run_pipeline(ws.config, PIPELINE, ws.engine, connections=connections)
    finally:
        connections.close()

    assert summary.state == "succeeded", summary.error
    assert feed.first_landed_before_second_page is True
    assert summary.count("pushed") == 25
    assert set(ws.tasks_by_key().values()) == {1}
