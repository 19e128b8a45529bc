"""Attribution and SLA write-back as scheduled pipelines (``sync.pipelines.runner`` kinds).

``attribution`` (source: a CRM connection): attributes every opportunity of that CRM under every
model (the custom one when ``attribution.custom`` is set) and stores the run, reusing the last
one when its inputs are unchanged (``sync.attribution.ledger.run_attribution``); then, when
``attribution.writeback`` is configured, writes the run of its model to the CRM.

``sla-writeback`` (source: a CRM connection): sets and clears SLA breach flags on that CRM
(``sync.writeback.sla``); ``analytics.writeback`` must be configured.

Both are idempotent (a run that finds nothing new writes nothing), so the runner's usual
at-least-once retry after a crash is safe. Refused records become dead letters as the commands'
do; records another process held locked are counted as deferred and written by the next run;
the run's counts say what was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.writeback.attribution import writeback_attribution
from sync.writeback.report import WritebackReport
from sync.writeback.settings import AttributionWriteback
from sync.writeback.sla import writeback_sla

if TYPE_CHECKING:
    from sync.pipelines.context import RunContext

__all__ = ["run_attribution_pipeline", "run_sla_writeback"]


def _source(ctx: RunContext) -> str:
    source = ctx.pipeline.source
    assert source is not None, "the config validates that these kinds have a source"
    return source


def _count(ctx: RunContext, report: WritebackReport) -> None:
    for name, amount in report.counts.items():
        ctx.add(f"writeback_{name}", amount)
    ctx.add("writeback_refused", len(report.rejected))
    ctx.add("writeback_deferred", len(report.deferred))
    ctx.notes.append(report.line())


def run_attribution_pipeline(ctx: RunContext) -> None:
    """Attribute the source CRM's opportunities; write the configured model's run back."""
    from sync.attribution.ledger import run_attribution
    from sync.attribution.models import Model
    from sync.ledger import ledger_session

    crm = _source(ctx)
    params = ctx.config.attribution.params()
    models = [m for m in Model if m is not Model.CUSTOM or params.custom is not None]
    with ledger_session(ctx.engine) as session:
        report = run_attribution(session, crm, models, params)
    ctx.add("opportunities", int(report.counts.get("opportunities", 0)))
    ctx.add("credits", 0 if report.reused else int(report.counts.get("credits", 0)))
    state = "unchanged, same as" if report.reused else "stored as"
    ctx.notes.append(f"attribution {state} run {report.run_id}")
    settings = ctx.config.attribution.writeback
    if not isinstance(settings, AttributionWriteback) or not settings.enabled:
        return
    connector = ctx.connections.get(crm)
    _count(ctx, writeback_attribution(ctx.engine, ctx.config, connector, crm=crm))


def run_sla_writeback(ctx: RunContext) -> None:
    """Flag the source CRM's people whose latest hand-off breached the SLA; clear the rest."""
    crm = _source(ctx)
    connector = ctx.connections.get(crm)
    for report in writeback_sla(ctx.engine, ctx.config, {crm: connector}, now=ctx.started_at):
        _count(ctx, report)
