"""Schema migrations of the ledger: Alembic, configured in code, scripts shipped in the package.

The revision scripts live in ``sync/ledger/migrations/versions``; no ``alembic.ini`` is read.
The revision table is ``closedloop_alembic_version`` so the ledger can share a database with
another Alembic-managed application.

Concurrent upgrades are safe: on PostgreSQL the migration transaction first takes an advisory
lock, on SQLite it begins with ``BEGIN IMMEDIATE``; whoever comes second finds the schema
already current. Within one process a lock serialises Alembic commands, whose
``alembic.context`` is a module-level global and not thread-safe.

To add a revision after changing ``models.py``, from the repository root::

    python -c "from alembic import command; from sync.ledger.migrate import alembic_config; \\
    command.revision(alembic_config('sqlite:///dev.db'), 'what changed', autogenerate=True, \\
    rev_id='0002')"

then clean the generated file by hand (import ``sync.ledger.types`` for the custom types).
"""

from __future__ import annotations

import functools
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, String, column, inspect, select, table
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from sync.ledger.engine import LedgerError, connection_error, make_engine, mask_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "current",
    "downgrade",
    "ensure_schema",
    "head",
    "open_ledger",
    "upgrade",
    "upgrade_sql",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "closedloop_alembic_version"

_alembic_lock = threading.RLock()


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged scripts (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The packaged revision scripts, read once, under the lock (loading is not thread-safe)."""
    from alembic.script import ScriptDirectory

    with _alembic_lock:
        scripts = ScriptDirectory.from_config(alembic_config())
        scripts.get_current_head()  # load the revision map before anyone else can see it
        return scripts


def head() -> str:
    """The newest revision this version of closedloop ships."""
    revision = _scripts().get_current_head()
    assert revision is not None, "the packaged migrations have no head"
    return revision


@contextmanager
def _engine(engine_or_url: Engine | str | URL | None) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    """Connect, turning a refused or failed connection into a one-line closedloop error."""
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        raise connection_error(exc, engine.url) from None
    try:
        yield connection
    finally:
        connection.close()


def _revision_of(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def current(engine_or_url: Engine | str | URL | None = None) -> str | None:
    """The revision the ledger is at, or None for an empty (never migrated) database."""
    with _engine(engine_or_url) as engine, _connect(engine) as connection:
        revision = _revision_of(connection)
        connection.rollback()
        return revision


def _run(engine: Engine, action: str, revision: str) -> None:
    from alembic import command
    from alembic.util.exc import CommandError

    with _alembic_lock, _connect(engine) as connection:
        config = alembic_config(engine.url, connection)
        try:
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
        except CommandError as exc:
            raise LedgerError(f"cannot {action} the ledger to {revision!r}: {exc}") from None
        except OperationalError as exc:
            if connection.invalidated:
                raise connection_error(exc, engine.url) from None
            raise _migration_failed(exc, engine, action) from exc
        except DBAPIError as exc:
            raise _migration_failed(exc, engine, action) from exc


def _migration_failed(exc: DBAPIError, engine: Engine, action: str) -> LedgerError:
    first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return LedgerError(
        f"the ledger {action} failed on {mask_url(engine.url)} and was rolled back: {first_line}"
    )


def upgrade(engine_or_url: Engine | str | URL | None = None, revision: str = "head") -> None:
    """Migrate the ledger forward to ``revision`` (default: the newest)."""
    with _engine(engine_or_url) as engine:
        _run(engine, "upgrade", revision)


def downgrade(engine_or_url: Engine | str | URL | None, revision: str) -> None:
    """Migrate the ledger back to ``revision`` (``base`` drops every ledger table)."""
    with _engine(engine_or_url) as engine:
        _run(engine, "downgrade", revision)


def upgrade_sql(url: str | URL | None, revision: str = "head") -> str:
    """The SQL an upgrade from empty to ``revision`` would run, for a DBA to review or apply."""
    from alembic import command
    from alembic.util.exc import CommandError

    with _engine(url) as engine:
        config = alembic_config(engine.url)
        buffer = io.StringIO()
        config.output_buffer = buffer
        try:
            with _alembic_lock:
                command.upgrade(config, revision, sql=True)
        except CommandError as exc:
            raise LedgerError(f"cannot render the upgrade to {revision!r}: {exc}") from None
        return buffer.getvalue()


_REVISION_LINE = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(.+?)\s*$", re.MULTILINE)


@functools.cache
def _packaged_head() -> str | None:
    """The newest packaged revision, read from the scripts' ``revision`` and ``down_revision``
    lines without importing Alembic (a tenth of a second at every command's start); None when
    the scripts are not one plain chain of quoted ids, and Alembic must decide."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(script.read_text(encoding="utf-8")))
        if not found:  # the package's __init__.py
            continue
        revision, parent = found.get("revision", ""), found.get("down_revision", "")
        if not re.fullmatch(r"\"\w+\"", revision) or not re.fullmatch(r"\"\w+\"|None", parent):
            return None
        revisions.add(revision.strip('"'))
        if parent != "None":
            parents.add(parent.strip('"'))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _recorded_revision(engine: Engine) -> str | None:
    """The one revision in the ledger's version table, read with plain SQL; None when there
    is no table or not exactly one row (Alembic then reads and reports it)."""
    with _connect(engine) as connection:
        try:
            if not inspect(connection).has_table(VERSION_TABLE):
                return None
            version = table(VERSION_TABLE, column("version_num", String))
            revisions = list(connection.scalars(select(version.c.version_num)))
        finally:
            connection.rollback()
    return revisions[0] if len(revisions) == 1 else None


def ensure_schema(engine: Engine) -> None:
    """Upgrade the ledger to head unless it is there already; refuse a revision we do not know.

    The common case, a ledger at the packaged head, is told without importing Alembic."""
    packaged = _packaged_head()
    if packaged is not None and _recorded_revision(engine) == packaged:
        return
    from alembic.util.exc import CommandError

    newest = head()
    revision = current(engine)
    if revision == newest:
        return
    if revision is not None:
        try:
            _scripts().get_revision(revision)
        except CommandError:
            raise LedgerError(
                f"the ledger {mask_url(engine.url)} is at schema revision {revision!r}, which "
                f"this closedloop does not know (newest known: {newest!r}); was it migrated by "
                "a newer closedloop? Upgrade closedloop, or point it at another database."
            ) from None
    upgrade(engine, "head")


def open_ledger(url: str | URL | None = None) -> Engine:
    """Connect to the ledger and bring its schema to the newest revision (every command's start)."""
    engine = make_engine(url)
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
