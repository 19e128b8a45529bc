"""The row-level sync log: written in bulk, read back as a story, pruned after its retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from sync.ledger.models import SyncLogEntry, TouchRow
from sync.logs import REDACTED, register_secret
from sync.synclog import LogEntry, prune, record, story

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
_LOG = SyncLogEntry.__table__  # type: ignore[attr-defined]


def _steps() -> list[LogEntry]:
    common: dict[str, Any] = {"pipeline": "badges", "crm": "salesforce", "run_id": 7}
    match = LogEntry(
        operation="match", email="Ann@Example.com", crm_id="00Q1", answer="found lead 00Q1",
        at=WHEN, **common,
    )  # fmt: skip
    create = LogEntry(
        operation="create", touch_key="files:B1", email="ann@example.com", crm_id="00T1",
        payload={"target": "Task", "payload": {"Subject": "Expo", "When": WHEN}},
        answer="ok: created Task 00T1", at=WHEN + timedelta(seconds=1), **common,
    )  # fmt: skip
    refuse = LogEntry(
        operation="refuse", touch_key="files:B2", email="bob@example.com",
        answer="MALFORMED_ID: bad id", at=WHEN + timedelta(seconds=2), **common,
    )  # fmt: skip
    return [match, create, refuse]


def test_a_persons_story_has_their_steps_oldest_first_with_payloads_decompressed(
    ledger_engine: Engine,
) -> None:
    with ledger_engine.begin() as conn:
        assert record(conn, _steps()) == 3
        conn.execute(
            TouchRow.__table__.insert(),  # type: ignore[attr-defined]
            {"key": "files:B1", "source": "files", "source_id": "B1", "kind": "event_attended",
             "occurred_at": WHEN - timedelta(days=1), "email": "ann@example.com",
             "pulled_at": WHEN - timedelta(minutes=5)},
        )  # fmt: skip
    with ledger_engine.connect() as conn:
        ann = story(conn, email="ANN@example.com")
        by_key = story(conn, touch_key="files:B1")
        by_record = story(conn, crm_id="00T1")
        nobody = story(conn, email="carol@example.com")

    assert [s.operation for s in ann] == ["pull", "match", "create"]
    create = ann[-1]
    assert create.payload == {
        "target": "Task",
        "payload": {"Subject": "Expo", "When": WHEN.isoformat()},
    }
    assert (create.crm_id, create.answer, create.run_id) == ("00T1", "ok: created Task 00T1", 7)
    assert [s.operation for s in by_key] == ["pull", "match", "create"]
    assert [s.operation for s in by_record] == ["pull", "create"]
    assert nobody == []


def test_the_newest_steps_are_kept_when_a_story_is_longer_than_its_limit(
    ledger_engine: Engine,
) -> None:
    steps = [
        LogEntry(pipeline="p", crm="hubspot", operation="update", touch_key="k", answer=str(n),
                 at=WHEN + timedelta(minutes=n))
        for n in range(5)
    ]  # fmt: skip
    with ledger_engine.begin() as conn:
        record(conn, steps)
    with ledger_engine.connect() as conn:
        assert [s.answer for s in story(conn, touch_key="k", limit=2)] == ["3", "4"]


def test_a_secret_the_config_loaded_is_masked_in_the_answer(ledger_engine: Engine) -> None:
    register_secret("s3cr3t-token-value")
    with ledger_engine.begin() as conn:
        record(conn, [LogEntry(pipeline="p", crm="hubspot", operation="refuse", touch_key="k",
                               answer="401: bad token s3cr3t-token-value")])  # fmt: skip
    with ledger_engine.connect() as conn:
        [step] = story(conn, touch_key="k")
    assert step.answer == f"401: bad token {REDACTED}"


def test_an_unknown_operation_is_refused(ledger_engine: Engine) -> None:
    with ledger_engine.begin() as conn, pytest.raises(ValueError, match="unknown sync log"):
        record(conn, [LogEntry(pipeline="p", crm="c", operation="delete")])


def test_prune_deletes_only_rows_older_than_the_cutoff(ledger_engine: Engine) -> None:
    with ledger_engine.begin() as conn:
        record(conn, _steps())
        assert prune(conn, WHEN + timedelta(seconds=1)) == 1
    with ledger_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(_LOG)).scalar_one() == 2


def test_a_story_needs_exactly_one_subject(ledger_engine: Engine) -> None:
    with ledger_engine.connect() as conn, pytest.raises(ValueError, match="exactly one"):
        story(conn, email="a@example.com", crm_id="1")


def test_a_large_batch_reads_back_as_a_small_one_does(ledger_engine: Engine) -> None:
    """PostgreSQL writes a batch of 64 rows or more through COPY: each value still passes its
    column's cleaning (control characters out of one-line text, times in UTC), payloads come
    back whole and absent values stay absent."""
    east = datetime(2026, 11, 2, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    steps = [
        LogEntry(
            pipeline="bulk", crm="salesforce", operation="create", touch_key=f"files:K{n}",
            email=f"Person{n}@Example.com" if n % 2 else None, crm_id=f"00T{n}",
            payload={"Subject": f"Expo\x00 {n}", "n": n} if n % 3 else None,
            answer=f"ok\x07 created {n}", at=east + timedelta(seconds=n), run_id=3,
        )
        for n in range(100)
    ]  # fmt: skip
    with ledger_engine.begin() as conn:
        assert record(conn, steps) == 100
    with ledger_engine.connect() as conn:
        odd = story(conn, touch_key="files:K7")
        even = story(conn, touch_key="files:K6")
        count = conn.execute(select(func.count()).select_from(_LOG)).scalar_one()

    assert count == 100
    assert [(s.email, s.crm_id, s.answer, s.run_id) for s in odd] == [
        ("person7@example.com", "00T7", "ok created 7", 3)
    ]
    assert odd[0].at == WHEN + timedelta(seconds=7)
    assert odd[0].payload == {"Subject": "Expo\x00 7", "n": 7}
    assert (even[0].email, even[0].payload) == (None, None)
