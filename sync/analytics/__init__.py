"""Closed-loop analytics (issue 10): pure functions over plain records, plus ledger loaders.

What each module owns:

- ``records``: the plain records (events, people, memberships, campaigns, spend, deals), and
  ``Dataset.as_of`` (them as they stood at a moment); ``load`` fills them from the ledger (the
  only module here that reads the database)
- ``lifecycle``: stage histories per person, time in stage, current stage
- ``sla``: MQL hand-off -> first sales action, targets and breaches, grouped summaries
- ``recycling``: share of handed-over leads sales sends back, by rep and source
- ``reasons``: why sales disqualified or recycled leads, counted per reason and grouped
- ``funnel``: conversion between stages for cohorts (month, campaign, channel)
- ``deals``: new opportunities, pipeline, win rate, revenue
- ``roi``: spend in a period, cost per lead, ROI per campaign per attribution model
- ``credits``: attributed revenue per campaign (CRM primary campaign + ``sync.attribution``)
- ``stats`` / ``experiments``: Welch's t interval and the rep-group comparison
- ``periods``: ``--period`` values and monthly buckets
- ``summary``: every metric of one report as ``ReportData``
- ``settings``: the optional ``analytics:`` section of closedloop.yaml

Nothing here imports the heavier modules at package import, so ``sync.config`` can import
``sync.analytics.settings`` cheaply.
"""

from __future__ import annotations
