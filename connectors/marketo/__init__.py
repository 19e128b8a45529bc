"""The Marketo connector type: Marketo Engage activities as touches (an activity source).

``INFO`` is what the ``closedloop.connectors`` entry point ``marketo`` names. The connector class
is imported only when a connection is built, so ``closedloop config check`` and ``--help`` stay
fast. Modules: ``settings`` (the connection's settings), ``auth`` (OAuth client credentials),
``errors`` (the error-code table), ``client`` (limits, retries), ``activities`` (activity types
and touch mapping), ``source`` (``MarketoSource``: pulls, lead lookups, static lists, checks).
"""

from __future__ import annotations

import importlib
from typing import Any

from connectors.marketo.settings import MarketoSettings
from connectors.registry import ConnectorInfo

__all__ = ["INFO", "MarketoSettings"]


def _build(connection_name: str, settings: MarketoSettings) -> Any:
    module = importlib.import_module("connectors.marketo.source")
    return module.MarketoSource(connection_name, settings)


INFO = ConnectorInfo(
    name="marketo",
    roles=frozenset({"source"}),
    settings_model=MarketoSettings,
    factory=_build,
    description="Marketo Engage activities (email, web, forms, programs) as touches",
)
