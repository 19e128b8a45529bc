"""One report's numbers: every metric of the closed loop for one period, as plain data.

``build_report`` is pure: it takes a ``Dataset`` (``sync.analytics.load``), the analytics
settings, SLA targets and attributed revenue per model, and returns a ``ReportData`` that the
HTML, CSV and JSON writers (``sync.report``) only format. Period rules:

- funnel cohorts: people who entered the funnel in the period (stages reached up to now,
  including Opportunity and Customer through their deals);
- SLA: hand-offs made in the period; recycling: people first handed off in the period;
- reasons: disqualifications and recycles decided in the period (``sync.analytics.reasons``);
- deals: created / closed in the period (``sync.analytics.deals``);
- campaigns: spend spread over the period, new leads and attributed revenue of deals won in it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sync.analytics.credits import model_label
from sync.analytics.deals import DealMetrics, deal_metrics, monthly_deal_metrics
from sync.analytics.experiments import ExperimentResult, compare_groups, production_by_rep_month
from sync.analytics.funnel import (
    FunnelRow,
    cohort_by_campaign,
    cohort_by_channel,
    cohort_by_month,
    entered_funnel_at,
    funnel_rows,
    reached_by_person,
)
from sync.analytics.lifecycle import History, build_histories, current_stages, deal_stage_events
from sync.analytics.periods import Period, month_key, months_between
from sync.analytics.reasons import (
    NO_REASON,
    NO_TOUCH,
    OUTCOMES,
    Decision,
    ReasonCount,
    ReasonGap,
    decision_after,
    decisions,
    dominant_reason,
    first_touches,
    reason_counts,
    reason_gaps,
)
from sync.analytics.records import Dataset
from sync.analytics.recycling import RecycleGroup, recycle_rates, rep_of
from sync.analytics.roi import (
    CampaignRoi,
    cost_per_lead,
    first_touch_leads,
    roi_table,
    spend_in_period,
)
from sync.analytics.settings import AnalyticsSettings, ExperimentSettings
from sync.analytics.sla import SlaCase, SlaGroup, SlaTargets, sla_cases, sla_summary
from sync.mapping.model import Stage

__all__ = [
    "CampaignLine",
    "ReportData",
    "SlaTargetRow",
    "build_report",
    "hand_off_outcomes",
    "histories_of",
    "sla_target_rows",
]

MAX_MONTHS = 24
SLA_BINS_HOURS = (1, 4, 8, 24, 48, 72)


@dataclass(frozen=True)
class CampaignLine:
    """One campaign's economics in the period: spend, leads, cost per lead, revenue, ROI."""

    key: str
    name: str
    channel: str | None
    spend: Decimal
    new_leads: int
    members: int
    cost_per_lead: Decimal | None
    revenue: Mapping[str, Decimal]  # attribution model -> attributed revenue
    roi: Mapping[str, float | None]  # attribution model -> ROI

    def loses_money(self, model: str) -> bool:
        """Whether attributed revenue under ``model`` is below spend."""
        return self.spend > 0 and self.revenue.get(model, Decimal(0)) < self.spend


@dataclass(frozen=True, slots=True)
class SlaTargetRow:
    """One CRM's target for one stage, where it comes from, and how the period met it."""

    crm: str
    stage: Stage
    target_hours: float | None
    origin: str  # lifecycle.sla.<stage>, analytics.sla.default, or none
    results: SlaGroup | None  # of the entries in the period (None: none)


def sla_target_rows(cases: Sequence[SlaCase], targets: SlaTargets) -> list[SlaTargetRow]:
    """Each CRM's target per measured stage (MQL always) with the period's results."""
    crms = set(targets.by_crm) | {c.crm for c in cases if c.crm is not None}
    grouped = {
        g.group: g for g in sla_summary(cases, lambda c: f"{c.crm or '(none)'}\x1f{c.stage}")
    }
    rows: list[SlaTargetRow] = []
    for crm in sorted(crms):
        for stage in targets.stages:
            target = targets.target(None, None, crm=crm, stage=stage)
            found = grouped.get(f"{crm}\x1f{stage}")
            if target is None and stage is not Stage.MQL:
                continue
            rows.append(
                SlaTargetRow(
                    crm=crm,
                    stage=stage,
                    target_hours=target.total_seconds() / 3600 if target is not None else None,
                    origin=targets.origin(crm, stage),
                    results=found,
                )
            )
    return rows


