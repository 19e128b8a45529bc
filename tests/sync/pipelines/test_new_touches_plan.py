"""The touches pipeline reads its new work through indexes, so a batch costs the same at any
ledger size: the database's own plan names the index (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL
``EXPLAIN``) and reads no table whole."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Select, text

from connectors.base import Person, PersonKind, Touch, TouchKind
from sync.ingest import store_touches
from sync.ledger.planner import GROWN_TABLES, StatisticsKeeper
from sync.pipelines.rows import live_people_query, upsert_people
from sync.pipelines.touches import delivered_query, new_touches_query


def _fill(engine: Engine, *, analyse: bool = True) -> None:
    """20,000 touches of two sources (webinar one in a hundred), the older half of marketo's
    delivered; PostgreSQL's statistics fresh unless ``analyse`` is false."""
    start = datetime(2026, 5, 1, tzinfo=UTC)
    touches = [
        Touch(
            source="webinar" if n % 100 == 0 else "marketo",
            source_id=str(n),
            kind=TouchKind.EMAIL_OPEN,
            occurred_at=start + timedelta(seconds=n),
            email=f"person{n % 300}@example.com",
        )
        for n in range(20_000)
    ]
    store_touches(engine, touches)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO delivery (touch_id, sink, state, attempts, intended_at) "
                "SELECT id, 'salesforce', 'confirmed', 1, pulled_at FROM touch "
                "WHERE source = 'marketo' AND id <= 10000"
            )
        )
        if analyse and engine.dialect.name == "postgresql":
            # PostgreSQL's autovacuum keeps statistics; a SQLite ledger has none (nothing runs
            # ANALYZE), which is where a plan without the index sorts a whole source per batch.
            conn.execute(text("ANALYZE"))


def _plan(engine: Engine, query: Select[object]) -> str:
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.execute(text(explain + sql)).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_new_touches_after_the_cursor_are_an_index_range_of_their_source(
    ledger_engine: Engine,
) -> None:
    _fill(ledger_engine)

    # The smaller source: a plan walking all touches by id would read the other's as well.
    plan = _plan(ledger_engine, new_touches_query("webinar", 10_000, 100))

    assert "ix_touch_source_id" in plan, plan
    if ledger_engine.dialect.name == "sqlite":
        assert "TEMP B-TREE" not in plan, plan  # read in id order, not sorted afterwards
    else:
        assert "Seq Scan" not in plan, plan
        assert "Sort" not in plan, plan


def test_which_touches_of_a_batch_are_delivered_is_read_through_the_delivery_key(
    ledger_engine: Engine,
) -> None:
    _fill(ledger_engine)

    plan = _plan(ledger_engine, delivered_query("salesforce", list(range(1_801, 1_900, 2))))

    if ledger_engine.dialect.name == "sqlite":
        assert "sqlite_autoindex_delivery" in plan, plan
        assert "touch_id=? AND sink=?" in plan, plan
    else:
        assert "uq_delivery_touch_id_sink" in plan, plan
        assert "Seq Scan" not in plan, plan


def test_the_people_of_a_batch_are_looked_up_by_crm_and_email(ledger_engine: Engine) -> None:
    with ledger_engine.begin() as conn:
        for crm in ("salesforce", "hubspot"):
            upsert_people(
                conn,
                crm,
                [
                    Person(crm, f"{crm}{n}", PersonKind.LEAD, f"person{n}@example.com")
                    for n in range(5_000)
                ],
            )
        if ledger_engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))

    emails = [f"person{n}@example.com" for n in range(0, 5_000, 100)]
    plan = _plan(ledger_engine, live_people_query("salesforce", emails))

    # An email index, not the (crm, external_id) unique one: that reads every person of the CRM
    # (SQLite's choice without statistics before ``person (crm, email)`` existed).
    assert "ix_person_crm_email" in plan or "ix_person_email" in plan, plan
    assert "autoindex_person" not in plan, plan
    assert "uq_person" not in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_run_analyses_the_tables_it_grew_past_their_statistics(ledger_engine: Engine) -> None:
    """A first backfill fills a new ledger faster than autovacuum analyses it: the run's own
    keeper analyses the grown tables between batches, so the next batch is planned on what the
    tables hold (an index range without a sort), and does nothing while they have not grown."""
    keeper = StatisticsKeeper(ledger_engine)
    if ledger_engine.dialect.name == "sqlite":
        _fill(ledger_engine)
        assert keeper.refresh() == []  # SQLite plans by its indexes alone
        return
    with ledger_engine.begin() as conn:
        for table in GROWN_TABLES:  # only this test's keeper may analyse them
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    _fill(ledger_engine, analyse=False)
    ledger_engine.dispose()  # the backends' table counters reach the statistics system on exit
    deadline = time.monotonic() + 10
    while "touch" not in keeper.stale() and time.monotonic() < deadline:
        time.sleep(0.1)

    analysed = keeper.refresh()

    assert "touch" in analysed, analysed
    assert "delivery" in analysed, analysed
    with ledger_engine.connect() as conn:
        believed = conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = CAST('touch' AS regclass)")
        ).scalar_one()
    assert believed >= 19_000
    # Read in id order and stopped after 1,000 rows (through either index), not every new touch
    # gathered and sorted.
    plan = _plan(ledger_engine, new_touches_query("marketo", 10_000, 1_000))
    assert "Index Scan" in plan, plan
    assert "Sort" not in plan, plan
    assert "Bitmap" not in plan, plan
    assert keeper.refresh() == []
