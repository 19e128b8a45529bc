"""The HTML report: one self-contained file (inline CSS, inline SVG, a few lines of script).

Nothing is fetched when the file opens: no fonts, no CDN, no images; it reads the same offline,
attached to an e-mail or printed. Charts are drawn here (``sync.report.charts``); the template
(``report.html.j2``) lays out the summary, the charts and the tables.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from sync.analytics.credits import model_label
from sync.analytics.deals import DealMetrics
from sync.analytics.reasons import NO_REASON, OUTCOMES, ReasonCount
from sync.analytics.summary import ReportData
from sync.mapping.model import Stage
from sync.report import charts
from sync.report.charts import Bar

__all__ = ["ReasonMatrix", "active_months", "reason_matrices", "render_html", "reproduce_command"]

TOP_CAMPAIGNS = 15
REASON_COLUMNS = 6  # reasons shown as columns of a matrix; the rest add up in "other reasons"
OTHER_REASONS = "other reasons"
Cell = tuple[int, float] | None  # decisions, share of the row's decisions of that outcome


@dataclass(frozen=True)
class ReasonMatrix:
    """One outcome's reasons as a table: a row per group, a column per reason."""

    outcome: str
    columns: list[str]
    rows: list[tuple[str, int, list[Cell]]]  # group label, decisions, a cell per column


