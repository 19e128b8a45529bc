"""Charts stay readable when they hold many columns."""

from __future__ import annotations

import itertools
import re

from sync.report.charts import stacked_columns


def test_many_columns_get_axis_labels_that_do_not_overlap_and_no_zero_labels() -> None:
    months = [(f"{2025 + m // 12}-{m % 12 + 1:02d}", [float(m % 3) * 1000]) for m in range(24)]
    svg = str(
        stacked_columns(
            "pipeline", "Won revenue", months, [("won", "won")], fmt=lambda v: f"{v / 1000:.0f}k"
        )
    )

    axis = re.findall(r'<text class="label" x="([\d.]+)" y="246.0"[^>]*>([^<]+)</text>', svg)
    assert 4 <= len(axis) < 24
    assert axis[0][1] == "2025-01"
    for (x1, label), (x2, _) in itertools.pairwise(axis):
        assert float(x2) - float(x1) >= 7 * len(label)  # about 7 units a character
    values = re.findall(r'<text class="value"[^>]*>([^<]+)</text>', svg)
    assert "0" not in values
    assert len(values) == sum(1 for _, v in months if v[0] > 0)


def test_a_few_columns_are_all_labelled() -> None:
    svg = str(stacked_columns("c", "t", [("Q1", [1.0]), ("Q2", [0.0]), ("Q3", [3.0])],
                              [("won", "won")]))  # fmt: skip
    axis = re.findall(r'<text class="label" x="[\d.]+" y="246.0"[^>]*>([^<]+)</text>', svg)
    assert axis == ["Q1", "Q2", "Q3"]


def test_heatmap_headings_too_wide_for_their_cell_go_on_two_lines() -> None:
    from sync.report.charts import heatmap

    models = ["W-shaped", "Lead creation", "CRM primary campaign"] + [f"M{i}" for i in range(6)]
    svg = str(heatmap("attribution", "t", ["A"], models, [[1.0] * 9], fmt=str))
    headings = re.findall(r'<text class="label small"[^>]*>([^<]+)</text>', svg)
    assert headings[:5] == ["W-shaped", "Lead", "creation", "CRM primary", "campaign"]
