"""CSV and JSON exports of a report: the same numbers as the HTML, for spreadsheets and BI.

``tables`` flattens a ``ReportData`` into named tables (header + rows of plain values); the CSV
export writes one file per table into a folder (cells a spreadsheet would run as formulas
neutralised, ``sync.csvout``), the JSON export one document with the summary
and every table. Money is written as exact decimal strings in JSON and plain numbers in CSV;
rates as fractions (0.25, not "25%") so they can be computed with.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sync.analytics.deals import DealMetrics
from sync.analytics.funnel import FunnelRow
from sync.analytics.reasons import ReasonCount
from sync.analytics.recycling import RecycleGroup
from sync.analytics.sla import SlaCase, SlaGroup
from sync.analytics.summary import ReportData
from sync.csvout import write_rows
from sync.mapping.model import Stage

__all__ = ["Table", "tables", "to_json", "write_csv"]

Table = tuple[list[str], list[list[Any]]]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _funnel(rows: Sequence[FunnelRow], first: str) -> Table:
    if not rows:
        return [first], []
    header = [first, *(str(s.stage) for s in rows[0].steps)]
    steps = rows[0].steps
    header += [f"conversion {a.stage}->{b.stage}" for a, b in itertools.pairwise(steps)]
    header += ["recycled", "disqualified"]
    body = [
        [
            r.group,
            *(s.count for s in r.steps),
            *(_round(s.conversion) for s in r.steps[1:]),
            r.recycled,
            r.disqualified,
        ]
        for r in rows
    ]
    return header, body


def _sla(groups: Sequence[SlaGroup], first: str, data: ReportData) -> Table:
    header = [first, "handed_off", "answered", "met", "breached", "waiting", "overdue",
              "median_hours", "p90_hours", "breach_rate"]  # fmt: skip
    body = [
        [
            data.rep_label(g.group) if first == "rep" and g.group != "(none)" else g.group,
            g.handed_off,
            g.answered,
            g.met,
            g.breached,
            g.waiting,
            g.overdue,
            _round(g.median_hours, 2),
            _round(g.p90_hours, 2),
            _round(g.breach_rate),
        ]
        for g in groups
    ]
    return header, body


def _recycle(groups: Sequence[RecycleGroup], first: str, data: ReportData) -> Table:
    header = [first, "handed_off", "recycled", "recycle_rate", "disqualified"]
    body = [
        [
            data.rep_label(g.group) if first == "rep" and g.group != "(none)" else g.group,
            g.handed_off,
            g.recycled,
            _round(g.rate),
            g.disqualified,
        ]
        for g in groups
    ]
    return header, body


REASON_COLUMNS = ["outcome", "reason", "decisions", "share", "decisions_of_outcome"]


def _reasons(rows: Sequence[ReasonCount], first: str, data: ReportData) -> Table:
    """Counts and shares per reason of each group (share: of the group's decisions of the same
    outcome); a rep's group is shown by name."""

    def label(group: str) -> str:
        if first == "period":
            return data.period.label
        return data.rep_label(group) if first == "rep" and group != "(none)" else group

    body = [
        [label(r.group), str(r.outcome), r.reason, r.count, _round(r.share), r.total] for r in rows
    ]
    return [first, *REASON_COLUMNS], body


def _deals(rows: Sequence[DealMetrics]) -> Table:
    header = ["period", "new_opportunities", "new_pipeline", "open_pipeline", "open_deals",
              "won", "lost", "win_rate", "revenue"]  # fmt: skip
    body = [
        [
            m.label,
            m.new_opportunities,
            m.new_pipeline,
            m.open_pipeline,
            m.open_deals,
            m.won,
            m.lost,
            _round(m.win_rate),
            m.revenue,
        ]
        for m in rows
    ]
    return header, body