def reason_matrices(
    rows: Sequence[ReasonCount],
    label: Callable[[str], str] = str,
    groups: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[ReasonMatrix]:
    """A matrix per outcome with decisions: the most given reasons as columns, then "other
    reasons" and "(no reason given)"; rows in ``groups`` order (empty ones too) or the rows'."""
    out: list[ReasonMatrix] = []
    for outcome in OUTCOMES:
        mine = [r for r in rows if r.outcome is outcome]
        if not mine:
            continue
        given: Counter[str] = Counter()
        for r in mine:
            if r.reason != NO_REASON:
                given[r.reason] += r.count
        ranked = sorted(given, key=lambda reason: (-given[reason], reason))
        columns = ranked[:REASON_COLUMNS]
        if len(ranked) > REASON_COLUMNS:
            columns.append(OTHER_REASONS)
        if any(r.reason == NO_REASON for r in mine):
            columns.append(NO_REASON)
        shown = set(columns)
        order = list(groups) if groups is not None else list(dict.fromkeys(r.group for r in mine))
        lines: list[tuple[str, int, list[Cell]]] = []
        for group in order[:limit]:
            counts: Counter[str] = Counter()
            total = 0
            for r in mine:
                if r.group == group:
                    counts[r.reason if r.reason in shown else OTHER_REASONS] += r.count
                    total = r.total
            cells: list[Cell] = [
                (counts[c], counts[c] / total) if counts[c] else None for c in columns
            ]
            lines.append((label(group), total, cells))
        out.append(ReasonMatrix(str(outcome), columns, lines))
    return out


def money(value: Decimal | float | int | None, currency: str = "") -> str:
    """``USD 12,300`` (whole units; cents add nothing to a campaign review)."""
    if value is None:
        return "n/a"
    text = f"{value:,.0f}"
    return f"{currency} {text}".strip()


def pct(value: float | None, digits: int = 0) -> str:
    """``42%``; n/a for None."""
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def hours(value: float | None) -> str:
    """``5.2 h``, or ``2.1 d`` past two days."""
    if value is None:
        return "n/a"
    return f"{value / 24:.1f} d" if value >= 48 else f"{value:.1f} h"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sync.report", "."),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, pct=pct, hours=hours, model_label=model_label)
    return env


def _charts(data: ReportData) -> dict[str, Markup]:
    cur = data.currency
    steps = []
    for step in data.funnel.steps:
        conversion = "" if step.conversion is None else f"{pct(step.conversion)} of previous"
        steps.append((str(step.stage), step.count, conversion))
    funnel = charts.funnel_chart(
        "funnel", "Lead funnel", steps, "No one entered the funnel in this period"
    )
    sla = charts.stacked_columns(
        "sla",
        "Time to first sales action",
        [(label, (ok, late)) for label, ok, late in data.sla_histogram],
        [("within SLA", "bar"), ("SLA broken", "bar-bad")],
        empty="No hand-offs to sales in this period",
    )
    model = data.default_model
    campaigns = sorted(
        (c for c in data.campaigns if c.spend > 0),
        key=lambda c: _sortable(c.roi.get(model)),
    )[:TOP_CAMPAIGNS]
    roi = charts.diverging_bars(
        "roi",
        f"ROI by campaign ({model_label(model)})",
        [(c.name, c.roi.get(model)) for c in campaigns],
        fmt=pct,
        empty="No campaign spend recorded in this period",
    )
    by_revenue = sorted(data.campaigns, key=lambda c: -max(c.revenue.values(), default=Decimal(0)))[
        :TOP_CAMPAIGNS
    ]
    attribution = charts.heatmap(
        "attribution",
        "Attributed revenue by campaign and model",
        [c.name for c in by_revenue],
        [model_label(m) for m in data.models],
        [[float(c.revenue.get(m, Decimal(0))) for m in data.models] for c in by_revenue],
        fmt=_short_money,
        empty="No won revenue to attribute in this period",
    )
    revenue = charts.stacked_columns(
        "revenue",
        "Won revenue by month",
        [(m.label, (float(m.revenue),)) for m in active_months(data.deals_by_month)],
        [(f"won revenue ({cur})", "bar")],
        fmt=_short_money,
        empty="No deals won in this period",
    )
    rep_bars = [
        Bar(
            data.rep_label(g.group),
            (g.breach_rate or 0.0) * 100,
            f"{pct(g.breach_rate)} late of {g.handed_off}",
            "bar-bad" if (g.breach_rate or 0) > 0.25 else "bar",
        )
        for g in data.sla_by_rep
    ]
    reps = charts.horizontal_bars(
        "sla-reps", "Share of hand-offs answered late, by rep", rep_bars, "No SLA breaches"
    )
    return {
        "funnel": funnel,
        "sla": sla,
        "sla_reps": reps,
        "roi": roi,
        "attribution": attribution,
        "revenue": revenue,
        **_reason_charts(data),
    }


def _reason_charts(data: ReportData) -> dict[str, Markup]:
    """A bar per reason of each outcome in the period ("(no reason given)" in a paler bar)."""
    out: dict[str, Markup] = {}
    for outcome, css, verb in (
        (Stage.DISQUALIFIED, "bar-bad", "disqualified"),
        (Stage.RECYCLED, "bar", "recycled"),
    ):
        bars = [
            Bar(
                r.reason,
                float(r.count),
                f"{r.count:,} ({pct(r.share)})",
                "bar-muted" if r.reason == NO_REASON else css,
            )
            for r in data.reasons
            if r.outcome is outcome
        ]
        out[f"reasons_{verb}"] = charts.horizontal_bars(
            f"reasons-{verb}",
            f"Why sales {verb} leads",
            bars,
            f"No lead {verb} in this period",
        )
    return out


def _reason_tables(data: ReportData) -> dict[str, Any]:
    """The reason matrices of the report: by month, campaign, channel, rep and experiment."""

    def rep(group: str) -> str:
        return data.rep_label(None if group == "(none)" else group)

    months = [m.label for m in data.deals_by_month]
    decided = {r.group for r in data.reasons_by_month}
    first = next((i for i, month in enumerate(months) if month in decided), len(months))
    return {
        # From the first month with a decision: later months without one are part of the trend.
        "by_month": reason_matrices(data.reasons_by_month, groups=months[first:]),
        "by_campaign": reason_matrices(data.reasons_by_campaign, limit=TOP_CAMPAIGNS),
        "by_channel": reason_matrices(data.reasons_by_channel),
        "by_rep": reason_matrices(data.reasons_by_rep, rep),
        "by_experiment": {
            name: reason_matrices(rows) for name, rows in data.experiment_reasons.items()
        },
    }


def _sortable(value: float | None) -> float:
    return value if value is not None else float("-inf")


def _short_money(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 1_000:
        return f"{value / 1_000:.0f}k"
    return f"{value:.0f}"


def active_months(months: Sequence[DealMetrics]) -> list[DealMetrics]:
    """The months of the pipeline table from the first with any deal activity or open pipeline
    to the last: all-zero months before and after are left out (those between stay)."""

    def busy(m: DealMetrics) -> bool:
        return bool(
            m.new_opportunities or m.won or m.lost or m.revenue or m.new_pipeline
            or m.open_pipeline
        )  # fmt: skip

    marks = [i for i, m in enumerate(months) if busy(m)]
    return list(months[marks[0] : marks[-1] + 1]) if marks else []


def reproduce_command(data: ReportData) -> str:
    """The command that recomputes this report's numbers as JSON: its period in a form
    ``--period`` reads, measured at the moment the report was generated."""
    period = data.period
    label = period.label
    if period.start is None and period.end is None:
        value = "all"
    elif match := re.fullmatch(r"last (\d+) (days|weeks)", label):
        value = f"last-{match.group(1)}{match.group(2)[0]}"
    else:
        value = label
    moment = data.generated_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return shlex.join(
        ["closedloop", "report", "--period", value, "--as-of", moment, "--format", "json"]
    )


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document."""
    template = _environment().get_template("report.html.j2")
    context: dict[str, Any] = {
        "data": data,
        "active_months": active_months(data.deals_by_month),
        "reproduce": reproduce_command(data),
        "charts": _charts(data),
        "reasons": _reason_tables(data),
        "Stage": Stage,
        "top": TOP_CAMPAIGNS,
    }
    return template.render(**context)
