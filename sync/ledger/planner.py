"""Planner statistics kept fresh while a run grows the ledger (PostgreSQL).

PostgreSQL plans every query from statistics that ``ANALYZE`` gathers; autovacuum refreshes them
only after a table changed by a fifth and a minute has passed, so a run that fills a new ledger
(a first backfill of a million touches) plans against statistics that say the tables are nearly
empty. The planner then reads every ``person`` row of the CRM for a batch's 1,000 e-mails, or
every new ``touch`` to sort out the next 1,000 by id, and the cost of a batch grows with the
ledger (measured: the person lookup went from 70 to 174 us per touch between 20,000 and 200,000
touches, with the planner estimating 222 rows for a table of 141,310).

``StatisticsKeeper.refresh`` is called between batches: it reads how many rows of the tables a
run grows changed since their last analysis (``pg_stat_user_tables``, cheap) and analyses those
that changed by half of what the planner believes they hold, so a run analyses each table a
logarithmic number of times (about a dozen for a million rows). A concurrent ``ANALYZE`` of the
same table (another replica, autovacuum) is not waited for. A role that does not own the tables
gets PostgreSQL's "skipping" warning for each (cheap; the planner keeps autovacuum's
statistics), and one the server refuses outright is told once in the log, then left alone.
SQLite needs nothing: its plans are fixed
by the indexes (``tests/sync/pipelines/test_new_touches_plan.py`` pins them without statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

__all__ = ["GROWN_TABLES", "StatisticsKeeper"]

log = structlog.get_logger(__name__)

# The tables a sync run grows by a row or more per touch.
GROWN_TABLES = ("touch", "delivery", "person", "sync_log")
# Analyse a table once the rows changed since its last analysis reach this share of the rows
# the planner believes it holds (autovacuum's own default is 0.1, but only after its naptime).
GROWTH = 0.5
# ... and at least this many (a few changes to a small table do not change a plan).
MIN_CHANGES = 1_000

_STALE = text(
    """
    SELECT s.relname, s.n_mod_since_analyze, c.reltuples
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.relid = ANY(CAST(:tables AS regclass[]))
    """
)


class StatisticsKeeper:
    """Analyses the grown tables of one ledger when their statistics fell behind."""

    def __init__(self, engine: Engine, tables: Sequence[str] = GROWN_TABLES) -> None:
        self.engine = engine
        self.tables = list(tables)
        self.enabled = engine.dialect.name == "postgresql"
        self.analysed: list[str] = []

    def stale(self) -> list[str]:
        """The tables whose changes since their last analysis outgrew ``GROWTH``."""
        if not self.enabled:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(_STALE, {"tables": self.tables}).all()
        return [
            row.relname
            for row in rows
            if row.n_mod_since_analyze >= MIN_CHANGES
            and row.n_mod_since_analyze > GROWTH * max(row.reltuples, 0)
        ]

    def refresh(self) -> list[str]:
        """Analyse the stale tables now; returns their names (none on SQLite)."""
        stale = self.stale()
        if not stale:
            return []
        try:
            with self.engine.begin() as conn:
                # Another ANALYZE of the table (a replica, autovacuum) does the job already.
                conn.execute(text("SET LOCAL lock_timeout = '1s'"))
                conn.execute(text("ANALYZE " + ", ".join(f'"{name}"' for name in stale)))
        except DBAPIError as exc:
            if "lock timeout" in str(exc).lower():
                return []
            # Refused (a read-only standby, a revoked privilege): autovacuum's statistics stay.
            self.enabled = False
            log.warning(
                "cannot refresh planner statistics; queries may slow down as the ledger grows",
                error=str(exc.orig).splitlines()[0] if exc.orig else str(exc),
            )
            return []
        self.analysed.extend(stale)
        log.debug("planner statistics refreshed", tables=stale)
        return stale
