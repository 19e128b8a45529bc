"""What the overview and the errors read from the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import Engine, insert

from sync.cli.demo_cmd import write_sandbox_config
from sync.config import Config, load_config
from sync.ingest import insert_rejects
from sync.ledger.models import CursorRow, DeliveryRow, SyncRunRow, TouchRow
from sync.ui import queries

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PIPELINE = "marketo-to-salesforce"


def _config(folder: Path) -> Config:
    ca = folder / "ca.pem"
    ca.write_text("not used\n", encoding="utf-8")
    fake = SimpleNamespace(
        salesforce_url="https://127.0.0.1:1", hubspot_url="https://127.0.0.1:1",
        marketo_url="https://127.0.0.1:1", ca_file=str(ca),
    )  # fmt: skip
    return load_config(write_sandbox_config(folder, fake))  # type: ignore[arg-type]


def _fill(engine: Engine) -> None:
    touch, delivery = TouchRow.__table__, DeliveryRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            insert(touch),
            [{"id": i, "key": f"marketo:{i}", "source": "marketo", "source_id": str(i),
              "kind": "email_open", "occurred_at": NOW - timedelta(days=1),
              "email": f"p{i}@acme.example", "attributes": {}, "raw": {},
              "pulled_at": NOW - timedelta(hours=10 - i)} for i in range(1, 9)],
        )  # fmt: skip
        conn.execute(
            insert(delivery),
            [{"touch_id": i, "sink": "salesforce", "state": s, "attempts": 1,
              "intended_at": NOW - timedelta(hours=12 - i)}
             for i, s in ((1, "confirmed"), (2, "failed"), (3, "confirmed"), (4, "dead"))],
        )  # fmt: skip
        # The deliver cursor is at touch 4: touches 5 to 8 are new, 2 waits for a retry.
        conn.execute(
            insert(CursorRow.__table__).values(  # type: ignore[attr-defined]
                pipeline=PIPELINE, stream="deliver", value="4", updated_at=NOW - timedelta(hours=2)
            )
        )
        conn.execute(
            insert(SyncRunRow.__table__),  # type: ignore[attr-defined]
            [{"pipeline": PIPELINE, "owner": "t", "started_at": NOW - timedelta(hours=h),
              "finished_at": NOW - timedelta(hours=h) + timedelta(seconds=30),
              "state": state, "counts": {"pushed": 3}, "api_calls": {"salesforce": 7}}
             for h, state in ((30, "succeeded"), (3, "failed"), (1, "succeeded"))],
        )  # fmt: skip
        from connectors.errors import RecordRejected

        insert_rejects(conn, PIPELINE, "push", [
            RecordRejected(f"salesforce refused the record: invalid id 0055g00000{i:05d}AAA",
                           code="INVALID_CROSS_REFERENCE_KEY", key=f"marketo:{i}")
            for i in (4, 5, 6)
        ])  # fmt: skip
        insert_rejects(conn, PIPELINE, "push", [
            RecordRejected("Subject: data value too large", code="STRING_TOO_LONG",
                           key="marketo:7")
        ])  # fmt: skip


def test_the_overview_counts_backlog_lag_errors_and_todays_calls(
    ledger_engine: Engine, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    _fill(ledger_engine)

    statuses = {s.name: s for s in queries.pipeline_statuses(config, ledger_engine, NOW)}
    mine = statuses[PIPELINE]
    assert mine.last_run.state == "succeeded"
    assert mine.backlog == 5  # one retry and four new touches
    assert mine.oldest_waiting == NOW - timedelta(hours=10)  # the retry, intended 10 h ago
    assert mine.lag_seconds == 2 * 3600
    assert mine.open_letters == 4
    assert statuses["marketo-to-hubspot"].backlog == 8  # nothing delivered there, no cursor
    assert queries.api_calls_today(config, ledger_engine, NOW) == {"salesforce": 14}


def test_errors_fall_in_groups_and_a_group_lists_its_records(ledger_engine: Engine) -> None:
    _fill(ledger_engine)

    groups = queries.error_groups(ledger_engine)
    assert [(g.code, g.count) for g in groups] == [
        ("INVALID_CROSS_REFERENCE_KEY", 3),
        ("STRING_TOO_LONG", 1),
    ]
    assert groups[0].template == "salesforce refused the record: invalid id <id>"
    group, letters = queries.group_letters(ledger_engine, groups[0].key)
    assert group is not None
    assert [r.record_key for r in letters] == ["marketo:4", "marketo:5", "marketo:6"]
    assert sorted(queries.group_ids(ledger_engine, groups[0].key)) == [r.id for r in letters]
    detail = queries.letter_detail(ledger_engine, letters[0].id)
    assert detail is not None
    assert detail.touch.email == "p4@acme.example"
    assert [d.state for d in detail.deliveries] == ["dead"]
    assert [r.pipeline for r in queries.runs(ledger_engine)] == [PIPELINE] * 3
