"""The sync-health page of ``closedloop serve`` (``/ui/``): overview, error groups, actions, runs.

``sync.ui.app`` builds the routes, ``sync.ui.auth`` signs people in, ``sync.ui.queries`` reads
the ledger, ``sync.ui.grouping`` groups dead letters, ``sync.ui.settings`` is the ``ui:`` section.
"""
