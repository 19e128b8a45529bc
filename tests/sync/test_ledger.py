"""The ledger on SQLite and PostgreSQL: migrations, constraints, types, connection settings."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import setuptools
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from connectors.errors import ConfigError
from sync.ledger import (
    LEDGER_METADATA,
    DeadLetterRow,
    DeliveryRow,
    DispositionRow,
    LedgerError,
    OpportunityRow,
    TouchRow,
    current,
    downgrade,
    head,
    ledger_session,
    make_engine,
    normalize_url,
    open_ledger,
    upgrade,
)
from sync.ledger.engine import reading
from sync.ledger.migrate import VERSION_TABLE

LEDGER_TABLES = {
    "touch",
    "person",
    "account",
    "opportunity",
    "contact_role",
    "campaign",
    "campaign_cost",
    "delivery",
    "disposition",
    "cursor",
    "sync_run",
    "dead_letter",
    "lease",
    "person_email",
    "account_match",
    "attribution_run",
    "attribution_credit",
    "attribution_outcome",
    "known_key",
    "crm_schema",
    "crm_user",
    "source_program",
    "opt_out",
    "sync_log",
    "alert_state",
    "api_usage",
    "wakeup",
    "ui_audit",
}
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _touch(source_id: str = "1", *, source: str = "marketo", **extra: object) -> TouchRow:
    values: dict[str, object] = {
        "key": f"{source}:{source_id}",
        "source": source,
        "source_id": source_id,
        "kind": "email_open",
        "occurred_at": WHEN,
        "email": "ann@example.com",
    }
    values.update(extra)
    return TouchRow.model_validate(values)


def test_upgrade_from_empty_creates_every_table(ledger_url: str) -> None:
    assert _tables(ledger_url) == set()
    upgrade(ledger_url)
    assert _tables(ledger_url) == LEDGER_TABLES | {VERSION_TABLE}


def test_current_reports_no_revision_before_and_head_after_upgrade(ledger_url: str) -> None:
    assert current(ledger_url) is None
    upgrade(ledger_url)
    assert current(ledger_url) == head() == "0013"


def test_downgrade_to_base_drops_every_table_and_upgrade_works_again(ledger_url: str) -> None:
    upgrade(ledger_url)
    downgrade(ledger_url, "base")
    assert _tables(ledger_url) <= {VERSION_TABLE}
    assert current(ledger_url) is None
    upgrade(ledger_url)
    assert _tables(ledger_url) == LEDGER_TABLES | {VERSION_TABLE}


def test_replicas_starting_together_migrate_the_ledger_once(ledger_url: str) -> None:
    def start() -> str | None:
        engine = open_ledger(ledger_url)
        try:
            return current(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        revisions = list(pool.map(lambda _: start(), range(4)))
    assert revisions == [head()] * 4
    assert _tables(ledger_url) == LEDGER_TABLES | {VERSION_TABLE}


def test_processes_starting_together_migrate_the_ledger_once(ledger_url: str) -> None:
    code = "import sys; from sync.ledger import open_ledger; open_ledger(sys.argv[1]).dispose()"
    root = Path(__file__).resolve().parents[2]
    processes = [
        subprocess.Popen([sys.executable, "-c", code, ledger_url], cwd=root, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    assert current(ledger_url) == head()


def test_opening_a_ledger_at_head_reads_its_revision_without_alembic(ledger_url: str) -> None:
    upgrade(ledger_url)
    code = (
        "import sys; from sync.ledger import open_ledger; open_ledger(sys.argv[1]).dispose(); "
        "print('alembic' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    opened = subprocess.run(
        [sys.executable, "-c", code, ledger_url], cwd=root, capture_output=True, check=True
    )
    # Every command opens the ledger: importing Alembic costs a tenth of a second each time.
    assert opened.stdout.decode().split() == ["False"]
    assert current(ledger_url) == head()


def test_migrated_schema_matches_the_models(ledger_engine: Engine) -> None:
    with ledger_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, LEDGER_METADATA) == []


def test_reopening_the_ledger_keeps_its_data(ledger_url: str) -> None:
    engine = open_ledger(ledger_url)
    with ledger_session(engine) as session:
        session.add(_touch())
    engine.dispose()
    engine = open_ledger(ledger_url)
    try:
        with Session(engine) as session:
            assert [t.key for t in session.exec(select(TouchRow))] == ["marketo:1"]
    finally:
        engine.dispose()


def test_a_ledger_migrated_by_an_unknown_newer_version_is_refused(ledger_engine: Engine) -> None:
    with ledger_engine.begin() as connection:
        connection.execute(text("UPDATE closedloop_alembic_version SET version_num = 'fffffff'"))
    with pytest.raises(LedgerError, match="does not know"):
        open_ledger(ledger_engine.url).dispose()


def test_second_touch_with_the_same_source_and_source_id_is_refused(
    ledger_engine: Engine,
) -> None:
    with ledger_session(ledger_engine) as session:
        session.add(_touch("42"))
    with pytest.raises(IntegrityError), ledger_session(ledger_engine) as session:
        # A different key string cannot smuggle the same activity in twice.
        session.add(_touch("42", key="marketo:42-again"))
    with Session(ledger_engine) as session:
        assert len(session.exec(select(TouchRow)).all()) == 1


def test_second_delivery_of_a_touch_to_the_same_sink_is_refused(ledger_engine: Engine) -> None:
    with ledger_session(ledger_engine) as session:
        touch = _touch()
        session.add(touch)
        session.flush()
        assert touch.id is not None
        session.add(DeliveryRow(touch_id=touch.id, sink="salesforce"))
        session.add(DeliveryRow(touch_id=touch.id, sink="hubspot"))
    with pytest.raises(IntegrityError), ledger_session(ledger_engine) as session:
        session.add(DeliveryRow(touch_id=touch.id, sink="salesforce"))
    with Session(ledger_engine) as session:
        sinks = sorted(d.sink for d in session.exec(select(DeliveryRow)))
    assert sinks == ["hubspot", "salesforce"]


def test_a_delivery_must_point_at_an_existing_touch(ledger_engine: Engine) -> None:
    with pytest.raises(IntegrityError), ledger_session(ledger_engine) as session:
        session.add(DeliveryRow(touch_id=999, sink="salesforce"))


def test_a_delivery_state_outside_the_vocabulary_is_refused(ledger_engine: Engine) -> None:
    with ledger_session(ledger_engine) as session:
        touch = _touch()
        session.add(touch)
    assert touch.id is not None
    with pytest.raises(IntegrityError), ledger_session(ledger_engine) as session:
        session.add(DeliveryRow(touch_id=touch.id, sink="salesforce", state="sent"))


def test_a_repulled_disposition_is_not_stored_twice(ledger_engine: Engine) -> None:
    def change() -> DispositionRow:
        return DispositionRow(
            crm="salesforce",
            object_type="lead",
            object_id="00Q1",
            field="Status",
            old_value="Open",
            new_value="",
            changed_at=WHEN,
        )

    with ledger_session(ledger_engine) as session:
        session.add(change())
    with pytest.raises(IntegrityError), ledger_session(ledger_engine) as session:
        session.add(change())


def test_aware_datetimes_come_back_as_the_same_instant_in_utc(ledger_engine: Engine) -> None:
    paris_summer = timezone(timedelta(hours=2))
    occurred = datetime(2024, 7, 1, 9, 30, 15, 250000, tzinfo=paris_summer)
    with ledger_session(ledger_engine) as session:
        session.add(_touch(occurred_at=occurred))
    with Session(ledger_engine) as session:
        row = session.exec(select(TouchRow)).one()
    assert row.occurred_at == occurred
    assert row.occurred_at.utcoffset() == timedelta(0)
    assert row.occurred_at.hour == 7
    assert row.pulled_at.tzinfo is not None


def test_range_queries_on_times_compare_instants_not_wall_clocks(ledger_engine: Engine) -> None:
    tokyo = timezone(timedelta(hours=9))
    with ledger_session(ledger_engine) as session:
        session.add(_touch("early", occurred_at=datetime(2024, 1, 1, 8, tzinfo=tokyo)))
        session.add(_touch("late", occurred_at=datetime(2024, 1, 1, 1, tzinfo=UTC)))
    cutoff = datetime(2024, 1, 1, 0, 30, tzinfo=UTC)  # after "early" (23:00 UTC the day before)
    with Session(ledger_engine) as session:
        after = session.exec(select(TouchRow.source_id).where(TouchRow.occurred_at > cutoff))
        assert list(after) == ["late"]


def test_a_naive_datetime_is_refused(ledger_engine: Engine) -> None:
    with (
        pytest.raises(StatementError, match="naive datetime"),
        ledger_session(ledger_engine) as session,
    ):
        session.add(_touch(occurred_at=datetime(2024, 1, 1, 12)))  # noqa: DTZ001 - the point


def test_emails_are_stored_lower_cased_and_found_whatever_their_case(
    ledger_engine: Engine,
) -> None:
    with ledger_session(ledger_engine) as session:
        session.add(_touch(email="  Ann.Lee@Example.COM "))
    with Session(ledger_engine) as session:
        row = session.exec(select(TouchRow).where(TouchRow.email == "ANN.LEE@example.com")).one()
    assert row.email == "ann.lee@example.com"


def test_money_keeps_its_cents(ledger_engine: Engine) -> None:
    # The documented range: 15 significant digits (SQLite stores NUMERIC as a double).
    with ledger_session(ledger_engine) as session:
        session.add(
            OpportunityRow(
                crm="salesforce",
                external_id="006A",
                name="Big deal",
                stage="Closed Won",
                amount=Decimal("9999999999999.99"),
                is_closed=True,
                is_won=True,
            )
        )
    with Session(ledger_engine) as session:
        amount = session.exec(select(OpportunityRow.amount)).one()
    assert amount == Decimal("9999999999999.99")


def test_json_documents_round_trip_and_none_is_sql_null(ledger_engine: Engine) -> None:
    with ledger_session(ledger_engine) as session:
        session.add(_touch(attributes={"url": "/pricing", "score": 5, "tags": ["a", "b"]}))
        session.add(DeadLetterRow(pipeline="p", stage="map", code="X", reason="r", payload=None))
    with Session(ledger_engine) as session:
        assert session.exec(select(TouchRow.attributes)).one() == {
            "url": "/pricing",
            "score": 5,
            "tags": ["a", "b"],
        }
        nulls = session.exec(select(DeadLetterRow).where(DeadLetterRow.payload.is_(None)))
        assert len(nulls.all()) == 1


def test_core_inserts_fill_the_column_defaults(ledger_engine: Engine) -> None:
    with ledger_engine.begin() as connection:
        connection.execute(
            TouchRow.__table__.insert(),
            [
                {
                    "key": "f:1",
                    "source": "f",
                    "source_id": "1",
                    "kind": "form_fill",
                    "occurred_at": WHEN,
                }
            ],
        )
    with Session(ledger_engine) as session:
        row = session.exec(select(TouchRow)).one()
    assert (row.attributes, row.raw, row.email) == ({}, {}, None)
    assert row.pulled_at >= WHEN


def test_campaign_costs_are_calendar_dates(ledger_engine: Engine) -> None:
    from sync.ledger import CampaignCostRow

    with ledger_session(ledger_engine) as session:
        session.add(
            CampaignCostRow(
                crm="salesforce",
                campaign_external_id="701A",
                period_start=date(2024, 1, 1),
                period_end=date(2024, 1, 31),
                amount=Decimal("100000.00"),
                origin="yaml",
            )
        )
    with Session(ledger_engine) as session:
        cost = session.exec(select(CampaignCostRow)).one()
    assert (cost.period_start, cost.amount) == (date(2024, 1, 1), Decimal("100000.00"))


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragma["journal_mode"] == "wal"
    assert pragma["foreign_keys"] == 1
    assert int(pragma["busy_timeout"]) >= 1000


def test_a_read_does_not_wait_for_a_writer_and_sees_what_was_committed(
    ledger_engine: Engine,
) -> None:
    """Between batches the engine reads while its push thread may be writing: a read through
    ``reading`` answers at once with the committed rows (SQLite: no lock taken; a write
    transaction's ``BEGIN IMMEDIATE`` would wait for the writer up to the busy timeout)."""
    with ledger_session(ledger_engine) as session:
        session.add(_touch())
    with ledger_engine.begin() as writer:
        writer.execute(
            text(
                "INSERT INTO touch (key, source, source_id, kind, occurred_at, attributes, raw, "
                "pulled_at) SELECT 'files:two', source, 'two', kind, occurred_at, attributes, raw, "
                "pulled_at FROM touch"
            )
        )
        with ThreadPoolExecutor(max_workers=1) as pool:  # another thread, as the engine's are
            seen = pool.submit(_count_touches, ledger_engine).result(timeout=10)
    assert seen == 1  # the writer's row is not committed yet


def _count_touches(engine: Engine) -> int:
    with reading(engine) as conn:
        return int(conn.execute(text("SELECT count(*) FROM touch")).scalar_one())


def test_an_in_memory_sqlite_ledger_keeps_its_tables_across_sessions() -> None:
    engine = open_ledger("sqlite://")
    try:
        with ledger_session(engine) as session:
            session.add(_touch())
        with Session(engine) as session:
            assert len(session.exec(select(TouchRow)).all()) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/ledger", "postgresql+psycopg://u:p@db:5432/ledger"),
        ("postgresql://u@db/ledger", "postgresql+psycopg://u@db/ledger"),
        ("postgresql+psycopg://u@db/ledger", "postgresql+psycopg://u@db/ledger"),
        ("sqlite:///./closedloop.db", "sqlite:///./closedloop.db"),
    ],
)
def test_ledger_urls_are_normalised_to_the_supported_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "url", ["mysql://u:secret@db/x", "postgresql+psycopg2://u:secret@db/x", "not a url"]
)
def test_unsupported_ledger_urls_are_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_url(url)
    assert "secret" not in str(caught.value)


def test_the_migration_scripts_are_packaged() -> None:
    root = Path(__file__).resolve().parents[2]
    packages = setuptools.find_packages(str(root), include=["connectors*", "sync*"])
    assert {"sync.ledger.migrations", "sync.ledger.migrations.versions"} <= set(packages)
