"""The HTML report: one self-contained file (inline CSS, inline SVG, a few lines of script).

Nothing is fetched when the file opens: no fonts, no CDN, no images; it reads the same offline,
attached to an e-mail or printed. Charts are drawn here (``sync.report.charts``); the template
(``report.html.j2``) lays out the summary, the charts and the tables.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from sync.analytics.credits import model_label
from sync.analytics.summary import ReportData
from sync.mapping.model import Stage
from sync.report import charts
from sync.report.charts import Bar

__all__ = ["render_html"]

TOP_CAMPAIGNS = 15


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
        [(m.label, (float(m.revenue),)) for m in data.deals_by_month],
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
    }


def _sortable(value: float | None) -> float:
    return value if value is not None else float("-inf")


def _short_money(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 1_000:
        return f"{value / 1_000:.0f}k"
    return f"{value:.0f}"


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document."""
    template = _environment().get_template("report.html.j2")
    context: dict[str, Any] = {
        "data": data,
        "charts": _charts(data),
        "Stage": Stage,
        "top": TOP_CAMPAIGNS,
    }
    return template.render(**context)
