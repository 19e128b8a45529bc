"""``closedloop connectors``: list the connector types installed through entry points."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from connectors.registry import connector_names, get_connector

app = typer.Typer(help="List installed connector types.", no_args_is_help=True)


@app.command("list")
def list_connectors() -> None:
    """List every installed connector type with its roles."""
    table = Table("type", "roles", "description")
    for name in connector_names():
        info = get_connector(name)
        table.add_row(name, ", ".join(sorted(info.roles)), info.description)
    Console().print(table)
