"""From ledger and configuration to a written report: the one entry point commands call.

``write_report(engine, config, out_path)`` reads the ledger (``sync.analytics.load``) as it
stood at the report's moment (``Dataset.as_of``: now, or ``--as-of``), runs attribution for the
deals won in the period, computes every metric (``sync.analytics.summary``) and writes HTML
(one self-contained file), JSON, or CSV (a folder of one file per table). The configuration
supplies the ``analytics:`` section and, from the pipelines' mapping files, each CRM's
lifecycle (to translate statuses), SLA target and reason field; a Salesforce connection adds
its ``lead_reason_fields``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from sync.analytics.credits import attributed_revenue, by_model_order, won_in_period
from sync.analytics.load import CampaignResolver, load_dataset
from sync.analytics.periods import Period, parse_period
from sync.analytics.records import Dataset
from sync.analytics.settings import AnalyticsSettings
from sync.analytics.sla import SlaTargets
from sync.analytics.summary import ReportData, build_report
from sync.ledger.types import utcnow
from sync.mapping.lifecycle import CompiledLifecycle
from sync.mapping.model import parse_duration
from sync.names import DerivedNames, derive_names

__all__ = [
    "ReportFormat",
    "ReportInputs",
    "analytics_settings",
    "report_data",
    "report_inputs",
    "with_derived_names",
    "write_report",
]

ReportFormat = Literal["html", "json", "csv"]


@dataclass(frozen=True)
class ReportInputs:
    """What the configuration contributes: analytics settings, lifecycles, SLA targets and the
    fields that carry each CRM's disqualification and recycle reasons."""

    settings: AnalyticsSettings
    lifecycles: Mapping[str, CompiledLifecycle]
    targets: SlaTargets
    reason_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def analytics_settings(config: Any) -> AnalyticsSettings:
    """The ``analytics:`` section of a loaded config (defaults when absent or no config)."""
    found = getattr(config, "analytics", None) if config is not None else None
    return found if isinstance(found, AnalyticsSettings) else AnalyticsSettings()


def _lifecycles(config: Any) -> dict[str, CompiledLifecycle]:
    """Connection name -> lifecycle, from the mapping files of the config's pipelines."""
    from sync.mapping.validate import load_lifecycle

    out: dict[str, CompiledLifecycle] = {}
    pipelines = getattr(config, "pipelines", None) or {}
    ranked = sorted(pipelines.values(), key=lambda p: p.kind != "dispositions")
    for pipeline in ranked:
        crm = pipeline.source if pipeline.kind == "dispositions" else pipeline.sink
        if pipeline.kind not in ("dispositions", "touches") or crm is None:
            continue
        if pipeline.mapping is None or crm in out:
            continue
        lifecycle = load_lifecycle(Path(pipeline.mapping))
        if lifecycle.status_field is not None:
            out[crm] = lifecycle
    return out


def report_inputs(config: Any) -> ReportInputs:
    """Settings, lifecycles and SLA targets of a config (``None``: defaults, no targets)."""
    settings = analytics_settings(config)
    lifecycles = _lifecycles(config) if config is not None else {}
    if settings.crms is not None:  # the SLA target of a CRM the report leaves out is not agreed
        lifecycles = {crm: lc for crm, lc in lifecycles.items() if crm in settings.crms}
    # Each CRM keeps its own mapping's targets per stage; analytics.sla overrides the MQL
    # target explicitly (a rep's, a team's, or the default for every CRM).
    targets = SlaTargets(
        default=parse_duration(settings.sla.default) if settings.sla.default else None,
        teams={team: parse_duration(text) for team, text in settings.sla.teams.items()},
        reps={rep: parse_duration(text) for rep, text in settings.sla.reps.items()},
        by_crm={crm: dict(lc.sla) for crm, lc in lifecycles.items() if lc.sla},
    )
    return ReportInputs(settings, lifecycles, targets, _reason_fields(config, lifecycles))


