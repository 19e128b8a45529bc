"""``closedloop mappings``: validate, preview, migrate mapping files and write their JSON Schema.

``validate`` and ``preview`` check CRM objects, fields and values against the connected org's
own schema: the connection of closedloop.yaml the file belongs to (``--connection`` to choose),
read once and cached in the ledger (``sync.crm_schema``; ``closedloop schema refresh``).
``--offline`` checks against the sandbox's schema instead, and every line says so.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connectors.errors import ConfigError, MappingError
from sync.config import CONFIG_ENV

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sync.mapping.catalogue import SchemaSource

app = typer.Typer(
    help="Check and preview the YAML field mappings before anything syncs.", no_args_is_help=True
)

DEFAULT_DIR = Path("mappings")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"The config naming the CRM connections (default: ${CONFIG_ENV} or "
        "./closedloop.yaml).",
        show_default=False,
    ),
]
ConnectionOption = Annotated[
    str | None,
    typer.Option(
        "--connection",
        help="Check against this CRM connection's org (default: the file's pipeline's, or the "
        "only one of the mapping's CRM).",
        show_default=False,
    ),
]
OfflineOption = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Check against the sandbox's schema instead of your org's (no connection needed).",
    ),
]


@contextmanager
def schema_sources(
    config: Path | None, connection: str | None, *, offline: bool, refresh: bool = False
) -> Iterator[Callable[[Path], SchemaSource]]:
    """file -> the schema it is checked against: its org's (cached in the ledger), or offline."""
    if offline:
        from sync.mapping.catalogue import offline_catalogue

        catalogue = offline_catalogue()
        yield lambda _path: catalogue
        return
    from sync.cli.schema_cmd import open_config_ledger
    from sync.config import config_path, load_config
    from sync.crm_schema import ConfiguredSchema

    path = config_path(config)
    if not path.exists():
        raise ConfigError(
            f"mappings are checked against your CRM's own schema, read through its connection in "
            f"closedloop.yaml, and {path} does not exist: give --config FILE (or set "
            f"{CONFIG_ENV}), or check against the sandbox's schema instead with --offline"
        )
    loaded = load_config(path)
    engine = open_config_ledger(loaded)
    source = ConfiguredSchema(loaded, engine, connection=connection, refresh=refresh)
    try:
        yield source.for_file
    finally:
        source.close()
        engine.dispose()


def _mapping_files(files: list[Path]) -> list[Path]:
    if files:
        return files
    if not DEFAULT_DIR.is_dir():
        raise ConfigError(f"no files given and no {DEFAULT_DIR}/ folder here")
    found = sorted(p for p in DEFAULT_DIR.iterdir() if p.suffix in (".yaml", ".yml"))
    if not found:
        raise ConfigError(f"no mapping files (*.yaml) in {DEFAULT_DIR}/")
    return found


@app.command("validate")
def validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Mapping files (default: every mappings/*.yaml).")
    ] = None,
    config: ConfigOption = None,
    connection: ConnectionOption = None,
    offline: OfflineOption = False,
) -> None:
    """Check mapping files against your CRM org's own schema; print every problem at
    file:line:col and exit 2 if there is any."""
    from sync.cli.schema_cmd import validate_files

    paths = _mapping_files(files or [])
    with schema_sources(config, connection, offline=offline) as schema_for:
        reports = validate_files(paths, schema_for)
    failed = sum(1 for r in reports if not r.ok)
    if failed:
        typer.echo(f"{failed} file(s) with errors", err=True)
        raise typer.Exit(2)


@app.command("schema")
def schema(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the JSON Schema.")
    ] = DEFAULT_DIR / "closedloop-mapping.schema.json",
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the file differs instead of writing it.")
    ] = False,
) -> None:
    """Write the JSON Schema of mapping files (editors use it through the modeline)."""
    from sync.mapping.model import json_schema_text

    text = json_schema_text()
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            typer.echo(f"{output} is out of date: run `closedloop mappings schema`", err=True)
            raise typer.Exit(1)
        typer.echo(f"OK {output}")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


@app.command("migrate")
def migrate(
    file: Annotated[Path, typer.Argument(help="A mapping file in an older schema version.")],
    write: Annotated[
        bool, typer.Option("--write", help="Replace the file (comments are not kept).")
    ] = False,
) -> None:
    """Upgrade a mapping file to the current schema version (prints it unless --write)."""
    from sync.mapping.migrate import detect_version, dump_mapping
    from sync.mapping.migrate import migrate as upgrade
    from sync.mapping.model import CURRENT_SCHEMA_VERSION
    from sync.yamlfile import load_yaml

    located = load_yaml(file)
    version = detect_version(located.data)
    if version == CURRENT_SCHEMA_VERSION:
        typer.echo(f"{file} is already schema_version {CURRENT_SCHEMA_VERSION}", err=True)
        return
    if version is None or version > CURRENT_SCHEMA_VERSION:
        raise MappingError(f"{file}: cannot tell which schema version to migrate from")
    data, notes = upgrade(located.data)
    text = dump_mapping(data)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if write:
        file.write_text(text, encoding="utf-8")
        typer.echo(f"migrated {file} to schema_version {CURRENT_SCHEMA_VERSION}", err=True)
    else:
        typer.echo(text, nl=False)


def _pipeline_mapping(pipeline: str, config: Path | None) -> Path:
    """The mapping file of ``pipeline`` in closedloop.yaml (paths relative to that file)."""
    from sync.config import config_path, load_config

    config = config_path(config)
    cfg = load_config(config)
    pipelines = getattr(cfg, "pipelines", {})
    if pipeline not in pipelines:
        from connectors.errors import did_you_mean

        raise ConfigError(
            f"{config}: no pipeline {pipeline!r}{did_you_mean(pipeline, list(pipelines))}"
        )
    mapping = getattr(pipelines[pipeline], "mapping", None)
    if not mapping:
        raise ConfigError(f"{config}: pipeline {pipeline!r} has no mapping")
    path = Path(str(mapping))
    return path if path.is_absolute() else config.parent / path


@app.command("preview")
def preview(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
    mapping: Annotated[Path | None, typer.Option("--mapping", "-m", help="A mapping file.")] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="A pipeline in closedloop.yaml.")
    ] = None,
    config: ConfigOption = None,
    sample: Annotated[
        int, typer.Option("--sample", "-n", min=1, max=10_000, help="Generated sample touches.")
    ] = 20,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Read touches from a JSONL file instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    connection: ConnectionOption = None,
    offline: OfflineOption = False,
) -> None:
    """Render sample touches into the exact CRM payloads and print the plan; writes nothing."""
    from sync.mapping.preview import build_preview, read_samples, sample_cases
    from sync.mapping.validate import validate_file

    if (mapping is None) == (pipeline is None):
        raise typer.BadParameter("give exactly one of --mapping or --pipeline")
    path = mapping if mapping is not None else _pipeline_mapping(str(pipeline), config)
    with schema_sources(config, connection, offline=offline) as schema_for:
        report = validate_file(path, schema_for(path))
    if report.model is None or report.catalogue is None or not report.ok:
        checked = f" (checked {report.checked})" if report.checked else ""
        raise MappingError(f"{path}: invalid mapping{checked}", report.issues)
    from sync.mapping.compile import compile_mapping

    compiled = compile_mapping(report.model, report.catalogue)
    typer.echo(f"{path}: checked {report.checked}", err=True)
    cases = (
        read_samples(from_file, compiled.source) if from_file else sample_cases(compiled, sample)
    )
    plan = build_preview(compiled, cases)
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        typer.echo(plan.to_text())
