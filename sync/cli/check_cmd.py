"""``closedloop check <crm>``: live checks of a configured CRM connection, each with its remedy.

``check salesforce`` logs in with the connection's credentials and verifies the API version,
access to the objects closedloop reads and writes, the Task external-id field (type and flags)
and the share of the daily API allocation left. ``check hubspot [--fix]`` verifies the token,
scopes and the custom properties closedloop writes (``--fix`` creates them, the touch key with
unique values). With write-backs configured (``sync.writeback``) both also check what those
write: Campaign Influence access and the SLA flag fields on Lead and Contact (Salesforce, with
the exact field to create), the deal and contact properties (HubSpot, created by ``--fix``).
Both then check every mapping file of the pipelines into or from the connection against the org's
own schema, read now (describe / the properties API) and cached in the ledger for ``sync`` and
``mappings validate`` (``sync.crm_schema``).
Every failure is printed with what to do about it, and the command exits 1 when anything failed
(2 for a bad config file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from connectors.base import CheckResult
from connectors.errors import ClosedloopError, ConfigError
from connectors.hubspot.check import (
    PropertySpec,
    check_event_sinks,
    check_properties,
    writeback_properties,
)
from sync.config import CONFIG_ENV, Config, config_path, load_config

__all__ = ["app", "pick_connection", "print_results"]

app = typer.Typer(help="Check a CRM connection against the live org.", no_args_is_help=True)

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
        results = connector.check(campaign_members=_syncs_campaign_members(loaded, name))
        results = _with_budget(loaded, name, connector, results)
        results += _salesforce_writeback_checks(loaded, connector)
        results += _owner_checks(loaded, name, connector, results)
        results += _mapping_checks(loaded, name, connector, results)
    except ClosedloopError as exc:  # check() reports; anything left is a failure to print
        results = [CheckResult("salesforce", False, str(exc), "see the message")]
    finally:
        connector.close()
    if not print_results(f"salesforce connection {name!r}", results):
        raise typer.Exit(1)


def _mappings_into(config: Config, sink: str) -> Iterator[Any]:
    """The compiled mappings of the pipelines into ``sink``; unreadable ones are skipped (they
    are `mappings validate`'s job)."""
    from sync.mapping import UNCHECKED, load_mapping

    for pipeline in config.pipelines.values():
        if pipeline.sink != sink or pipeline.mapping is None:
            continue
        try:
            yield load_mapping(pipeline.mapping, UNCHECKED)  # structure only: see _mapping_checks
        except ClosedloopError:
            continue


# Checks whose failure means the org could not be reached at all.
_REACH = frozenset({"credentials", "connection", "api version", "hubspot.token"})


def _with_budget(
    config: Config, name: str, connector: Any, done: list[CheckResult]
) -> list[CheckResult]:
    """``done`` with the connection's daily budget (``sync.budgets``) in place of the
    connector's own "api budget" line: the cap, calls used today and the forecast to the end
    of the vendor's day. Failed when the cap leaves no call or is already reached."""
    from sync.budgets import forecast, has_daily_allocation
    from sync.cli.schema_cmd import open_config_ledger

    if any(r.name in _REACH and not r.ok for r in done) or not has_daily_allocation(config, name):
        return done
    engine = open_config_ledger(config)
    try:
        fc = forecast(config, engine, name, connector=connector)
    finally:
        engine.dispose()
    budget = config.budget(name)
    rule = (
        f"daily_share {budget.daily_share:g} of the allocation, less reserve_calls "
        f"{budget.reserve_calls:,}"
    )
    if fc.cap is not None and fc.cap <= 0:
        result = CheckResult(
            "api budget", False, f"{fc.describe()} ({rule})",
            f"raise budgets.{name}.daily_share or lower reserve_calls: no call can run",
        )  # fmt: skip
    elif fc.reached:
        result = CheckResult(
            "api budget", False, f"{fc.describe()} ({rule})",
            "syncs through this connection stop until the budget frees up (the run says "
            f"when); raise budgets.{name}.daily_share if the org can spare more",
        )  # fmt: skip
    else:
        result = CheckResult("api budget", True, f"{fc.describe()} ({rule})")
    kept = [r for r in done if r.name != "api budget"]
    return [*kept, result]


def _mapping_checks(
    config: Config, name: str, connector: Any, done: list[CheckResult]
) -> list[CheckResult]:
    """Each mapping file of the pipelines into or from ``name``, against the org's own schema
    read now (and cached in the ledger for ``sync`` and ``mappings validate``)."""
    from sync.cli.schema_cmd import open_config_ledger
    from sync.crm_schema import OrgSchema, pipeline_crm
    from sync.mapping.validate import validate_file

    files = sorted(
        {
            Path(p.mapping)
            for p in config.pipelines.values()
            if p.mapping and pipeline_crm(p) == name
        }
    )
    if not files or any(r.name in _REACH and not r.ok for r in done):
        return []
    engine = open_config_ledger(config)
    org = OrgSchema(
        engine, name, config.connections[name].type, lambda: connector,
        refresh=True, owns_connector=False,
    )  # fmt: skip
    results = []
    try:
        for path in files:
            try:
                report = validate_file(path, org)
            except ClosedloopError as exc:
                results.append(
                    CheckResult(f"mapping {path.name}", False, str(exc), "see the message")
                )
                continue
            checked = f"checked {report.checked}" if report.checked else ""
            if report.ok:
                results.append(CheckResult(f"mapping {path.name}", True, checked))
                continue
            problems = "\n".join(str(issue) for issue in report.issues)
            results.append(
                CheckResult(
                    f"mapping {path.name}",
                    False,
                    f"{len(report.issues)} problem(s), {checked}:\n{problems}",
                    f"fix {path} where shown (`closedloop mappings validate {path}` lists them)",
                )
            )
    finally:
        engine.dispose()
    return results


def _owner_checks(
    config: Config, sink: str, connector: Any, done: list[CheckResult]
) -> list[CheckResult]:
    """The owners the mappings into ``sink`` give created people (people.owner: the rule, User,
    queue or HubSpot owner exists) and their opt-out subscription types (HubSpot)."""
    if any(r.name in _REACH and not r.ok for r in done):
        return []
    results: list[CheckResult] = []
    seen: set[tuple[str, str]] = set()
    for mapping in _mappings_into(config, sink):
        owner = mapping.owner
        if owner is not None:
            kind, value = next((k, v) for k, v in owner.model_dump().items() if v is not None)
            check_owner = getattr(connector, "check_owner", None)
            if check_owner is not None and (kind, value) not in seen:
                seen.add((kind, value))
                results.append(check_owner(kind, value))
        check_opt_out = getattr(connector, "check_opt_out", None)
        opt_out = mapping.opt_out
        key = ("opt_out", opt_out.subscription if opt_out is not None else "")
        if opt_out is not None and check_opt_out is not None and key not in seen:
            seen.add(key)
            results.append(check_opt_out(opt_out.subscription))
    return results


def _syncs_campaign_members(config: Config, sink: str) -> bool:
    """Whether a pipeline into ``sink`` has campaign members enabled (so the check covers
    CampaignMember writes)."""
    return any(m.campaign_members is not None for m in _mappings_into(config, sink))


def _salesforce_writeback_checks(config: Config, connector: Any) -> list[CheckResult]:
    """The fields and objects the enabled write-backs (``sync.writeback``) need."""
    from connectors.salesforce.flags import check_flag_fields
    from connectors.salesforce.influence import check_influence

    results: list[CheckResult] = []
    attribution = config.attribution.writeback
    if attribution is not None and attribution.enabled:
        results.append(check_influence(connector.client, attribution.influence_model_id))
    sla = config.analytics.writeback
    if sla is not None and sla.enabled:
        results.extend(check_flag_fields(connector.client, sla.field, sla.time_field))
    return results


def _hubspot_writeback_properties(config: Config) -> dict[str, dict[str, PropertySpec]]:
    """The deal and contact properties the enabled write-backs write."""
    attribution = config.attribution.writeback
    sla = config.analytics.writeback
    if attribution is not None and not attribution.enabled:
        attribution = None
    if sla is not None and not sla.enabled:
        sla = None
    return writeback_properties(
        summary=attribution.summary_property if attribution else None,
        top_campaign=attribution.top_campaign_property if attribution else None,
        flag=sla.property if sla else None,
        flag_time=sla.time_property if sla else None,
    )


def _hubspot_event_targets(config: Config, sink: str) -> dict[str, set[str]]:
    """The timeline / behavioral event targets of the mappings of pipelines into ``sink``."""
    found: dict[str, set[str]] = {}
    for mapping in _mappings_into(config, sink):
        for target, names in mapping.event_targets.items():
            found.setdefault(target, set()).update(names)
    return found


@app.command("hubspot")
def hubspot(
    config: ConfigOption = None,
    connection: ConnectionOption = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Create the missing custom properties (the touch key on each engagement type).",
        ),
    ] = False,
) -> None:
    """Check the token, scopes and closedloop's custom properties; --fix creates them."""
    loaded = load_config(config_path(config))
    name = pick_connection(loaded, "hubspot", connection)
    connector = loaded.connections[name].build()
    try:
        results = connector.check_and_fix() if fix else connector.check()
        results = _with_budget(loaded, name, connector, results)
        extra = _hubspot_writeback_properties(loaded)
        if extra and all(r.ok for r in results if r.name == "hubspot.token"):
            results += check_properties(connector.client, extra, fix=fix)
        results += check_event_sinks(connector.client, _hubspot_event_targets(loaded, name))
        results += _owner_checks(loaded, name, connector, results)
        results += _mapping_checks(loaded, name, connector, results)
    except ClosedloopError as exc:  # check() reports; anything left is a failure to print
        results = [CheckResult("hubspot", False, str(exc), "see the message")]
    finally:
        connector.close()
    if not print_results(f"hubspot connection {name!r}", results):
        raise typer.Exit(1)
