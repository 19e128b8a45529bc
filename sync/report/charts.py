"""Server-side SVG charts for the HTML report: no script, no fetch, readable when printed.

Each function returns one ``<svg class="chart" data-chart="...">`` element as ``Markup``,
sized by its ``viewBox`` so it scales with the page. Every label is escaped. Colours come from
CSS classes the template defines (``bar``, ``bar-bad``, ``bar-muted`` ...), so the charts
follow the page's palette and print in grey scale sensibly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "diverging_bars", "funnel_chart", "heatmap", "horizontal_bars", "stacked_columns"]

WIDTH = 760
_CHAR_W = 7.0  # about one character of a 12-13 px label, in viewBox units
ROW = 26
LABEL_W = 210
PAD = 12
NARROW = 400  # bar charts with labels above the bars: legible on a phone without scrolling
NARROW_ROW = 40
NARROW_VALUE_W = 120  # room right of the longest bar for its value ("45% late of 1,200")


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value, text shown at its end, and CSS class."""

    label: str
    value: float
    text: str
    css: str = "bar"


def _svg(
    kind: str,
    title: str,
    height: float,
    body: list[str],
    *,
    width: int = WIDTH,
    layout: str = "wide",
) -> Markup:
    """The chart in its box: a chart wider than a phone scrolls inside the box (the page
    does not), at a scale that keeps its labels legible (the template's CSS)."""
    h = max(40.0, height)
    # Every interpolated label above and in ``body`` went through escape().
    return Markup(  # noqa: S704
        f'<div class="chart-box"><svg class="chart" data-chart="{escape(kind)}" role="img" '
        f'data-layout="{layout}" '
        f'viewBox="0 0 {width} {h:.0f}" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg></div>"
    )


def _empty(kind: str, title: str, message: str) -> Markup:
    return _svg(
        kind,
        title,
        48,
        [
            f'<rect class="empty-box" x="1" y="1" width="{WIDTH - 2}" height="46" rx="6"/>',
            f'<text class="empty" x="{WIDTH / 2:.0f}" y="29" text-anchor="middle">'
            f"{escape(message)}</text>",
        ],
    )


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def horizontal_bars(kind: str, title: str, bars: Sequence[Bar], empty: str = "No data") -> Markup:
    """One horizontal bar per item, scaled to the largest value, its label above it.

    Drawn ``NARROW`` units wide so that on a phone (about 350 px for the chart) a 12 px label
    still reads at 10 px or more; on a wide screen the template caps its width."""
    if not bars or all(b.value <= 0 for b in bars):
        return _empty(kind, title, empty)
    top = max(b.value for b in bars)
    span = NARROW - NARROW_VALUE_W
    body: list[str] = []
    for i, bar in enumerate(bars):
        y = PAD + i * NARROW_ROW
        w = max(2.0, span * bar.value / top) if bar.value > 0 else 0.0
        body.append(
            f'<text class="label" x="0" y="{y + 12}">{escape(_clip(bar.label, 52))}</text>'
            f'<rect class="{escape(bar.css)}" x="0" y="{y + 17}" width="{w:.1f}" '
            f'height="{NARROW_ROW - 22}" rx="3"><title>{escape(bar.label)}: {escape(bar.text)}'
            "</title></rect>"
            f'<text class="value" x="{w + 6:.1f}" y="{y + 30}">{escape(bar.text)}</text>'
        )
    return _svg(kind, title, PAD * 2 + len(bars) * NARROW_ROW, body, width=NARROW, layout="narrow")


def funnel_chart(
    kind: str, title: str, steps: Sequence[tuple[str, int, str]], empty: str = "No data"
) -> Markup:
    """A centred funnel: one band per stage (label, count, conversion text)."""
    if not steps or steps[0][1] <= 0:
        return _empty(kind, title, empty)
    top = max(count for _, count, _ in steps)
    band = 40
    mid = LABEL_W + (WIDTH - LABEL_W - 150) / 2
    span = WIDTH - LABEL_W - 150
    body: list[str] = []
    for i, (label, count, conversion) in enumerate(steps):
        y = PAD + i * band
        w = max(3.0, span * count / top) if count else 3.0
        body.append(
            f'<text class="label" x="{LABEL_W - 8}" y="{y + 24}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="bar funnel-{i}" x="{mid - w / 2:.1f}" y="{y + 4}" width="{w:.1f}" '
            f'height="{band - 8}" rx="4"><title>{escape(label)}: {count:,}</title></rect>'
            f'<text class="value" x="{mid:.1f}" y="{y + 25}" text-anchor="middle">{count:,}</text>'
            f'<text class="note" x="{WIDTH - 140}" y="{y + 24}">{escape(conversion)}</text>'
        )
    return _svg(kind, title, PAD * 2 + len(steps) * band, body)


