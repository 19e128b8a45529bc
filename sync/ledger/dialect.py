"""The ledger's dialect-specific statement builders and raw reads (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

__all__ = ["dialect_insert", "raw_rows", "raw_time_parser"]

_FETCH = 10_000
_CURSORS = itertools.count(1)


def dialect_insert(conn: Connection, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_*`` for the connection's database."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def raw_rows(
    session: Session, sql: str, params: dict[str, Any] | None = None
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` straight from the driver, in the session's transaction: no per-value
    type processing (a million touches are read in a fraction of the ORM's time). ``:name``
    parameters; times come back as SQLite's text or PostgreSQL's aware datetimes."""
    session.flush()  # pending ORM changes are part of what is read
    connection = session.connection()
    driver = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        sql = re.sub(r":(\w+)", r"%(\1)s", sql)
        # A server-side cursor: rows arrive _FETCH at a time, not all at once into memory.
        cursor = driver.cursor(name=f"closedloop_raw_{next(_CURSORS)}")  # type: ignore[union-attr]
    else:
        cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params or {})
        while rows := cursor.fetchmany(_FETCH):
            yield from rows
    finally:
        cursor.close()


def raw_time_parser(session: Session) -> Callable[[Any], datetime]:
    """Turns a raw time of this database (see ``raw_rows``) into an aware UTC datetime."""
    if session.connection().dialect.name == "postgresql":
        return lambda value: value.astimezone(UTC)

    def parse(value: Any) -> datetime:
        try:  # naive UTC text, as UtcDateTime stores it: read as UTC in one step
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:  # written with an offset by something else
            return datetime.fromisoformat(value).astimezone(UTC)

    return parse
