"""Alerts: notices to Slack, e-mail or a signed webhook when a sync condition starts and clears.

``sync.alerts.settings`` is the ``alerts:`` section of closedloop.yaml, ``sync.alerts.channels``
sends one notice to one channel, ``sync.alerts.conditions`` reads the conditions from the ledger,
and ``sync.alerts.monitor`` compares them with the ``alert_state`` table and sends a notice only
when one starts or clears.
"""
