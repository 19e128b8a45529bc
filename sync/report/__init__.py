"""The closed-loop report: one self-contained HTML file, or CSV / JSON exports (issue 10).

``write_report(engine, config, out_path)`` is the entry point (``closedloop report`` and
``closedloop demo`` call it). Modules: ``build`` (ledger + config -> ``ReportData`` -> file),
``html`` (Jinja2 template ``report.html.j2``), ``charts`` (inline SVG),
``export`` (CSV and JSON tables).
"""

from __future__ import annotations

from sync.report.build import ReportFormat, report_data, write_report

__all__ = ["ReportFormat", "report_data", "write_report"]