def _uniform_mql_target(rows: Sequence[SlaTargetRow], targets: SlaTargets) -> float | None:
    """The MQL target in hours when every CRM has the same one (else None: see the table)."""
    found = {r.target_hours for r in rows if r.stage is Stage.MQL}
    if not found and targets.default is not None:
        found = {targets.default.total_seconds() / 3600}
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class ReportData:
    """Every number of one report, with the plain-language summary on top."""

    title: str
    period: Period
    generated_at: datetime
    currency: str
    summary: list[str]
    funnel: FunnelRow
    funnel_by_month: list[FunnelRow]
    funnel_by_campaign: list[FunnelRow]
    funnel_by_channel: list[FunnelRow]
    current_stages: Mapping[Stage, int]
    sla_target_hours: float | None
    sla_cases: list[SlaCase]
    sla_by_rep: list[SlaGroup]
    sla_by_team: list[SlaGroup]
    sla_by_source: list[SlaGroup]
    sla_histogram: list[tuple[str, int, int]]  # bucket label, answered within, breaches
    recycle_by_rep: list[RecycleGroup]
    recycle_by_source: list[RecycleGroup]
    reasons: list[ReasonCount]  # group "all": the decisions of the period
    reasons_by_month: list[ReasonCount]
    reasons_by_campaign: list[ReasonCount]  # of the person's first touch
    reasons_by_channel: list[ReasonCount]  # of the person's first touch
    reasons_by_rep: list[ReasonCount]
    reason_gaps: list[ReasonGap]
    deals: DealMetrics
    deals_by_month: list[DealMetrics]
    models: list[str]
    default_model: str
    campaigns: list[CampaignLine]
    roi: list[CampaignRoi]
    experiments: list[ExperimentResult]
    experiment_reasons: Mapping[str, list[ReasonCount]] = field(default_factory=dict)
    sla_outcomes: Mapping[tuple[str, datetime], Decision] = field(default_factory=dict)
    rep_names: Mapping[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # What the report could not name (``sync.names.DerivedNames.quality``): campaigns and reps
    # still shown as ids, each with the setting that fixes it; programs matched by name only.
    data_quality: Mapping[str, Any] = field(default_factory=dict)
    attribution_scope: str = "contact_roles"  # whose touches count (attribution.scope)
    sla_stage_cases: list[SlaCase] = field(default_factory=list)  # SAL, SQL ... with a target
    sla_targets: list[SlaTargetRow] = field(default_factory=list)  # per CRM and stage

    @property
    def attribution_scope_label(self) -> str:
        """Whose touches the attribution models count, in words."""
        from sync.attribution.models import SCOPE_LABELS, Scope

        try:
            return SCOPE_LABELS[Scope(self.attribution_scope)]
        except ValueError:
            return self.attribution_scope

    def rep_label(self, rep: str | None) -> str:
        """A rep's display name (their owner id when no name is configured)."""
        if rep is None:
            return "(unassigned)"
        return self.rep_names.get(rep, rep)

    def sla_outcome(self, case: SlaCase) -> Decision | None:
        """What sales decided about a hand-off (disqualified or recycled, and why), if anything."""
        return self.sla_outcomes.get((case.person, case.handed_off_at))

    @property
    def sla_breaches(self) -> list[SlaCase]:
        """Hand-offs of the period whose SLA was or is being broken, latest first."""
        return sorted(
            (c for c in self.sla_cases if c.is_breach), key=lambda c: c.handed_off_at, reverse=True
        )

    @property
    def money_losers(self) -> list[CampaignLine]:
        """Campaigns whose spend exceeds their revenue under the default model, worst first."""
        losers = [c for c in self.campaigns if c.loses_money(self.default_model)]
        return sorted(losers, key=lambda c: c.revenue.get(self.default_model, 0) - c.spend)


def _months(period: Period, dataset: Dataset, entered: Mapping[str, datetime]) -> list[str]:
    end = period.end if period.end is not None and period.end < dataset.now else dataset.now
    start = period.start
    if start is None:
        times = [d.created_at for d in dataset.deals] + list(entered.values())
        start = min(times, default=end)
    months = months_between(start, end - timedelta(microseconds=1))
    return months[-MAX_MONTHS:]


def _histogram(cases: Sequence[SlaCase]) -> list[tuple[str, int, int]]:
    edges = [0, *SLA_BINS_HOURS]
    rows: list[tuple[str, int, int]] = []
    for low, high in zip(edges, [*SLA_BINS_HOURS, None], strict=True):
        label = f"{low}-{high} h" if high is not None else f"{low} h+"
        ok = breached = 0
        for case in cases:
            if case.response is None:
                continue
            hours = case.response.total_seconds() / 3600
            if hours >= low and (high is None or hours < high):
                if case.is_breach:
                    breached += 1
                else:
                    ok += 1
        rows.append((label, ok, breached))
    waiting = sum(1 for c in cases if c.response is None and not c.is_breach)
    overdue = sum(1 for c in cases if c.response is None and c.is_breach)
    rows.append(("unanswered", waiting, overdue))
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _money(value: Decimal | float, currency: str) -> str:
    return f"{currency} {value:,.0f}"


def histories_of(dataset: Dataset) -> dict[str, History]:
    """Every person's stage history, their deals' stages included (as the report reads them)."""
    return build_histories([*dataset.events, *deal_stage_events(dataset.deals, dataset.people)])


def hand_off_outcomes(
    cases: Sequence[SlaCase], histories: Mapping[str, History], decided: Sequence[Decision]
) -> dict[tuple[str, datetime], Decision]:
    """(person, hand-off time) -> what sales decided about that hand-off, for those decided."""
    mine: dict[str, list[Decision]] = {}
    for decision in decided:
        mine.setdefault(decision.person, []).append(decision)
    out: dict[tuple[str, datetime], Decision] = {}
    for case in cases:
        found = decision_after(
            histories.get(case.person), mine.get(case.person, []), case.handed_off_at
        )
        if found is not None:
            out[(case.person, case.handed_off_at)] = found
    return out


def _reasons_by_group(
    decided: Sequence[Decision], experiment: ExperimentSettings
) -> list[ReasonCount]:
    """The reasons of the decisions an experiment's reps made in its time, by rep group."""
    group_of = {rep: group for group, reps in experiment.groups.items() for rep in reps}
    chosen = [
        d
        for d in decided
        if d.rep in group_of
        and (experiment.start is None or d.at.date() >= experiment.start)
        and (experiment.end is None or d.at.date() <= experiment.end)
    ]
    return reason_counts(
        chosen, lambda d: group_of.get(d.rep or ""), groups=list(experiment.groups)
    )


def build_report(
    dataset: Dataset,
    settings: AnalyticsSettings,
    period: Period,
    targets: SlaTargets,
    credits: Mapping[str, Mapping[str, Decimal]],
    *,
    title: str = "Closed-loop report",
    notes: Sequence[str] = (),
    reason_fields: Mapping[str, Sequence[str]] | None = None,
    attribution_scope: str = "contact_roles",
) -> ReportData:
    """Compute every metric of the report for ``period`` (see the module docstring);
    ``reason_fields`` names, per CRM, the fields that carry disqualification reasons."""
    now = dataset.now
    currency = settings.currency
    histories = histories_of(dataset)
    entered = entered_funnel_at(dataset.people, histories, dataset.memberships)
    reached = reached_by_person(entered, histories)
    cohort = [p for p, when in entered.items() if period.contains(when)]
    overall = funnel_rows({"all": cohort}, reached)[0]
    by_month = funnel_rows(cohort_by_month(entered, period), reached)
    by_campaign = funnel_rows(
        cohort_by_campaign(dataset.memberships, period, dataset.campaigns), reached
    )
    by_channel = funnel_rows(
        cohort_by_channel(dataset.memberships, period, dataset.campaigns), reached
    )

    every_case = [
        c
        for c in sla_cases(dataset.events, dataset.people, targets, now, settings.team_of)
        if period.contains(c.handed_off_at)
    ]
    cases = [c for c in every_case if c.stage is Stage.MQL]
    stage_cases = [c for c in every_case if c.stage is not Stage.MQL]
    target_rows = sla_target_rows(every_case, targets)
    handed_in_period: dict[str, History] = {
        p: h
        for p, h in histories.items()
        if (first := h.first_entered(Stage.MQL)) is not None and period.contains(first)
    }
    people = dataset.people

    spend = spend_in_period(dataset.spend, period)
    leads = first_touch_leads(dataset.memberships, period)
    cpl = cost_per_lead(spend, leads)
    members: dict[str, set[str]] = {}
    for m in dataset.memberships:
        if m.campaign is not None and period.contains(m.first_at):
            members.setdefault(m.campaign, set()).add(m.person)
    models = list(credits)
    default_model = models[0] if models else "none"
    roi = roi_table(credits, spend)
    keys = set(spend) | set(leads) | {r.campaign for r in roi}
    lines: list[CampaignLine] = []
    for key in keys:
        info = dataset.campaigns.get(key)
        per_model = {r.model: r for r in roi if r.campaign == key}
        lines.append(
            CampaignLine(
                key=key,
                name=info.name if info else key,
                channel=info.channel if info else None,
                spend=spend.get(key, Decimal(0)),
                new_leads=leads.get(key, 0),
                members=len(members.get(key, ())),
                cost_per_lead=cpl.get(key),
                revenue={m: r.revenue for m, r in per_model.items()},
                roi={m: r.roi for m, r in per_model.items()},
            )
        )
    lines.sort(key=lambda c: (-c.spend, -c.revenue.get(default_model, Decimal(0)), c.name))

    months = _months(period, dataset, entered)
    every_decision = decisions(histories, people)
    decided = [d for d in every_decision if period.contains(d.at)]
    touched = first_touches(dataset.memberships, dataset.campaigns)
    no_touch = (NO_TOUCH, NO_TOUCH)
    experiments: list[ExperimentResult] = []
    experiment_reasons: dict[str, list[ReasonCount]] = {}
    for name, experiment in settings.experiments.items():
        exp_months = [
            m
            for m in months
            if (experiment.start is None or m >= month_key_of(experiment.start))
            and (experiment.end is None or m <= month_key_of(experiment.end))
        ]
        groups = {
            group: [
                value
                for values in production_by_rep_month(
                    dataset.deals, reps, exp_months, experiment.metric
                ).values()
                for value in values
            ]
            for group, reps in experiment.groups.items()
        }
        experiments.append(
            compare_groups(name, groups, experiment.metric, experiment.confidence, currency)
        )
        experiment_reasons[name] = _reasons_by_group(decided, experiment)

    deals = deal_metrics(dataset.deals, period, now)
    data = ReportData(
        title=title,
        period=period,
        generated_at=now,
        currency=currency,
        summary=[],
        funnel=overall,
        funnel_by_month=by_month,
        funnel_by_campaign=by_campaign,
        funnel_by_channel=by_channel,
        current_stages=current_stages(histories),
        sla_target_hours=_uniform_mql_target(target_rows, targets),
        sla_cases=cases,
        sla_by_rep=sla_summary(cases, lambda c: c.rep),
        sla_by_team=sla_summary(cases, lambda c: c.team) if settings.teams else [],
        sla_by_source=sla_summary(cases, lambda c: c.source),
        sla_histogram=_histogram(cases),
        recycle_by_rep=recycle_rates(handed_in_period, people, rep_of),
        recycle_by_source=recycle_rates(
            handed_in_period, people, lambda _h, f: f.source if f else None
        ),
        reasons=reason_counts(decided, lambda _d: "all"),
        reasons_by_month=reason_counts(decided, lambda d: month_key(d.at), groups=months),
        reasons_by_campaign=reason_counts(decided, lambda d: touched.get(d.person, no_touch)[0]),
        reasons_by_channel=reason_counts(decided, lambda d: touched.get(d.person, no_touch)[1]),
        reasons_by_rep=reason_counts(decided, lambda d: d.rep),
        reason_gaps=reason_gaps(decided, reason_fields or {}),
        deals=deals,
        deals_by_month=monthly_deal_metrics(dataset.deals, months, now),
        models=models,
        default_model=default_model,
        campaigns=lines,
        roi=roi,
        experiments=experiments,
        experiment_reasons=experiment_reasons,
        sla_outcomes=hand_off_outcomes(cases, histories, every_decision),
        rep_names=dict(settings.rep_names),
        notes=list(notes),
        attribution_scope=attribution_scope,
        sla_stage_cases=stage_cases,
        sla_targets=target_rows,
    )
    data.summary.extend(_summary(data))
    return data


def month_key_of(day: date) -> str:
    """``YYYY-MM`` of a date (or datetime)."""
    return f"{day.year:04d}-{day.month:02d}"


def _summary(data: ReportData) -> list[str]:
    """The report's opening paragraph, one plain sentence per finding."""
    cur = data.currency
    lines: list[str] = []
    f = data.funnel
    if f.size:
        mql = next(s.count for s in f.steps if s.stage is Stage.MQL)
        won = next(s.count for s in f.steps if s.stage is Stage.CUSTOMER)
        lines.append(
            f"{f.size:,} people entered the funnel in {data.period.label}; {mql:,} "
            f"({_pct(mql / f.size)}) became marketing-qualified and {won:,} "
            f"({_pct(won / f.size)}) are customers so far."
        )
    else:
        lines.append(f"No one entered the funnel in {data.period.label}.")
    answered = [c for c in data.sla_cases if c.response is not None]
    if data.sla_cases:
        breaches = sum(1 for c in data.sla_cases if c.is_breach)
        hours = [c.response.total_seconds() / 3600 for c in answered if c.response is not None]
        median = f"{statistics.median(hours):.1f} hours" if hours else "n/a"
        if data.sla_target_hours:
            target = f" against a target of {data.sla_target_hours:g} hours"
        elif any(r.target_hours for r in data.sla_targets if r.stage is Stage.MQL):
            target = " against each CRM's own target"
        else:
            target = ""
        slow = [g for g in data.sla_by_rep if g.breach_rate and g.handed_off >= 3]
        worst = (
            f" Slowest to follow up: {data.rep_label(slow[0].group)} "
            f"({_pct(slow[0].breach_rate)} of hand-offs late)."
            if slow
            else ""
        )
        lines.append(
            f"Sales answered hand-offs in a median of {median}{target}; {breaches:,} of "
            f"{len(data.sla_cases):,} hand-offs ({_pct(breaches / len(data.sla_cases))}) "
            f"broke the SLA.{worst}"
        )
    recycled = sum(r.recycled for r in data.recycle_by_rep)
    handed = sum(r.handed_off for r in data.recycle_by_rep)
    if handed:
        lines.append(
            f"Sales sent {recycled:,} of {handed:,} handed-over leads ({_pct(recycled / handed)}) "
            "back to marketing for nurturing."
        )
    reasons = _reasons_line(data)
    if reasons:
        lines.append(reasons)
    d = data.deals
    lines.append(
        f"{d.new_opportunities:,} new opportunities worth {_money(d.new_pipeline, cur)}; "
        f"{d.won:,} deals won for {_money(d.revenue, cur)} (win rate {_pct(d.win_rate)}); "
        f"open pipeline {_money(d.open_pipeline, cur)}."
    )
    spend = sum((c.spend for c in data.campaigns), Decimal(0))
    if spend:
        losers = data.money_losers
        text = f"Campaigns cost {_money(spend, cur)} in the period."
        if losers:
            loser = losers[0]
            revenue = loser.revenue.get(data.default_model, Decimal(0))
            text += (
                f" {len(losers)} campaign{'s' if len(losers) != 1 else ''} lost money under "
                f"{model_label(data.default_model)} attribution; the worst, {loser.name}, cost "
                f"{_money(loser.spend, cur)} and brought {_money(revenue, cur)}."
            )
        lines.append(text)
    lines.extend(e.verdict for e in data.experiments)
    return lines


_OUTCOME_WORDS = {  # outcome -> (its decisions, the reason "to ...")
    Stage.DISQUALIFIED: ("disqualifications", "to disqualify"),
    Stage.RECYCLED: ("recycles", "to recycle"),
}


def _fields_text(gaps: Sequence[ReasonGap]) -> str:
    """Where the missing reasons would be: each CRM's reason fields, or how to name one."""
    parts: list[str] = []
    for crm in dict.fromkeys(g.crm for g in gaps if g.missing):
        fields = next(g.fields for g in gaps if g.crm == crm)
        if fields:
            parts.append(f"{crm} keeps it in {' or '.join(fields)}")
        else:
            parts.append(
                f"{crm} has no reason field configured (the mapping's lifecycle.reason_fields "
                "or reason_field)"
            )
    return "; ".join(parts)


def _reasons_line(data: ReportData) -> str:
    """Why sales said no, in one sentence or three: counts, a dominant reason, missing ones."""
    totals = {o: next((r.total for r in data.reasons if r.outcome is o), 0) for o in OUTCOMES}
    if not any(totals.values()):
        return ""
    dq, rc = totals[Stage.DISQUALIFIED], totals[Stage.RECYCLED]
    text = (
        f"Sales disqualified {dq:,} lead{'s' if dq != 1 else ''} and recycled {rc:,} in "
        f"{data.period.label}."
    )
    undecided: list[str] = []
    for outcome in OUTCOMES:
        plural, verb = _OUTCOME_WORDS[outcome]
        given = sum(r.count for r in data.reasons if r.outcome is outcome and r.reason != NO_REASON)
        top = dominant_reason(data.reasons, outcome)
        if top is not None:
            text += (
                f" The main reason {verb}: '{top.reason}', {top.count:,} of the {given:,} "
                f"{plural} that give a reason ({_pct(top.count / given)})."
            )
        elif given:
            undecided.append(plural)
    if undecided:
        text += f" No single reason explains most {' or '.join(undecided)}."
    missing = sum(g.missing for g in data.reason_gaps)
    if missing:
        total = sum(totals.values())
        where = _fields_text(data.reason_gaps)
        text += f" {missing:,} of {total:,} decisions give no reason ({where})."

    return text
