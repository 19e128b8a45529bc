"""``closedloop check <crm>``: live checks of a configured CRM connection, each with its remedy.

``check salesforce`` logs in with the connection's credentials and verifies the API version,
access to the objects closedloop reads and writes, the Task external-id field (type and flags)
and the share of the daily API allocation left. ``check hubspot [--fix]`` verifies the token,
scopes and the custom properties closedloop writes (``--fix`` creates them, the touch key with
unique values). Every failure is printed with what to do about it, and the command exits 1 when
anything failed (2 for a bad config file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from connectors.base import CheckResult
from connectors.errors import ClosedloopError, ConfigError
from sync.config import CONFIG_ENV, Config, config_path, load_config

__all__ = ["app", "pick_connection", "print_results"]

app = typer.Typer(help="Check a CRM connection against the live org.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"The config file [default: ${CONFIG_ENV} or ./closedloop.yaml].",
        show_default=False,
    ),
]
ConnectionOption = Annotated[
    str | None,
    typer.Option(
        "--connection",
        help="The connection to check (needed when the config has several of this type).",
        show_default=False,
    ),
]


@app.callback()
def _group() -> None:
    """Check a CRM connection against the live org."""


def pick_connection(config: Config, type_name: str, name: str | None) -> str:
    """The connection to check: ``name``, else the only one of ``type_name``; ConfigError else."""
    of_type = sorted(n for n, c in config.connections.items() if c.type == type_name)
    if name is not None:
        conn = config.connections.get(name)
        if conn is None or conn.type != type_name:
            known = ", ".join(of_type) or "none"
            raise ConfigError(
                f"{config.path}: no {type_name} connection named {name!r} (found: {known})"
            )
        return name
    if len(of_type) == 1:
        return of_type[0]
    if not of_type:
        raise ConfigError(f"{config.path}: no connection of type {type_name} to check")
    raise ConfigError(
        f"{config.path}: several {type_name} connections ({', '.join(of_type)}); "
        "choose one with --connection"
    )


def print_results(title: str, results: list[CheckResult]) -> bool:
    """Print check results as a table (remedies included); True when all passed."""
    table = Table("check", "result", "detail", "remedy", title=title, show_lines=True)
    for result in results:
        table.add_row(result.name, "ok" if result.ok else "FAILED", result.detail, result.remedy)
    console = Console(width=160)
    console.print(table)
    # Remedies again as plain lines: tables wrap them, and some are meant to be copied.
    for result in results:
        if not result.ok and result.remedy:
            console.print(f"{result.name}: {result.remedy}", soft_wrap=True, highlight=False)
    return all(r.ok for r in results)


@app.command("salesforce")
def salesforce(config: ConfigOption = None, connection: ConnectionOption = None) -> None:
    """Check credentials, API version, object access and the touch-key field; exit 1 on failure."""
    loaded = load_config(config_path(config))
    name = pick_connection(loaded, "salesforce", connection)
    connector = loaded.connections[name].build()
    try:
        results = connector.check()
    except ClosedloopError as exc:  # check() reports; anything left is a failure to print
        results = [CheckResult("salesforce", False, str(exc), "see the message")]
    finally:
        connector.close()
    if not print_results(f"salesforce connection {name!r}", results):
        raise typer.Exit(1)


@app.command("hubspot")
def hubspot(
    config: ConfigOption = None,
    connection: ConnectionOption = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Create the missing custom properties (the touch key with unique values).",
        ),
    ] = False,
) -> None:
    """Check the token, scopes and closedloop's custom properties; --fix creates them."""
    loaded = load_config(config_path(config))
    name = pick_connection(loaded, "hubspot", connection)
    connector = loaded.connections[name].build()
    try:
        results = connector.check_and_fix() if fix else connector.check()
    except ClosedloopError as exc:  # check() reports; anything left is a failure to print
        results = [CheckResult("hubspot", False, str(exc), "see the message")]
    finally:
        connector.close()
    if not print_results(f"hubspot connection {name!r}", results):
        raise typer.Exit(1)
