"""``closedloop attribution``: run the attribution models over the ledger and show the results.

``run`` stores a versioned run per CRM (``--model M`` repeated, or ``--all``); parameters come
from the ``attribution:`` section of closedloop.yaml when a config is found. ``show`` prints the
credited amounts of a run by campaign (with sourced and influenced amounts), channel or model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from connectors.errors import ConfigError
from sync.cli.as_of import as_of_help, parse_as_of
from sync.cli.output import FormatOption, check_format, print_records, to_json

app = typer.Typer(help="Attribute pipeline and revenue to campaigns.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="closedloop.yaml (default: $CLOSEDLOOP_CONFIG, ./closedloop.yaml)."
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Ledger URL (default: config, env, ./closedloop.db)."),
]


def _settings(config: Path | None, database_url: str | None) -> tuple[Any, str]:
    """The attribution parameters and the ledger URL, from the config when there is one."""
    from sync.attribution.settings import AttributionConfig
    from sync.config import config_path, load_config
    from sync.ledger import default_database_url

    path = config_path(config)
    if config is not None or path.is_file():
        loaded = load_config(path)
        return loaded.attribution.params(), database_url or loaded.database_url() or (
            default_database_url()
        )
    return AttributionConfig().params(), database_url or default_database_url()


@app.command("run")
def run_command(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="A model to run (repeatable): first_touch, "
            "lead_creation, last_touch, linear, u_shaped, w_shaped, full_path, "
            "time_decay, custom.",
        ),
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Run every model.")] = False,
    crm: Annotated[
        str | None, typer.Option("--crm", help="The CRM connection (default: every one).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help=as_of_help("the end of today (the next UTC midnight)"),
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Store a new run even if the inputs are unchanged.")
    ] = False,
    config: ConfigOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Attribute every opportunity and store a versioned, reproducible run.

    --as-of ends the window of open opportunities: their touches up to it count."""
    from rich.console import Console

    from sync.attribution.ledger import crms_with_opportunities, run_attribution
    from sync.attribution.models import Model
    from sync.ledger import ledger_session, open_ledger

    if all_models == bool(model):
        raise typer.BadParameter("give --model M (repeatable) or --all", param_hint="--model")
    moment = parse_as_of(as_of) if as_of is not None else None
    params, url = _settings(config, database_url)
    known = [m.value for m in Model]
    if all_models:
        names = known if params.custom is not None else [m for m in known if m != "custom"]
    else:
        names = list(dict.fromkeys(model or []))
        unknown = [m for m in names if m not in known]
        if unknown:
            raise typer.BadParameter(
                f"unknown model {', '.join(unknown)}; choose from {', '.join(known)}",
                param_hint="--model",
            )
    console = Console(highlight=False)
    engine = open_ledger(url)
    try:
        with ledger_session(engine) as session:
            crms = [crm] if crm else crms_with_opportunities(session)
            if not crms:
                console.print("no opportunities in the ledger yet: nothing to attribute")
                return
            for name in crms:
                report = run_attribution(session, name, names, params, as_of=moment, force=force)
                counts = report.counts
                state = "unchanged, same as" if report.reused else "stored as"
                console.print(
                    f"{name}: {state} run {report.run_id} ({', '.join(names)}): "
                    f"{counts.get('opportunities', 0)} opportunities, "
                    f"{counts.get('credits', 0)} credits, "
                    f"{counts.get('unlinked_touches', 0)} touches of unknown people; "
                    f"scope {params.scope}; fingerprint {report.fingerprint[:12]}"
                )
    finally:
        engine.dispose()


