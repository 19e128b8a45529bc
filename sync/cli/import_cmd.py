"""``closedloop import FILE --source NAME``: load a CSV / JSONL list into the ledger as touches.

The column mapping comes from the ``files`` connection NAME in ``closedloop.yaml`` (``--config``,
``$CLOSEDLOOP_CONFIG`` or ./closedloop.yaml), or, when mapping options are given, from those
options (NAME is then the touches' source). Rows are stored in batches; bad rows become dead
letters of pipeline ``import:<NAME>`` and are listed with their line numbers. Importing the same
file again stores nothing new. New touches wake the source's pipelines in a running ``closedloop
serve`` at once (``sync.wakeups``), instead of at their next tick. Exit code 0 whenever the file
was processed, even with rejects; an unreadable file or a bad mapping stops with a message and a
non-zero code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from connectors.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from sqlalchemy import Engine

    from connectors.base import Touch
    from connectors.files import FilesSettings, Reject

__all__ = ["BATCH_SIZE", "ImportReport", "import_command", "import_file", "settings_from_options"]

BATCH_SIZE = 1000
SHOWN_REJECTS = 10
_OPTION_NAMES = {
    "columns.email": "--email-column",
    "columns.occurred_at": "--occurred-at-column",
    "columns.kind": "--kind-column",
    "columns.campaign": "--campaign-column",
    "columns.asset": "--asset-column",
    "columns.source_id": "--id-column",
    "columns.first_name": "--first-name-column",
    "columns.last_name": "--last-name-column",
    "columns.company": "--company-column",
    "columns.title": "--title-column",
    "columns.phone": "--phone-column",
    "columns.country": "--country-column",
    "kind": "--kind",
    "occurred_at": "--occurred-at",
    "campaign": "--campaign",
    "timezone": "--timezone",
    "delimiter": "--delimiter",
    "encoding": "--encoding",
    "format": "--format",
}


@dataclass
class ImportReport:
    """What an import did: rows read, new touches, touches already known, rejects."""

    source: str
    read: int = 0
    imported: int = 0
    known: int = 0
    rejected: int = 0
    dead_letters: int = 0
    first_rejects: list[Reject] = field(default_factory=list)

    @property
    def pipeline(self) -> str:
        """The dead-letter pipeline name of this source's imports."""
        return f"import:{self.source}"


