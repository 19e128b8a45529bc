"""``closedloop db``: create, inspect and migrate the ledger's schema.

Every other command upgrades the ledger by itself when it opens it; these commands are for
operators who want to do it explicitly (before a rollout, or to review the SQL first).
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Create, inspect and migrate the ledger database.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Ledger database URL. Default: $CLOSEDLOOP_DATABASE_URL, else "
        "sqlite:///./closedloop.db. Example: postgresql://user@db:5432/closedloop",
        show_default=False,
    ),
]


def _url(database_url: str | None) -> str:
    from sync.ledger.engine import default_database_url

    return database_url or default_database_url()


def _resolve(url: str) -> str:
    """The URL as shown to the user: normalised, password masked (and validated on the way)."""
    from sync.ledger.engine import mask_url, normalize_url

    return mask_url(normalize_url(url))


@app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Option("--revision", "-r", help="Target revision.")] = "head",
    sql: Annotated[
        bool,
        typer.Option("--sql", help="Print the SQL of an upgrade from empty instead of running it."),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the ledger schema forward (creates the tables in an empty database)."""
    from sync.ledger.engine import make_engine
    from sync.ledger.migrate import current, upgrade, upgrade_sql

    url = _url(database_url)
    where = _resolve(url)
    if sql:
        typer.echo(upgrade_sql(url, revision), nl=False)
        return
    engine = make_engine(url)
    try:
        before = current(engine)
        upgrade(engine, revision)
        after = current(engine)
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"ledger {where}: already at revision {after}")
    else:
        typer.echo(f"ledger {where}: upgraded from {before or 'empty'} to {after}")


@app.command("current")
def current_command(database_url: DatabaseUrl = None) -> None:
    """Show the ledger's schema revision and whether it is the newest one."""
    from sync.ledger.migrate import current, head

    url = _url(database_url)
    where = _resolve(url)
    if _missing_sqlite_file(url):
        typer.echo(f"ledger {where}: no database file yet; run `closedloop db upgrade`")
        return
    revision = current(url)
    newest = head()
    if revision is None:
        typer.echo(f"ledger {where}: empty (no schema yet); run `closedloop db upgrade`")
    elif revision == newest:
        typer.echo(f"ledger {where}: revision {revision} (head)")
    else:
        typer.echo(
            f"ledger {where}: revision {revision}; newest is {newest}: run `closedloop db upgrade`"
        )


@app.command("downgrade")
def downgrade_command(
    revision: Annotated[
        str, typer.Argument(help="Target revision; `base` drops every ledger table.")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the ledger schema back to REVISION (data in dropped tables is lost)."""
    from sync.ledger.migrate import current, downgrade

    url = _url(database_url)
    where = _resolve(url)
    if not yes:
        typer.confirm(
            f"Downgrade the ledger {where} to {revision}? Data in dropped tables is lost.",
            abort=True,
        )
    before = current(url)
    downgrade(url, revision)
    after = current(url)
    typer.echo(f"ledger {where}: downgraded from {before or 'empty'} to {after or 'base'}")


def _missing_sqlite_file(url: str) -> bool:
    """True for a SQLite URL whose file does not exist (asking must not create it)."""
    from pathlib import Path

    from sync.ledger.engine import normalize_url

    parsed = normalize_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return False
    return not Path(database).exists()
