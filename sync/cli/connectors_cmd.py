"""``closedloop connectors``: the installed connector types (entry points) and their checks."""

from __future__ import annotations

import json

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from connectors.errors import ConfigError
from connectors.registry import connector_names, get_connector

app = typer.Typer(help="List installed connector types and run their checks.", no_args_is_help=True)


@app.command("list")
def list_connectors() -> None:
    """List every installed connector type with its roles."""
    table = Table("type", "roles", "description")
    for name in connector_names():
        info = get_connector(name)
        table.add_row(name, ", ".join(sorted(info.roles)), info.description)
    Console().print(table)


@app.command("check")
def check_connector(
    type_name: str = typer.Argument(..., metavar="TYPE", help="Connector type, e.g. salesforce."),
    settings: str = typer.Option(
        "{}", "--settings", help="The connection's settings as a JSON object."
    ),
    name: str = typer.Option("check", "--name", help="Connection name used in touch keys."),
) -> None:
    """Build a connector from JSON settings and run its checks; exit 1 if any check fails."""
    info = get_connector(type_name)
    try:
        values = json.loads(settings)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--settings is not valid JSON: {exc.msg} at column {exc.colno}"
        ) from None
    try:
        connector = info.build(name, values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid settings for {type_name}: {problems}") from None
    results = connector.check()
    table = Table("check", "result", "detail", "remedy")
    for result in results:
        table.add_row(result.name, "ok" if result.ok else "FAILED", result.detail, result.remedy)
    Console(width=160).print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)