def diverging_bars(
    kind: str,
    title: str,
    items: Sequence[tuple[str, float | None]],
    *,
    fmt: Callable[[float], str],
    empty: str = "No data",
) -> Markup:
    """Bars left (red) or right of a zero line: ROI per campaign; None shows "no spend"."""
    values = [v for _, v in items if v is not None]
    if not values:
        return _empty(kind, title, empty)
    low, high = min(0.0, *values), max(0.0, *values)
    span_px = WIDTH - LABEL_W - 140
    scale = span_px / (high - low) if high > low else 1.0
    zero = LABEL_W + 60 + (-low) * scale
    body: list[str] = []
    for i, (label, value) in enumerate(items):
        y = PAD + i * ROW
        body.append(
            f'<text class="label" x="{LABEL_W - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(_clip(label))}</text>"
        )
        if value is None:
            body.append(f'<text class="note" x="{zero + 6:.1f}" y="{y + 16}">no spend</text>')
            continue
        w = max(2.0, abs(value) * scale)
        x = zero if value >= 0 else zero - w
        css = "bar" if value >= 0 else "bar-bad"
        text_x = x + w + 6 if value >= 0 else x - 6
        anchor = "start" if value >= 0 else "end"
        body.append(
            f'<rect class="{css}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 8}" '
            f'rx="3"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
            f'<text class="value" x="{text_x:.1f}" y="{y + 16}" text-anchor="{anchor}">'
            f"{escape(fmt(value))}</text>"
        )
    height = PAD * 2 + len(items) * ROW
    body.append(
        f'<line class="axis" x1="{zero:.1f}" y1="{PAD - 4}" x2="{zero:.1f}" '
        f'y2="{height - PAD + 4}"/>'
    )
    return _svg(kind, title, height, body)


def stacked_columns(
    kind: str,
    title: str,
    columns: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[tuple[str, str]],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    empty: str = "No data",
) -> Markup:
    """Vertical columns stacked by series (name, CSS class), with a legend."""
    totals = [sum(values) for _, values in columns]
    if not columns or max(totals, default=0) <= 0:
        return _empty(kind, title, empty)
    top = max(totals)
    chart_h, base_y, left = 200.0, 230.0, 50.0
    slot = (WIDTH - left - 20) / len(columns)
    bar_w = min(60.0, slot * 0.7)
    body: list[str] = [
        f'<line class="axis" x1="{left}" y1="{base_y}" x2="{WIDTH - 10}" y2="{base_y}"/>'
    ]
    # Many columns: label every step-th one so axis labels never overlap (titles keep them all).
    widest = max(len(_clip(label, 12)) for label, _ in columns)
    step = max(1, math.ceil((_CHAR_W * widest + 8) / slot))
    for i, (label, values) in enumerate(columns):
        x = left + i * slot + (slot - bar_w) / 2
        y = base_y
        for (name, css), value in zip(series, values, strict=True):
            if value <= 0:
                continue
            h = max(1.0, chart_h * value / top)
            y -= h
            body.append(
                f'<rect class="{escape(css)}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}"><title>{escape(label)}, {escape(name)}: '
                f"{escape(fmt(value))}</title></rect>"
            )
        shown = fmt(totals[i])
        if totals[i] > 0 and _CHAR_W * len(shown) <= slot + 4:
            body.append(
                f'<text class="value" x="{x + bar_w / 2:.1f}" y="{y - 5:.1f}" '
                f'text-anchor="middle">{escape(shown)}</text>'
            )
        if i % step == 0:
            body.append(
                f'<text class="label" x="{x + bar_w / 2:.1f}" y="{base_y + 16}" '
                f'text-anchor="middle">{escape(_clip(label, 12))}</text>'
            )
    legend_x = left
    for name, css in series:
        body.append(
            f'<rect class="{escape(css)}" x="{legend_x}" y="262" width="12" height="12"/>'
            f'<text class="label" x="{legend_x + 18}" y="272">{escape(name)}</text>'
        )
        legend_x += 30 + 8 * len(name)
    return _svg(kind, title, 285, body)


def heatmap(
    kind: str,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    fmt: Callable[[float], str],
    empty: str = "No data",
) -> Markup:
    """A grid of cells shaded by value (rows x columns), each cell labelled."""
    flat = [v for row in values for v in row]
    if not rows or not columns or max(flat, default=0) <= 0:
        return _empty(kind, title, empty)
    top = max(flat)
    cell_w = (WIDTH - LABEL_W - 10) / len(columns)
    cell_h, head = 26, 46
    body: list[str] = []
    for j, column in enumerate(columns):
        x = LABEL_W + j * cell_w + cell_w / 2
        # A heading wider than its cell goes on two lines, split between words.
        words = column.replace("_", " ").split()
        lines = [" ".join(words)]
        if _CHAR_W * len(lines[0]) > cell_w and len(words) > 1:
            cut = min(
                range(1, len(words)),
                key=lambda k: max(len(" ".join(words[:k])), len(" ".join(words[k:]))),
            )
            lines = [" ".join(words[:cut]), " ".join(words[cut:])]
        for n, line in enumerate(lines):
            y = head - 10 - 13 * (len(lines) - 1 - n)
            body.append(
                f'<text class="label small" x="{x:.1f}" y="{y}" text-anchor="middle">'
                f"{escape(_clip(line, 14))}</text>"
            )
    for i, label in enumerate(rows):
        y = head + i * cell_h
        body.append(
            f'<text class="label" x="{LABEL_W - 8}" y="{y + 17}" text-anchor="end">'
            f"{escape(_clip(label))}</text>"
        )
        for j, value in enumerate(values[i]):
            x = LABEL_W + j * cell_w
            level = 0.08 + 0.92 * (value / top) if value > 0 else 0.0
            body.append(
                f'<rect class="cell" x="{x + 1:.1f}" y="{y + 1}" width="{cell_w - 2:.1f}" '
                f'height="{cell_h - 2}" fill-opacity="{level:.2f}"><title>{escape(label)}, '
                f"{escape(columns[j])}: {escape(fmt(value))}</title></rect>"
                f'<text class="cell-text{" on-dark" if level > 0.55 else ""}" '
                f'x="{x + cell_w / 2:.1f}" y="{y + 17}" text-anchor="middle">'
                f"{escape(fmt(value))}</text>"
            )
    return _svg(kind, title, head + len(rows) * cell_h + PAD, body)
