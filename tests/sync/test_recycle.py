"""The recycle pipeline: recycled leads reach the nurture list once, re-qualified ones never."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import respx
from sqlalchemy import Engine, insert, select

from connectors.base import Cursor, ListChange, Person, PersonKind
from connectors.errors import ConfigError
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from sync.analytics.load import ledger_table
from sync.analytics.settings import AnalyticsSettings
from sync.ledger import DeadLetterRow, DispositionRow, PersonRow, open_ledger
from sync.recycle import MarketoNurture, NurtureOutcome, recycle_once, run_recycle
from tests.connectors.marketo.conftest import BASE, make_settings, ok, token

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


class NurtureList:
    """A nurture list that remembers every add call (a stand-in for the marketing side)."""

    def __init__(self, unknown: Sequence[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.members: set[str] = set()
        self.unknown = set(unknown)

    def add(self, emails: Sequence[str]) -> NurtureOutcome:
        self.calls.append(list(emails))
        outcome = NurtureOutcome()
        for email in emails:
            if email in self.unknown:
                outcome.rejected[email] = ("not_found", "unknown on the marketing side")
            else:
                self.members.add(email)
                outcome.added.append(email)
        return outcome


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


def person(engine: Engine, external_id: str, email: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(ledger_table(PersonRow)).values(
                crm="sf", external_id=external_id, kind="lead", email=email
            )
        )


def change(engine: Engine, external_id: str, hours: float, stage: str, crm: str = "sf") -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(ledger_table(DispositionRow)).values(
                crm=crm,
                object_type="lead",
                object_id=external_id,
                field="Status",
                new_value=stage,
                lifecycle_stage=stage,
                reason="Not ready to buy" if stage == "Recycled" else None,
                changed_at=T0 + timedelta(hours=hours),
            )
        )


def test_recycled_leads_are_added_once_and_requalified_ones_are_left_alone(
    engine: Engine,
) -> None:
    for pid in ("00Q1", "00Q2", "00Q3"):
        person(engine, pid, f"{pid.lower()}@example.com")
        change(engine, pid, 0, "MQL")
        change(engine, pid, 5, "Recycled")
    change(engine, "00Q3", 8, "SQL")  # sales changed its mind before the run
    change(engine, "00Q9", 5, "Recycled", crm="hubspot")  # another CRM: not this pipeline's
    nurture = NurtureList()

    first = recycle_once(engine, nurture, pipeline="recycle-sf", crm="sf")
    assert sorted(first.added) == ["00q1@example.com", "00q2@example.com"]
    assert (first.still_recycled, first.requalified) == (2, 1)

    again = recycle_once(engine, nurture, pipeline="recycle-sf", crm="sf")
    assert (again.added, again.still_recycled) == ([], 0)
    assert nurture.calls == [["00q1@example.com", "00q2@example.com"]]


def test_a_lead_recycled_again_later_is_sent_again_and_so_are_leads_at_the_cursor_time(
    engine: Engine,
) -> None:
    person(engine, "00Q1", "ann@example.com")
    person(engine, "00Q2", "bo@example.com")
    change(engine, "00Q1", 5, "Recycled")
    nurture = NurtureList()
    recycle_once(engine, nurture, pipeline="p", crm="sf")
    # A second lead recycled at exactly the cursor's time, then Ann again after re-scoring.
    change(engine, "00Q2", 5, "Recycled")
    result = recycle_once(engine, nurture, pipeline="p", crm="sf")
    assert result.added == ["bo@example.com"]
    change(engine, "00Q1", 50, "MQL")
    change(engine, "00Q1", 60, "Recycled")
    result = recycle_once(engine, nurture, pipeline="p", crm="sf")
    assert result.added == ["ann@example.com"]
    assert nurture.calls == [["ann@example.com"], ["bo@example.com"], ["ann@example.com"]]


def test_people_the_marketing_side_refuses_become_dead_letters_and_the_run_goes_on(
    engine: Engine,
) -> None:
    person(engine, "00Q1", "ann@example.com")
    person(engine, "00Q2", "ghost@example.com")
    person(engine, "00Q3", None)
    for pid in ("00Q1", "00Q2", "00Q3"):
        change(engine, pid, 5, "Recycled")
    result = recycle_once(
        engine, NurtureList(unknown=["ghost@example.com"]), pipeline="p", crm="sf"
    )
    assert result.added == ["ann@example.com"]
    assert set(result.rejected) == {"ghost@example.com", "(no e-mail) 00Q3"}
    with engine.connect() as conn:
        letters = conn.execute(select(ledger_table(DeadLetterRow))).mappings().all()
    assert sorted((row["code"], row["stage"], row["pipeline"]) for row in letters) == [
        ("no_email", "push", "p"),
        ("not_found", "push", "p"),
    ]
    assert recycle_once(engine, NurtureList(), pipeline="p", crm="sf").still_recycled == 0


def test_marketo_nurture_looks_leads_up_by_email_and_adds_their_ids_to_the_static_list() -> None:
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        api.get("/identity/oauth/token").mock(return_value=token())
        lookup = api.get("/rest/v1/leads.json").mock(
            return_value=ok([{"id": 7, "email": "ann@example.com"}])
        )
        add = api.post("/rest/v1/lists/1001/leads.json").mock(
            return_value=ok([{"id": 7, "status": "added"}])
        )
        with MarketoSource("marketo", make_settings(), clock=ManualClock(T0)) as source:
            outcome = MarketoNurture(source, 1001).add(["ann@example.com", "bo@example.com"])
    assert outcome.added == ["ann@example.com"]
    assert outcome.rejected == {"bo@example.com": ("not_found", "no Marketo lead has this e-mail")}
    assert lookup.calls[0].request.url.params["filterValues"] == "ann@example.com,bo@example.com"
    assert json.loads(add.calls[0].request.content) == {"input": [{"id": 7}]}


class FakeMarketo:
    """The two Marketo connector calls a nurture list needs, answered from memory."""

    def __init__(self, leads: dict[str, int]) -> None:
        self.leads = leads
        self.lists: dict[int, set[int]] = {}

    def lookup_leads(self, emails: Sequence[str]) -> dict[str, Person]:
        return {
            e: Person("mkto", str(self.leads[e]), PersonKind.LEAD, e)
            for e in emails
            if e in self.leads
        }

    def add_to_list(self, list_id: int, lead_ids: Sequence[int]) -> ListChange[int]:
        self.lists.setdefault(list_id, set()).update(lead_ids)
        return ListChange[int](changed=list(lead_ids))


def test_the_runner_entry_point_uses_the_configured_list_and_the_runs_fenced_cursor(
    engine: Engine,
) -> None:
    person(engine, "00Q1", "ann@example.com")
    change(engine, "00Q1", 5, "Recycled")
    marketo = FakeMarketo({"ann@example.com": 42})
    saved: list[tuple[str, Cursor]] = []
    progress: list[tuple[str, int]] = []
    ctx = SimpleNamespace(
        name="back-to-nurture",
        pipeline=SimpleNamespace(source="sf", sink="mkto", mapping=None, kind="recycle"),
        config=SimpleNamespace(
            analytics=AnalyticsSettings(nurture_lists={"back-to-nurture": 1001}),
            connections={"mkto": SimpleNamespace(type="marketo")},
            pipelines={},
        ),
        engine=engine,
        connections=SimpleNamespace(get={"mkto": marketo}.__getitem__),
        save_cursor=lambda _conn, stream, cursor: saved.append((stream, cursor)),
        progress=lambda stage, n: progress.append((stage, n)),
    )
    counts = run_recycle(ctx)
    assert counts == {"nurtured": 1, "requalified": 0, "refused": 0}
    assert marketo.lists == {1001: {42}}
    assert [(stream, cursor.value) for stream, cursor in saved] == [
        ("recycled", (T0 + timedelta(hours=5)).isoformat())
    ]
    assert progress == [("nurtured", 1)]


def test_a_recycle_pipeline_without_a_nurture_list_says_how_to_configure_one() -> None:
    ctx = SimpleNamespace(
        name="p",
        pipeline=SimpleNamespace(source="sf", sink="mkto", mapping=None),
        config=SimpleNamespace(analytics=AnalyticsSettings()),
    )
    with pytest.raises(ConfigError, match=r"analytics\.nurture_lists\.p"):
        run_recycle(ctx)