@app.command("show")
def show_command(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
    by: Annotated[str, typer.Option("--by", help="campaign, channel or model.")] = "campaign",
    run: Annotated[
        int | None, typer.Option("--run", help="The run to show (default: the newest).")
    ] = None,
    crm: Annotated[str | None, typer.Option("--crm", help="The newest run of this CRM.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Only these models' columns (repeatable)."),
    ] = None,
    config: ConfigOption = None,
    database_url: DatabaseUrl = None,
    fmt: FormatOption = "table",
) -> None:
    """Show a stored run's credited amounts by campaign, channel or model."""
    from rich.console import Console
    from rich.table import Table

    from sync.attribution.ledger import latest_run, summarize
    from sync.ledger import ledger_session, open_ledger
    from sync.ledger.models import AttributionRunRow

    if by not in ("campaign", "channel", "model"):
        raise typer.BadParameter("choose campaign, channel or model", param_hint="--by")
    check_format(fmt)
    _, url = _settings(config, database_url)
    console = Console(highlight=False)
    engine = open_ledger(url)
    try:
        with ledger_session(engine) as session:
            chosen = session.get(AttributionRunRow, run) if run else latest_run(session, crm)
            if chosen is None or chosen.id is None:
                raise ConfigError(
                    f"no attribution run {run}"
                    if run
                    else "no attribution run yet: run `closedloop attribution run --all` first"
                )
            rows = summarize(session, chosen.id, by)
            models = [m for m in chosen.models if not model or m in model]
            if by == "model":
                rows = [r for r in rows if r["model"] in models]
    finally:
        engine.dispose()
    scope = (chosen.params or {}).get("scope", "contact_roles")
    if by == "model":
        columns = ["model", "attributed", "unattributed", "amount"]
    else:
        columns = [by, *models] + (["sourced", "influenced"] if by == "campaign" else [])
    if fmt == "json":  # the run it is of, and its rows
        run_of = {
            "id": chosen.id, "crm": chosen.crm, "as_of": chosen.as_of, "by": by, "scope": scope,
        }  # fmt: skip
        typer.echo(to_json({"run": run_of, "rows": [{c: r[c] for c in columns} for r in rows]}))
        return
    if fmt == "csv":
        print_records(fmt, rows, columns)
        return
    table = Table(
        title=f"run {chosen.id} ({chosen.crm}, as of {chosen.as_of:%Y-%m-%d %H:%M} UTC, "
        f"scope {scope})"
    )
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right")
    # Wide enough for every column: a report is better wrapped by the pager than truncated.
    console.width = max(console.width, 16 * len(columns))
    for row in rows:
        table.add_row(*(f"{row[c]:,}" if number else str(row[c])
                        for number, c in enumerate(columns)))  # fmt: skip
    console.print(table)


def load_required_config(config: Path | None) -> Any:
    """The config (write-backs need its connections); ConfigError naming the file when absent."""
    from sync.config import config_path, load_config

    path = config_path(config)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path} (write-back needs the CRM connections; give --config)"
        )
    return load_config(path)


def writeback_crms(loaded: Any, crm: str | None, kinds: tuple[str, ...]) -> list[str]:
    """``crm`` (checked), else every connection of one of ``kinds``."""
    if crm is not None:
        conn = loaded.connections.get(crm)
        if conn is None or conn.type not in kinds:
            known = sorted(n for n, c in loaded.connections.items() if c.type in kinds)
            raise ConfigError(
                f"--crm {crm!r}: no {' or '.join(kinds)} connection of that name "
                f"(found: {', '.join(known) or 'none'})"
            )
        return [crm]
    return sorted(n for n, c in loaded.connections.items() if c.type in kinds)


def print_writeback(reports: list[Any]) -> None:
    """Each write-back's line, its notes and its first refusals."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    for report in reports:
        console.print(report.line())
        for note in report.notes:
            console.print(f"  {note}")
        for refused in report.rejected[:5]:
            console.print(f"  refused {refused.key}: {refused.code}: {refused}")
        if report.rejected:
            more = len(report.rejected) - 5
            tail = f" ({more} more)" if more > 0 else ""
            console.print(f"  refused records are dead letters{tail}: closedloop dead-letters list")


@app.command("writeback")
def writeback_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="The model to write (default: attribution.writeback.model)."
        ),
    ] = None,
    crm: Annotated[
        str | None,
        typer.Option(
            "--crm", help="The CRM connection (default: every Salesforce and HubSpot one)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read the CRM and say what would change; write nothing."),
    ] = False,
    config: ConfigOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the latest run to the CRM: Salesforce Campaign Influence, HubSpot deal properties."""
    from sync.attribution.models import Model
    from sync.ledger import default_database_url, ledger_session, open_ledger
    from sync.writeback.attribution import (
        attribution_settings,
        latest_run_of,
        writeback_attribution,
    )

    loaded = load_required_config(config)
    settings = attribution_settings(loaded)
    chosen = model or settings.model
    if chosen not in [m.value for m in Model]:
        raise typer.BadParameter(
            f"unknown model {chosen}; choose from {', '.join(m.value for m in Model)}",
            param_hint="--model",
        )
    names = writeback_crms(loaded, crm, ("salesforce", "hubspot"))
    engine = open_ledger(database_url or loaded.database_url() or default_database_url())
    reports = []
    try:
        if crm is None:  # every CRM that has a run of the model
            with ledger_session(engine) as session:
                names = [n for n in names if latest_run_of(session, n, chosen) is not None]
            if not names:
                raise ConfigError(
                    f"no attribution run of model {chosen} for a Salesforce or HubSpot "
                    f"connection yet: run `closedloop attribution run --model {chosen}` first"
                )
        for name in names:
            connector = loaded.connections[name].build()
            try:
                reports.append(
                    writeback_attribution(
                        engine, loaded, connector, crm=name, model=chosen, dry_run=dry_run
                    )
                )
            finally:
                connector.close()
    finally:
        engine.dispose()
    print_writeback(reports)