def _reason_fields(
    config: Any, lifecycles: Mapping[str, CompiledLifecycle]
) -> dict[str, tuple[str, ...]]:
    """CRM connection -> the fields that carry reasons: the mapping's ``lifecycle.reason_field``
    / ``reason_fields``, then the connection's own ``lead_reason_fields`` (Salesforce)."""
    out: dict[str, tuple[str, ...]] = {}
    connections = getattr(config, "connections", None) or {}
    for crm in sorted(set(lifecycles) | set(connections)):
        lifecycle = lifecycles.get(crm)
        connection = connections.get(crm)
        settings = getattr(connection, "settings", None)
        extra = getattr(settings, "lead_reason_fields", None) or ()
        names = list(lifecycle.reason_field_names) if lifecycle else []
        names.extend(str(name) for name in extra)
        if names:
            out[crm] = tuple(dict.fromkeys(names))
    return out


def load_for_report(engine: Engine, inputs: ReportInputs, now: datetime) -> Dataset:
    """The ledger as analytics records, with the configured campaign costs and aliases."""
    settings = inputs.settings
    return load_dataset(
        engine,
        now,
        inputs.lifecycles,
        settings.campaign_costs,
        campaign_aliases=settings.campaign_aliases,
        crms=settings.crms,
    )


def report_data(
    engine: Engine,
    config: Any,
    *,
    period: str | Period | None = None,
    now: datetime | None = None,
    title: str = "Closed-loop report",
) -> ReportData:
    """Every number of the report for ``period`` (default: ``analytics.period``, else all)."""
    now = now or utcnow()
    inputs, derived = with_derived_names(engine, report_inputs(config))
    chosen = period if period is not None else inputs.settings.period
    resolved = chosen if isinstance(chosen, Period) else parse_period(chosen, now)
    dataset = load_for_report(engine, inputs, now).as_of(now)
    resolve = CampaignResolver(dataset.campaigns.values(), inputs.settings.campaign_aliases)
    won = won_in_period(dataset.deals, resolved)
    attribution = getattr(config, "attribution", None) if config is not None else None
    params = attribution.params() if attribution is not None else None
    credits, notes = attributed_revenue(engine, won, resolve, now, params=params)
    if inputs.settings.crms is not None:
        chosen_crms = " and ".join(inputs.settings.crms)
        notes.insert(
            0,
            f"This report counts the people, deals and campaigns of {chosen_crms} only; "
            "other connected CRMs are left out."
            if chosen_crms
            else "This report is set to read no CRM, so it counts no people, deals or campaigns.",
        )
    ordered = by_model_order(credits, inputs.settings.default_model)
    data = build_report(
        dataset,
        inputs.settings,
        resolved,
        inputs.targets,
        {model: credits[model] for model in ordered},
        title=title,
        notes=notes,
        reason_fields=inputs.reason_fields,
        attribution_scope=str(params.scope) if params is not None else "contact_roles",
    )
    owners = [p.owner for p in dataset.people.values()] + [d.owner for d in dataset.deals]
    derived.count_unnamed(owners)
    return replace(data, data_quality=derived.quality())


def with_derived_names(engine: Engine, inputs: ReportInputs) -> tuple[ReportInputs, DerivedNames]:
    """``inputs`` with campaign aliases and rep names derived from the ledger (programs synced
    to or named like CRM campaigns, the CRMs' users) under the configured ones, which win."""
    settings = inputs.settings
    derived = derive_names(
        engine,
        crms=settings.crms,
        aliases=settings.campaign_aliases,
        rep_names=settings.rep_names,
    )
    effective = settings.model_copy(
        update={
            "campaign_aliases": {**derived.campaign_aliases, **settings.campaign_aliases},
            "rep_names": derived.rep_names,
        }
    )
    return replace(inputs, settings=effective), derived


def write_report(
    engine: Engine,
    config: Any,
    out_path: Path,
    *,
    period: str | Period | None = None,
    fmt: ReportFormat = "html",
    now: datetime | None = None,
) -> Path:
    """Compute the report and write it to ``out_path`` (a folder for CSV); returns the path."""
    from sync.report.export import to_json, write_csv
    from sync.report.html import render_html

    data = report_data(engine, config, period=period, now=now)
    out_path = Path(out_path)
    if fmt == "csv":
        write_csv(data, out_path)
        return out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text = to_json(data) if fmt == "json" else render_html(data)
    out_path.write_text(text, encoding="utf-8")
    return out_path
