"""``closedloop report``: the closed-loop report as one HTML file, or CSV / JSON exports.

Reads the ledger and, when there is one, closedloop.yaml (the ``analytics:`` section, the
attribution settings and the pipelines' mappings, for SLA targets and stage translations).
Without a config the report still runs, with no SLA targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from sync.cli.as_of import as_of_help, parse_as_of

if TYPE_CHECKING:
    from sync.report.build import ReportFormat

__all__ = ["load_optional_config", "open_report_ledger", "report_command"]

_DEFAULT_OUT = {"html": "report.html", "json": "report.json", "csv": "report-csv"}


def load_optional_config(explicit: Path | None) -> Any:
    """The config at ``--config`` (must exist), else ./closedloop.yaml or $CLOSEDLOOP_CONFIG if
    present, else None."""
    from connectors.errors import ConfigError
    from sync.config import config_path, load_config

    path = config_path(explicit)
    if not path.is_file():
        if explicit is not None:
            raise ConfigError(f"config file not found: {explicit}")
        return None
    return load_config(path)


def open_report_ledger(config: Any, database_url: str | None) -> Any:
    """The ledger engine: --database-url, else the config's, else the default."""
    from sync.ledger import default_database_url, open_ledger

    config_url = config.database_url() if config is not None else None
    return open_ledger(database_url or config_url or default_database_url())


def report_command(
    *,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            help="all, 2026, 2026-Q3, 2026-10, last-90d or 2026-07-01..2026-09-30 "
            "(default: analytics.period in the config, else all).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write (default report.html, report.json, or the folder report-csv).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="html (one self-contained file), csv or json.")
    ] = "html",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="closedloop.yaml (default: ./closedloop.yaml if present)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Ledger URL (default: config, env, ./closedloop.db)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help=as_of_help(), show_default=False),
    ] = None,
) -> None:
    """Write the closed-loop report: funnel, SLA, recycling, reasons, pipeline, ROI, attribution.

    With --as-of the report reads the ledger as it stood at that moment: open SLA clocks, open
    deals and relative periods (last-90d) are measured then, and later changes are left out."""
    from connectors.errors import ConfigError
    from sync.analytics.periods import parse_period
    from sync.report import write_report

    if fmt not in _DEFAULT_OUT:
        raise ConfigError(f"--format must be html, csv or json, not {fmt!r}")
    if period is not None:
        try:
            parse_period(period)
        except ValueError as exc:
            raise ConfigError(f"--period: {exc}") from None
    moment = parse_as_of(as_of) if as_of is not None else None
    loaded = load_optional_config(config)
    engine = open_report_ledger(loaded, database_url)
    try:
        target = out if out is not None else Path(_DEFAULT_OUT[fmt])
        chosen = cast("ReportFormat", fmt)
        written = write_report(engine, loaded, target, period=period, fmt=chosen, now=moment)
    finally:
        engine.dispose()
    typer.echo(f"wrote {written}")
