"""The corpus of bad CSV rows: each imported beside a good row, the good one stored, the bad one a
dead letter with its code and reason, nothing else stored.

A case under ``csv/`` is one row (``row`` text or ``row_hex`` bytes) of a badge-scan file with the
columns ``email,occurred_at,kind,campaign,company``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.files import FilesSettings
from sync.cli.import_cmd import import_file
from sync.ledger import DeadLetterRow, TouchRow, open_ledger
from tests.corpus.harness import json_cases, time_limit

HEADER = b"email,occurred_at,kind,campaign,company\n"
GOOD = b"good@example.com,2024-05-01T09:00:00Z,webinar_attended,Spring expo,Acme\n"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
# A UTF-8 file: a byte that is not UTF-8 rejects its row (no encoding is guessed for it).
SETTINGS = {"columns": {"email": "email", "occurred_at": "occurred_at", "kind": "kind",
                        "campaign": "campaign"}, "encoding": "utf-8"}  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


def import_case(engine: Engine, folder: Path, case: dict[str, Any]) -> Any:
    """Write the good row and the case's row as a CSV file and import it."""
    row = bytes.fromhex(case["row_hex"]) if "row_hex" in case else case["row"].encode()
    path = folder / "scans.csv"
    path.write_bytes(HEADER + GOOD + row + b"\n")
    settings = FilesSettings.model_validate(SETTINGS)
    return import_file(engine, path, "badges", settings, now=NOW)


def stored(engine: Engine) -> tuple[list[str], list[tuple[str, str]]]:
    """Emails of the touches stored, and (code, reason) of the dead letters."""
    touches, letters = TouchRow.__table__, DeadLetterRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        emails = [r[0] for r in conn.execute(select(touches.c.email))]
        dead = [(r[0], r[1]) for r in conn.execute(select(letters.c.code, letters.c.reason))]
    return emails, dead


@pytest.mark.parametrize("case", json_cases("csv"))
def test_a_bad_csv_row_becomes_one_dead_letter_and_the_good_row_flows(
    case: dict[str, Any], ledger: Engine, tmp_path: Path
) -> None:
    expect = case["expect"]

    with time_limit():
        report = import_case(ledger, tmp_path, case)
    emails, dead = stored(ledger)

    assert report.imported == 1
    assert emails == ["good@example.com"]
    assert len(dead) == 1, dead
    assert dead[0][0] == expect["code"]
    assert expect["reason"] in dead[0][1]