def import_file(
    engine: Engine,
    path: Path,
    source: str,
    settings: FilesSettings,
    *,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> ImportReport:
    """Read ``path`` and store its touches and rejects batch by batch (one transaction each)."""
    from connectors.files import read_file

    records = read_file(path, source, settings, now=now)
    return store_records(engine, records, source, batch_size=batch_size)


def store_records(
    engine: Engine, records: Iterable[Touch | Reject], source: str, *, batch_size: int = BATCH_SIZE
) -> ImportReport:
    """Store a stream of touches and rejects in batches; returns the counts."""
    from connectors.base import Touch
    from sync.ingest import insert_rejects, insert_touches
    from sync.wakeups import raise_generation

    report = ImportReport(source)
    iterator = iter(records)
    while batch := list(islice(iterator, batch_size)):
        touches = [r for r in batch if isinstance(r, Touch)]
        rejects = [r for r in batch if not isinstance(r, Touch)]
        with engine.begin() as conn:
            result = insert_touches(conn, touches)
            report.dead_letters += insert_rejects(conn, report.pipeline, "pull", rejects)
            if result.inserted:  # with the touches: a running serve delivers them at once
                raise_generation(conn, [source])
        report.read += len(batch)
        report.imported += result.inserted
        report.known += result.duplicates
        report.rejected += len(rejects)
        room = SHOWN_REJECTS - len(report.first_rejects)
        report.first_rejects.extend(rejects[:room])
    return report


def settings_from_options(options: dict[str, Any]) -> FilesSettings:
    """FilesSettings from command-line options; a bad combination is a ConfigError naming them."""
    from connectors.files import FilesSettings

    data: dict[str, Any] = {"columns": {}}
    for key, value in options.items():
        if value is None or value == []:
            continue
        if key.startswith("columns."):
            data["columns"][key.removeprefix("columns.")] = value
        else:
            data[key] = value
    try:
        return FilesSettings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            option = _OPTION_NAMES.get(where, where or "mapping")
            problems.append(f"{option}: {error['msg']}".replace("Value error, ", ""))
        problems.append(
            "give the mapping as options (--email-column, --occurred-at-column or --occurred-at,"
            " --kind-column or --kind, ...) or as a files connection in closedloop.yaml (--config)"
        )
        raise ConfigError("bad column mapping:\n  " + "\n  ".join(problems)) from None


def _settings_from_config(config_file: Path, source: str) -> tuple[FilesSettings, str | None]:
    from connectors.files import FilesSettings
    from sync.config import load_config

    config = load_config(config_file)
    connection = config.connections.get(source)
    if connection is None:
        files = sorted(n for n, c in config.connections.items() if c.type == "files")
        known = ", ".join(files) or "none"
        raise ConfigError(
            f"{config_file} has no connection named {source!r} (files connections: {known}); "
            "add one of type files, or give the column mapping as options (--email-column ...)"
        )
    if not isinstance(connection.settings, FilesSettings):
        raise ConfigError(
            f"connection {source!r} in {config_file} is of type {connection.type!r}; "
            "closedloop import needs a connection of type files"
        )
    return connection.settings, config.database_url()


def _first_checked(records: Iterator[Touch | Reject]) -> Iterator[Touch | Reject]:
    """Pull the first record now, so a bad file or header fails before the ledger is opened."""
    first = next(records, None)
    return records if first is None else chain([first], records)


Opt = typer.Option


def import_command(
    file: Annotated[
        Path, typer.Argument(help="The CSV or JSONL file to import.", show_default=False)
    ],
    *,
    source: Annotated[
        str,
        Opt(
            "--source", help="A files connection in the config, or the source name of the touches."
        ),
    ],
    fmt: Annotated[
        str | None, Opt("--format", help="csv or jsonl (default: from the suffix).")
    ] = None,
    config: Annotated[
        Path | None, Opt("--config", help="closedloop.yaml holding the files connection.")
    ] = None,
    database_url: Annotated[
        str | None,
        Opt("--database-url", help="Ledger URL (default: config, env, ./closedloop.db)."),
    ] = None,
    email_column: Annotated[str | None, Opt(help="Column with the email address.")] = None,
    occurred_at_column: Annotated[
        str | None, Opt(help="Column with the time of the touch.")
    ] = None,
    occurred_at: Annotated[
        str | None, Opt(help="One time for every row, e.g. 2024-05-14T09:00:00+02:00.")
    ] = None,
    kind_column: Annotated[str | None, Opt(help="Column with the touch kind.")] = None,
    kind: Annotated[str | None, Opt(help="One kind for every row (default list_import).")] = None,
    campaign_column: Annotated[str | None, Opt(help="Column with the campaign.")] = None,
    campaign: Annotated[str | None, Opt(help="One campaign for every row.")] = None,
    asset_column: Annotated[str | None, Opt(help="Column with the asset.")] = None,
    id_column: Annotated[
        str | None, Opt(help="Column with a unique row id (default: a hash of the row's identity).")
    ] = None,
    date_format: Annotated[
        list[str] | None, Opt(help="strptime format of dates; repeat to try several (default ISO).")
    ] = None,
    timezone: Annotated[
        str | None, Opt(help="Time zone of dates without one (default UTC).")
    ] = None,
    first_name_column: Annotated[
        str | None, Opt(help="Column with the first name (default: a 'First Name' header).")
    ] = None,
    last_name_column: Annotated[
        str | None, Opt(help="Column with the last name (default: a 'Last Name' header).")
    ] = None,
    company_column: Annotated[
        str | None, Opt(help="Column with the company (default: a 'Company' header).")
    ] = None,
    title_column: Annotated[
        str | None, Opt(help="Column with the job title (default: a 'Title' header).")
    ] = None,
    phone_column: Annotated[
        str | None, Opt(help="Column with the phone number (default: a 'Phone' header).")
    ] = None,
    country_column: Annotated[
        str | None, Opt(help="Column with the country (default: a 'Country' header).")
    ] = None,
    delimiter: Annotated[
        str | None,
        Opt(help="CSV delimiter, e.g. ';' or tab (default: found from the header line)."),
    ] = None,
    encoding: Annotated[
        str | None,
        Opt(
            help="The file's encoding, e.g. cp1252 for Excel's CSV on Windows (default: found "
            "from a byte-order mark or the bytes)."
        ),
    ] = None,
) -> None:
    """Import a CSV or JSONL list (badge scans, webinar attendees) as touches."""
    from rich.console import Console

    from connectors.files import csv_layout, detect_format, read_file
    from sync.ledger import default_database_url, open_ledger

    options: dict[str, Any] = {
        "columns.email": email_column,
        "columns.occurred_at": occurred_at_column,
        "columns.kind": kind_column,
        "columns.campaign": campaign_column,
        "columns.asset": asset_column,
        "columns.source_id": id_column,
        "columns.first_name": first_name_column,
        "columns.last_name": last_name_column,
        "columns.company": company_column,
        "columns.title": title_column,
        "columns.phone": phone_column,
        "columns.country": country_column,
        "occurred_at": occurred_at,
        "kind": kind,
        "campaign": campaign,
        "date_formats": date_format,
        "timezone": timezone,
    }
    given = {k: v for k, v in options.items() if v not in (None, [])}
    config_url: str | None = None
    config_file = config if config is not None else _default_config(given)
    if config_file is not None:
        if given:
            names = ", ".join(_OPTION_NAMES.get(k, "--" + k.replace("_", "-")) for k in given)
            raise ConfigError(
                f"the mapping comes from {config_file}; drop {names} or drop --config"
            )
        settings, config_url = _settings_from_config(config_file, source)
    else:
        settings = settings_from_options(options)
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise ConfigError(f"--format must be csv or jsonl, not {fmt!r}")
        settings = settings.model_copy(update={"format": fmt})
    # How the file is read (not what its columns mean): given over the config's too.
    reading = {"delimiter": _delimiter(delimiter), "encoding": encoding}
    if any(v is not None for v in reading.values()):
        given_reading = {k: v for k, v in reading.items() if v is not None}
        settings = _validated(settings.model_dump() | given_reading)
    if not file.is_file():
        raise ConfigError(f"cannot read {file}: no such file")
    layout = None
    if detect_format(file, settings.format) == "csv":
        layout = csv_layout(file, settings)
    records = _first_checked(read_file(file, source, settings))
    engine = open_ledger(database_url or config_url or default_database_url())
    try:
        report = store_records(engine, records, source)
    finally:
        engine.dispose()
    console = Console(highlight=False)
    if layout is not None:
        from rich.markup import escape

        console.print(escape(f"{file.name}: {layout.describe(settings)}"), soft_wrap=True)
    _print_report(console, file, report)


def _delimiter(value: str | None) -> str | None:
    """``--delimiter``: one character; ``tab`` (or a backslash and t) names the tab."""
    if value is None:
        return None
    return "\t" if value.lower() in ("tab", "\\t") else value


def _validated(data: dict[str, Any]) -> FilesSettings:
    from connectors.files import FilesSettings

    try:
        return FilesSettings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            option = _OPTION_NAMES.get(where, where or "mapping")
            problems.append(f"{option}: {error['msg']}".replace("Value error, ", ""))
        raise ConfigError("bad file settings:\n  " + "\n  ".join(problems)) from None


def _default_config(given: dict[str, Any]) -> Path | None:
    """./closedloop.yaml (or $CLOSEDLOOP_CONFIG) when no mapping options were given."""
    if given:
        return None
    from sync.config import config_path

    path = config_path()
    return path if path.is_file() else None


def _print_report(console: Any, file: Path, report: ImportReport) -> None:
    from rich.markup import escape

    console.print(f"{escape(file.name)} -> source {escape(report.source)!r}")
    console.print(f"  rows read       {report.read:>9,}")
    console.print(f"  imported        {report.imported:>9,}")
    console.print(f"  already known   {report.known:>9,}")
    console.print(f"  rejected        {report.rejected:>9,}")
    if report.rejected:
        console.print(
            f"rejected rows are dead letters of pipeline {escape(report.pipeline)!r}"
            f" ({report.dead_letters:,} new); the first ones:"
        )
        for reject in report.first_rejects:
            console.print(f"  {escape(reject.reason)}")
