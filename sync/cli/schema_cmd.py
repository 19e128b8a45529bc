"""``closedloop schema``: the CRM schemas mappings are checked against, cached in the ledger.

``refresh`` re-reads the objects of each CRM connection (or ``--connection``) from the org now:
every cached object plus the ones the config's mappings name (the standard set when there are
none), e.g. right after an admin added a custom field. ``show`` lists what is cached and how old
it is. When the cache is re-read by itself is in ``sync.crm_schema``.

``validate_files`` is the one way commands check mapping files: against the org of each file's
connection (``ConfiguredSchema``), or offline against the sandbox's schema when asked; it prints
one line per file saying what it was checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connectors.errors import ClosedloopError, ConfigError
from sync.config import CONFIG_ENV, config_path, load_config

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.config import Config
    from sync.mapping.catalogue import SchemaSource
    from sync.mapping.validate import ValidationReport

__all__ = ["app", "open_config_ledger", "print_report", "validate_files"]

app = typer.Typer(
    help="The CRM schemas mappings are checked against (cached in the ledger).",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"The config file (default: ${CONFIG_ENV} or ./closedloop.yaml).",
        show_default=False,
    ),
]
ConnectionOption = Annotated[
    str | None,
    typer.Option("--connection", help="Only this CRM connection.", show_default=False),
]


@app.callback()
def _group() -> None:
    """The CRM schemas mappings are checked against (cached in the ledger)."""


def open_config_ledger(config: Config) -> Engine:
    """The ledger of ``config`` (where the schema cache lives), migrated."""
    from sync.ledger import open_ledger

    return open_ledger(config.database_url())


def print_report(report: ValidationReport, echo: Callable[..., None] = typer.echo) -> bool:
    """``OK file (checked ...)``, or every issue and what it was checked against; True if OK."""
    checked = f" (checked {report.checked})" if report.checked else ""
    if report.ok:
        echo(f"OK {report.file}{checked}")
        return True
    for issue in report.issues:
        echo(str(issue), err=True)
    if report.checked:
        echo(f"{report.file}: CRM fields checked {report.checked}", err=True)
    return False


def validate_files(
    files: Sequence[Path], schema_for: Callable[[Path], SchemaSource]
) -> list[ValidationReport]:
    """Validate each file against the schema source ``schema_for(file)`` names, printing each;
    a file whose schema cannot be had (no connection of its CRM, org unreachable, nothing
    cached) is reported with the remedy and the others are still checked."""
    from connectors.errors import ConfigIssue
    from sync.mapping.validate import ValidationReport, validate_file

    reports = []
    for path in files:
        try:
            report = validate_file(path, schema_for(path))
        except ClosedloopError as exc:
            typer.echo(f"{path}: {exc}", err=True)
            reports.append(
                ValidationReport(str(path), [ConfigIssue(str(path), None, None, "", str(exc))])
            )
            continue
        print_report(report)
        reports.append(report)
    return reports


def _crm_connections(config: Config, only: str | None) -> list[str]:
    from connectors.registry import SINK_ROLE, sink_info

    # Sinks that declare their catalogue have nothing to read or cache.
    crms = sorted(
        n
        for n, c in config.connections.items()
        if SINK_ROLE in c.roles and not sink_info(c.type).fields
    )
    if only is None:
        return crms
    if only not in crms:
        raise ConfigError(
            f"{config.path}: no CRM connection named {only!r} (found: {', '.join(crms) or 'none'})"
        )
    return [only]


def _objects_named(config: Config, connection: str) -> list[str]:
    """The objects the config's mappings into or from ``connection`` name."""
    from sync.crm_schema import pipeline_crm
    from sync.mapping.model import MappingFile
    from sync.mapping.validate import needed_objects
    from sync.yamlfile import load_yaml

    found: dict[str, None] = {}
    for pipeline in config.pipelines.values():
        if pipeline_crm(pipeline) != connection or pipeline.mapping is None:
            continue
        try:
            model = MappingFile.model_validate(load_yaml(Path(pipeline.mapping)).data)
        except (ClosedloopError, ValueError):
            continue  # a broken file is `mappings validate`'s to report
        found.update(dict.fromkeys(needed_objects(model)))
    return list(found)


@app.command("refresh")
def refresh(config: ConfigOption = None, connection: ConnectionOption = None) -> None:
    """Re-read the CRM schema from the org now (after adding a field), and cache it."""
    from connectors.registry import sink_info
    from sync.crm_schema import OrgSchema, cached_objects

    loaded = load_config(config_path(config))
    names = _crm_connections(loaded, connection)
    if not names:
        raise ConfigError(f"{loaded.path} has no CRM connection whose schema is read from the CRM")
    engine = open_config_ledger(loaded)
    try:
        for name in names:
            conn = loaded.connections[name]
            objects = list(
                dict.fromkeys(
                    [o for o, crm, _e, _r in cached_objects(engine, name) if crm == conn.type]
                    + _objects_named(loaded, name)
                )
            ) or list(sink_info(conn.type).objects_to_read())
            org = OrgSchema(engine, name, conn.type, conn.build)
            try:
                missing = org.refresh_objects(objects)
            finally:
                org.close()
            present = [o for o in objects if o not in missing]
            typer.echo(f"read {', '.join(present) or 'nothing'} from {org.label}")
            if missing:
                typer.echo(f"{name}: the org has no {', '.join(missing)}", err=True)
    finally:
        engine.dispose()


@app.command("show")
def show(config: ConfigOption = None, connection: ConnectionOption = None) -> None:
    """List the cached CRM objects per connection and how old each is."""
    from sync.crm_schema import age_text, cached_objects
    from sync.ledger.types import utcnow

    loaded = load_config(config_path(config))
    engine = open_config_ledger(loaded)
    try:
        now = utcnow()
        for name in _crm_connections(loaded, connection):
            rows = cached_objects(engine, name)
            if not rows:
                typer.echo(f"{name}: nothing cached yet (read at the next check or sync)")
            for obj, crm, exists, read_at in rows:
                state = "" if exists else " (not in the org)"
                typer.echo(f"{name}: {crm} {obj}{state}, read {age_text(now - read_at)}")
    finally:
        engine.dispose()
