"""The ``closedloop`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from connectors.errors import ClosedloopError

__all__ = ["app", "main"]

app = typer.Typer(
    name="closedloop",
    help="Close the loop between marketing automation and your CRM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_stderr = Console(stderr=True, highlight=False)


@app.callback()
def _root() -> None:
    """Close the loop between marketing automation and your CRM."""


def _mount() -> None:
    from sync.cli import connectors_cmd

    app.add_typer(connectors_cmd.app, name="connectors")


_mount()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; closedloop errors become a clear message and their own exit code."""
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        code = app(args=argv, prog_name="closedloop", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except ClosedloopError as exc:
        _stderr.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        _stderr.print("aborted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: a message and exit 1, never a traceback
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        _stderr.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc}")
        sys.exit(1)