def tables(data: ReportData) -> dict[str, Table]:
    """Every table of the report by name (``funnel_by_campaign``, ``sla_by_rep``, ``roi`` ...)."""
    out: dict[str, Table] = {
        "funnel": _funnel([data.funnel], "cohort"),
        "funnel_by_month": _funnel(data.funnel_by_month, "month"),
        "funnel_by_campaign": _funnel(data.funnel_by_campaign, "campaign"),
        "funnel_by_channel": _funnel(data.funnel_by_channel, "channel"),
        "sla_by_rep": _sla(data.sla_by_rep, "rep", data),
        "sla_by_team": _sla(data.sla_by_team, "team", data),
        "sla_by_source": _sla(data.sla_by_source, "source", data),
        "recycle_by_rep": _recycle(data.recycle_by_rep, "rep", data),
        "recycle_by_source": _recycle(data.recycle_by_source, "source", data),
        "deals": _deals([data.deals, *data.deals_by_month]),
        "reasons": _reasons(data.reasons, "period", data),
        "reasons_by_month": _reasons(data.reasons_by_month, "month", data),
        "reasons_by_campaign": _reasons(data.reasons_by_campaign, "first_touch_campaign", data),
        "reasons_by_channel": _reasons(data.reasons_by_channel, "first_touch_channel", data),
        "reasons_by_rep": _reasons(data.reasons_by_rep, "rep", data),
        "reasons_by_experiment_group": (
            ["experiment", "group", *REASON_COLUMNS],
            [
                [name, *row]
                for name, rows in data.experiment_reasons.items()
                for row in _reasons(rows, "group", data)[1]
            ],
        ),
        "reasons_missing": (
            ["crm", "outcome", "without_reason", "decisions", "reason_fields"],
            [
                [g.crm, str(g.outcome), g.missing, g.total, " ".join(g.fields) or None]
                for g in data.reason_gaps
            ],
        ),
    }
    out["sla_cases"] = (
        [
            "person",
            "rep",
            "team",
            "source",
            "handed_off_at",
            "first_action_at",
            "target_hours",
            "response_hours",
            "status",
            "outcome",
            "reason",
            "crm",
            "stage",
        ],
        [
            [
                c.person,
                data.rep_label(c.rep) if c.rep else None,
                c.team,
                c.source,
                c.handed_off_at,
                c.first_action_at,
                _round(c.target.total_seconds() / 3600, 2) if c.target is not None else None,
                _round(c.response.total_seconds() / 3600, 2) if c.response is not None else None,
                str(c.status),
                *_outcome(data, c),
                c.crm,
                str(c.stage),
            ]
            for c in sorted([*data.sla_cases, *data.sla_stage_cases], key=lambda c: c.handed_off_at)
        ],
    )
    out["sla_targets"] = (
        [
            "crm",
            "stage",
            "target_hours",
            "origin",
            "entered",
            "answered",
            "met",
            "breached",
            "waiting",
            "overdue",
            "median_hours",
            "breach_rate",
        ],
        [
            [
                r.crm,
                str(r.stage),
                _round(r.target_hours, 2),
                r.origin,
                r.results.handed_off if r.results else 0,
                r.results.answered if r.results else 0,
                r.results.met if r.results else 0,
                r.results.breached if r.results else 0,
                r.results.waiting if r.results else 0,
                r.results.overdue if r.results else 0,
                _round(r.results.median_hours, 2) if r.results else None,
                _round(r.results.breach_rate) if r.results else None,
            ]
            for r in data.sla_targets
        ],
    )
    out["campaigns"] = (
        [
            "campaign_id",
            "campaign",
            "channel",
            "spend",
            "new_leads",
            "cost_per_lead",
            "members",
            *(f"revenue_{m}" for m in data.models),
            *(f"roi_{m}" for m in data.models),
            f"loses_money_{data.default_model}",
        ],
        [
            [
                c.key,
                c.name,
                c.channel,
                c.spend,
                c.new_leads,
                c.cost_per_lead,
                c.members,
                *(c.revenue.get(m, Decimal(0)) for m in data.models),
                *(_round(c.roi.get(m)) for m in data.models),
                c.loses_money(data.default_model),
            ]
            for c in data.campaigns
        ],
    )
    out["roi"] = (
        ["model", "campaign_id", "spend", "attributed_revenue", "profit", "roi", "loses_money"],
        [
            [r.model, r.campaign, r.spend, r.revenue, r.profit, _round(r.roi), r.loses_money]
            for r in data.roi
        ],
    )
    out["experiments"] = (
        [
            "experiment",
            "metric",
            "group_a",
            "group_b",
            "n_a",
            "n_b",
            "mean_a",
            "mean_b",
            "difference",
            "ci_low",
            "ci_high",
            "confidence",
            "verdict",
        ],
        [
            [
                e.name,
                e.metric,
                *e.groups,
                *e.n,
                *(_round(m, 2) for m in e.means),
                _round(e.interval.difference, 2) if e.interval else None,
                _round(e.interval.low, 2) if e.interval else None,
                _round(e.interval.high, 2) if e.interval else None,
                e.interval.confidence if e.interval else None,
                e.verdict,
            ]
            for e in data.experiments
        ],
    )
    return out


def _outcome(data: ReportData, case: SlaCase) -> tuple[str | None, str | None]:
    """The decision a hand-off ended in (Disqualified / Recycled) and its reason, if any."""
    decision = data.sla_outcome(case) if case.stage is Stage.MQL else None
    return (str(decision.outcome), decision.reason) if decision else (None, None)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_json(data: ReportData) -> str:
    """The report as one JSON document: period, summary, notes and every table as records."""
    document: dict[str, Any] = {
        "title": data.title,
        "period": {
            "label": data.period.label,
            "start": _plain(data.period.start),
            "end": _plain(data.period.end),
        },
        "generated_at": data.generated_at.isoformat(),
        "currency": data.currency,
        "summary": data.summary,
        "notes": data.notes,
        "data_quality": dict(data.data_quality),
        "attribution_models": data.models,
        "attribution_scope": data.attribution_scope,
        "default_model": data.default_model,
        "tables": {
            name: [dict(zip(header, map(_plain, row), strict=True)) for row in rows]
            for name, (header, rows) in tables(data).items()
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_csv(data: ReportData, folder: Path) -> list[Path]:
    """One CSV per table in ``folder`` (created if needed); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, (header, rows) in tables(data).items():
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            write_rows(handle, header, ([_plain(v) for v in row] for row in rows))
        written.append(path)
    return written
