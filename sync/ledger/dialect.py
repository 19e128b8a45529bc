"""The ledger's dialect-specific statement builders and raw reads (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Dialect,
    String,
    Table,
    TypeDecorator,
    bindparam,
    insert,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = [
    "BULK_FROM",
    "AnyOf",
    "append_rows",
    "copy_values",
    "dialect_insert",
    "raw_rows",
    "raw_time_parser",
    "update_each",
]

_FETCH = 10_000
# From this many rows PostgreSQL takes its bulk path (COPY, statements over unnested arrays);
# smaller writes keep the plain statements every database shares.
BULK_FROM = 64
_CURSORS = itertools.count(1)


def dialect_insert(conn: Connection, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_*`` for the connection's database."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class _ValueList(TypeDecorator[list[Any]]):
    """A list bound as one parameter: a JSON array on SQLite (read by ``json_each``), an array of
    the column's type elsewhere."""

    impl = String
    cache_ok = True

    def __init__(self, item: TypeEngine[Any]) -> None:
        super().__init__()
        self.item = item

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(self.item))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> Any:
        if dialect.name == "postgresql" or value is None:
            return value  # the array type cleans each item with the column's type
        if isinstance(self.item, TypeDecorator):
            value = [self.item.process_bind_param(v, dialect) for v in value]
        return json.dumps(value)


class AnyOf(ColumnElement[bool]):
    """``column IN (values)`` as one statement whatever the number of values: the values go as
    one parameter, read by ``json_each`` on SQLite and as an array (``= ANY``) on PostgreSQL.

    A literal ``IN (?, ?, ...)`` is a statement of its own for every length, and SQLite keeps each
    prepared in every connection's statement cache: the lookups of a batch (up to 500 values,
    any count) filled it with ~170 variants holding ~26 MB of a worker at 100,000 touches.
    Both databases still probe the column's index once per value, and each value passes the
    column type's own cleaning first, as in a plain comparison. For text and integer columns
    (values JSON can carry)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: no "= 1" after it where booleans are integers
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own attribute, read-only
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: Sequence[Any]) -> None:
        self.column = column
        self.values: BindParameter[list[Any]] = bindparam(
            None, list(values), type_=_ValueList(column.type)
        )


@compiles(AnyOf, "sqlite")
def _any_of_sqlite(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    values = compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"  # noqa: S608 - compiled parts


@compiles(AnyOf)
def _any_of(element: AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    return (
        f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.values, **kw)})"
    )


def copy_values(conn: Connection, table: Table, names: Sequence[str]) -> Callable[..., list[Any]]:
    """A function turning a row (mapping) into the values ``COPY`` writes for ``names``: each
    value passes its column's own cleaning (``process_bind_param``), as a bound parameter
    would, and documents go as JSONB."""
    from psycopg.types.json import Jsonb

    dialect = conn.dialect
    cleaners = [
        (name, kind if isinstance(kind := table.c[name].type, TypeDecorator) else None)
        for name in names
    ]

    def values(row: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for name, kind in cleaners:
            value = row[name]
            if kind is not None:
                value = kind.process_bind_param(value, dialect)
            out.append(Jsonb(value) if isinstance(value, dict | list) else value)
        return out

    return values


def append_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (mappings with the same keys) into ``table`` in the caller's transaction:
    one ``COPY`` on PostgreSQL from ``BULK_FROM`` rows, else one bulk INSERT. For tables that
    only grow (no conflict to resolve). Give every column but the key: a column left out takes
    the database's default, not a Python-side one of the model (COPY runs no SQLAlchemy)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < BULK_FROM:
        conn.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    values = copy_values(conn, table, names)
    driver = conn.connection.driver_connection
    assert driver is not None
    columns = ", ".join(f'"{name}"' for name in names)
    statement = f'COPY "{table.name}" ({columns}) FROM STDIN'
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(values(row))


def update_each(
    conn: Connection,
    table: Table,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    where: Mapping[str, Any],
    fixed: Mapping[str, Any],
) -> None:
    """Update ``table`` row by row in the caller's transaction: the row whose ``key`` column
    holds a mapping's ``key`` value (and whose ``where`` columns hold those values) takes the
    mapping's other values and the ``fixed`` ones. Keys must be distinct.

    PostgreSQL: one ``UPDATE ... FROM unnest(arrays)`` (a statement per row costs the server a
    round of parse, plan and execute each, 30-70 us a row measured); elsewhere one executemany.
    """
    if not rows:
        return
    varying = [name for name in rows[0] if name != key]
    if conn.dialect.name != "postgresql" or len(rows) < BULK_FROM:
        per_row = (
            update(table)
            .where(table.c[key] == bindparam("k_"), *(table.c[c] == v for c, v in where.items()))
            .values(
                **{c: bindparam(f"v_{c}") for c in varying},
                **fixed,
            )
        )
        conn.execute(
            per_row,
            [{"k_": row[key], **{f"v_{c}": row[c] for c in varying}} for row in rows],
        )
        return
    names = [key, *varying]
    values = copy_values(conn, table, names)
    columns = list(zip(*(values(row) for row in rows), strict=True))
    arrays = ", ".join(
        f"CAST(:a{i} AS {table.c[name].type.compile(dialect=conn.dialect)}[])"
        for i, name in enumerate(names)
    )
    assignments = [f'"{c}" = v."{c}"' for c in varying] + [f'"{c}" = :f_{c}' for c in fixed]
    conditions = "".join(f' AND "{table.name}"."{c}" = :w_{c}' for c in where)
    quoted = ", ".join(f'"{name}"' for name in names)
    statement = text(
        f'UPDATE "{table.name}" SET {", ".join(assignments)} '  # noqa: S608 - model names
        f"FROM unnest({arrays}) AS v({quoted}) "
        f'WHERE "{table.name}"."{key}" = v."{key}"{conditions}'
    ).bindparams(
        *(bindparam(f"f_{c}", type_=table.c[c].type) for c in fixed),
        *(bindparam(f"w_{c}", type_=table.c[c].type) for c in where),
    )
    conn.execute(
        statement,
        {
            **{f"a{i}": list(column) for i, column in enumerate(columns)},
            **{f"f_{c}": v for c, v in fixed.items()},
            **{f"w_{c}": v for c, v in where.items()},
        },
    )


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
