"""A write-back's dead letters follow its latest run: one open letter per refused record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from connectors.errors import RecordRejected
from sync.ledger import DeadLetterRow, ledger_session, open_ledger
from sync.writeback.report import dead_letter


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


def _refused(*keys: str, why: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION") -> list[RecordRejected]:
    return [RecordRejected(f"{why} on {k}", code=why, key=k) for k in keys]


def _letters(engine: Engine) -> list[tuple[str | None, str, str, int]]:
    with ledger_session(engine) as session:
        rows = session.exec(select(DeadLetterRow).order_by(DeadLetterRow.id)).all()
        return [(r.record_key, r.payload["crm"], r.status, r.attempts) for r in rows]


def test_a_record_refused_again_keeps_one_letter_and_one_written_since_is_settled(
    engine: Engine,
) -> None:
    dead_letter(engine, "sla-writeback", _refused("00Q1", "00Q2"), {"crm": "sf"})
    dead_letter(engine, "sla-writeback", _refused("h1"), {"crm": "hs"})

    dead_letter(engine, "sla-writeback", _refused("00Q2"), {"crm": "sf"})

    assert _letters(engine) == [
        ("00Q1", "sf", "replayed", 0),
        ("00Q2", "sf", "open", 1),
        ("h1", "hs", "open", 0),  # another CRM's letters are not this run's business
    ]


def test_a_clean_run_settles_every_open_letter_of_its_crm(engine: Engine) -> None:
    dead_letter(engine, "attribution-writeback", _refused("006A"), {"crm": "sf", "run": 1})
    dead_letter(engine, "attribution-writeback", [], {"crm": "sf", "run": 2})
    assert _letters(engine) == [("006A", "sf", "replayed", 0)]


def test_a_record_deferred_for_a_lock_gets_no_letter_and_leaves_its_open_letter_open(
    engine: Engine,
) -> None:
    dead_letter(engine, "sla-writeback", _refused("00Q1"), {"crm": "sf"})
    locked = _refused("00Q1", "00Q2", why="UNABLE_TO_LOCK_ROW")

    dead_letter(engine, "sla-writeback", [], {"crm": "sf"}, deferred=locked)

    assert _letters(engine) == [("00Q1", "sf", "open", 0)]
