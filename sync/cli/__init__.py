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
def _root(
    ctx: typer.Context,
    log_level: str | None = typer.Option(
        None,
        "--log-level",
        envvar="CLOSEDLOOP_LOG_LEVEL",
        help="debug, info, warning or error (default: the config's logging.level, else warning).",
        show_default=False,
    ),
) -> None:
    """Close the loop between marketing automation and your CRM."""
    from sync.logs import begin_command, end_command

    begin_command(log_level)
    ctx.call_on_close(end_command)


def _mount() -> None:
    from sandbox import cli as sandbox_cmd
    from sync.cli import (
        attribution_cmd,
        check_cmd,
        config_cmd,
        connectors_cmd,
        db_cmd,
        dead_letters_cmd,
        demo_cmd,
        import_cmd,
        log_cmd,
        mappings_cmd,
        matches_cmd,
        report_cmd,
        schema_cmd,
        serve_cmd,
        sla_cmd,
        sync_cmd,
        ui_cmd,
    )

    app.command("demo")(demo_cmd.demo_command)
    app.command("init")(config_cmd.init_command)
    app.command("sync")(sync_cmd.sync_command)
    app.command("backfill")(sync_cmd.backfill_command)
    app.command("runs")(sync_cmd.runs_command)
    app.add_typer(dead_letters_cmd.app, name="dead-letters")
    app.command("log")(log_cmd.log_command)
    app.command("report")(report_cmd.report_command)
    app.add_typer(sla_cmd.app, name="sla")
    app.add_typer(attribution_cmd.app, name="attribution")
    app.add_typer(matches_cmd.app, name="matches")
    app.add_typer(check_cmd.app, name="check")
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(db_cmd.app, name="db")
    app.add_typer(mappings_cmd.app, name="mappings")
    app.add_typer(schema_cmd.app, name="schema")
    app.add_typer(connectors_cmd.app, name="connectors")
    app.add_typer(sandbox_cmd.app, name="sandbox")
    app.command("import")(import_cmd.import_command)
    app.command("serve")(serve_cmd.serve_command)
    app.command("ui-user")(ui_cmd.ui_user_command)


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
        # Usage errors come from the click that typer vendors, so match on behaviour, not type.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
            sys.exit(int(getattr(exc, "exit_code", 2)))
        _stderr.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc}")
        sys.exit(1)
