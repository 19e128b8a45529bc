"""Connecting to the ledger: URL rules, engine settings per backend, sessions, error translation.

Backends: SQLite (one process; the default ``sqlite:///./closedloop.db``) and PostgreSQL through
psycopg 3 (several replicas). ``postgres://`` and ``postgresql://`` URLs are rewritten to
``postgresql+psycopg://``.

SQLite connections get ``journal_mode=WAL`` (readers never block the writer),
``foreign_keys=ON`` and a ``busy_timeout``. Every SQLite transaction starts with
``BEGIN IMMEDIATE``: the stdlib driver would otherwise start transactions lazily at the first
write, and a transaction that read first and writes second can then fail at once with
"database is locked" instead of waiting its turn. It also makes SQLite DDL transactional,
so a failed migration leaves nothing half-done.

Database failures leave this module as ``ClosedloopError`` subclasses whose messages name the
host and port and never a password.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from connectors.errors import AuthError, ConfigError, Fatal, Transient

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "LedgerError",
    "LedgerUnavailable",
    "connection_error",
    "default_database_url",
    "ledger_session",
    "make_engine",
    "mask_url",
    "normalize_url",
    "reading",
]

DATABASE_URL_ENV = "CLOSEDLOOP_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///./closedloop.db"

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "closedloop_read_only"
POSTGRES_CONNECT_TIMEOUT_S = 10


class LedgerUnavailable(Transient):
    """The ledger database cannot be reached right now (server down, network, timeout)."""


class LedgerError(Fatal):
    """The ledger is reachable but unusable (unknown schema revision, failed migration)."""


def default_database_url() -> str:
    """The ledger URL: ``CLOSEDLOOP_DATABASE_URL`` when set, else ``./closedloop.db``."""
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def normalize_url(url: str | URL) -> URL:
    """Parse a ledger URL, send PostgreSQL through psycopg 3, and refuse other backends."""
    if isinstance(url, str):
        text = url.strip()
        if text.startswith("postgres://"):
            text = "postgresql://" + text.removeprefix("postgres://")
        try:
            parsed = make_url(text)
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(
                f"the ledger URL {_mask_text(text)!r} is not a database URL: expected "
                "sqlite:///path/to/closedloop.db or postgresql://user@host:5432/dbname"
            ) from exc
    else:
        parsed = url
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgresql+psycopg"):
            return parsed.set(drivername="postgresql+psycopg")
        raise ConfigError(
            f"the ledger URL uses the {driver!r} driver; closedloop talks to PostgreSQL "
            "through psycopg 3: write postgresql://... or postgresql+psycopg://..."
        )
    if backend == "sqlite" and driver in ("pysqlite", ""):
        return parsed
    raise ConfigError(
        f"unsupported ledger database {parsed.drivername!r}: use sqlite:///closedloop.db "
        "(one process) or postgresql://user@host:5432/dbname (several replicas)"
    )


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***`` (safe for messages and logs)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return _mask_text(url)


def _mask_text(text: str) -> str:
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not parseable: mask anything shaped like user:password@ by hand.
        return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", text)


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL | None = None, **engine_kwargs: Any) -> Engine:
    """Create an engine for the ledger with the connection settings each backend needs."""
    parsed = normalize_url(url if url is not None else default_database_url())
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, **engine_kwargs)
    connect_args: dict[str, Any] = {"application_name": "closedloop"}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    connect_args.update(engine_kwargs.pop("connect_args", {}))
    engine_kwargs.setdefault("pool_pre_ping", True)
    try:
        return create_engine(parsed, connect_args=connect_args, **engine_kwargs)
    except NoSuchModuleError as exc:  # pragma: no cover - psycopg is a hard dependency
        raise ConfigError("psycopg 3 is not installed: pip install 'psycopg[binary]'") from exc


def _make_sqlite_engine(url: URL, **engine_kwargs: Any) -> Engine:
    connect_args: dict[str, Any] = {"check_same_thread": False}
    connect_args.update(engine_kwargs.pop("connect_args", {}))
    if _is_memory_sqlite(url):
        # One shared connection, or every checkout would see a new empty database.
        engine_kwargs.setdefault("poolclass", StaticPool)
    # A multi-row INSERT ... RETURNING (the touch import) goes as statements of at most 100 rows,
    # not SQLAlchemy's 1,000: each connection keeps its prepared statements, and one of 1,000
    # touch rows (13,000 parameters) holds ~2 MB there. At 100,000 touches the worker's SQLite
    # statements took 13 MB with 1,000 rows and 1 MB with 100; the rows bound are the same.
    engine_kwargs.setdefault("insertmanyvalues_page_size", 100)
    engine = create_engine(url, connect_args=connect_args, **engine_kwargs)
    file_backed = not _is_memory_sqlite(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level; transactions are begun explicitly below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if file_backed:
                _enter_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front (a deferred transaction that reads, then writes,
        # fails at once instead of waiting when another writer went first); readers (``reading``)
        # take none: in WAL mode they read their snapshot beside a writer.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A ledger connection for reads only. On SQLite its transaction takes no lock, so a read
    between batches does not wait for another thread's write (the push thread committing a
    batch's outcomes) as a ``BEGIN IMMEDIATE`` would; elsewhere it is ``engine.connect()``."""
    with engine.connect() as conn:
        yield conn.execution_options(**{_READ_ONLY: True})


def _enter_wal(cursor: Any) -> None:
    """Switch the file to WAL, waiting out other connections doing the same.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is locked"
    at once, without the busy handler, while another connection holds one (several replicas or
    threads opening a new ledger together), so this waits up to the busy timeout itself.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def connection_error(exc: BaseException, url: str | URL) -> Exception:
    """Translate a failure to connect to the ledger into a one-line, password-free error."""
    parsed = url if isinstance(url, URL) else normalize_url(url)
    masked = mask_url(parsed)
    detail = _driver_message(exc, parsed)
    if parsed.get_backend_name() == "sqlite":
        return ConfigError(
            f"cannot open the SQLite ledger {parsed.database!r}: {detail} "
            "(does its directory exist, and may closedloop write there?)"
        )
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    lowered = detail.lower()
    if (
        "password authentication failed" in lowered
        or "no password supplied" in lowered
        or re.search(r'role ".*" does not exist', lowered)
    ):
        return AuthError(
            f"the ledger database at {where} refused the credentials of user "
            f"{parsed.username!r} ({masked}): check the user and password in the ledger URL"
        )
    if re.search(r'database ".*" does not exist', lowered):
        return ConfigError(
            f"the ledger database {parsed.database!r} does not exist on {where} ({masked}): "
            f"create it first (createdb -h {parsed.host or 'localhost'} "
            f"-p {parsed.port or 5432} {parsed.database})"
        )
    return LedgerUnavailable(f"cannot reach the ledger database at {where} ({masked}): {detail}")


def _driver_message(exc: BaseException, url: URL) -> str:
    """The first meaningful line of the driver's message, without secrets."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    text = lines[0] if lines else type(original).__name__
    # libpq prefixes: 'connection failed: connection to server at "h" (ip), port 5 failed: ...'
    text = re.sub(r"^connection failed:\s*", "", text)
    text = re.sub(r'^connection to server at "[^"]*"( \([^)]*\))?, port \d+ failed:\s*', "", text)
    text = re.sub(r"^FATAL:\s*", "", text)
    if url.password:
        text = text.replace(str(url.password), "***")
    return text or type(original).__name__


@contextmanager
def ledger_session(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
