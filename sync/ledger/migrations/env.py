"""Alembic environment of the ledger: run by ``sync.ledger.migrate``, configured in code.

Online runs receive an open connection in ``config.attributes["connection"]``; offline runs
(``--sql``) receive the URL in ``config.attributes["url"]`` and only render SQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from sync.ledger.models import LEDGER_METADATA

# An arbitrary constant: the PostgreSQL advisory lock that serialises ledger migrations.
MIGRATION_LOCK_ID = 7_226_553_101

config = context.config
version_table = config.get_main_option("version_table") or "closedloop_alembic_version"


def _run_offline() -> None:
    context.configure(
        url=config.attributes["url"],
        target_metadata=LEDGER_METADATA,
        version_table=version_table,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=LEDGER_METADATA,
        version_table=version_table,
        render_as_batch=is_sqlite,
        # SQLite DDL is transactional once the engine begins transactions itself (engine.py).
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online(config.attributes["connection"])
