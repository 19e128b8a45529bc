"""The HubSpot connector type: a CRM (engagements, lifecycle changes) and a marketing source.

``INFO`` is what the ``closedloop.connectors`` entry point ``hubspot`` names. The connector
class is imported only when a connection is built, so ``closedloop config check`` and
``--help`` never load hubspot-api-client.
"""

from __future__ import annotations

import importlib
from typing import Any

from connectors.hubspot.settings import HubSpotSettings
from connectors.registry import ConnectorInfo

__all__ = ["INFO"]


def _build(connection_name: str, settings: HubSpotSettings) -> Any:
    module = importlib.import_module("connectors.hubspot.connector")
    return module.HubSpotConnector(connection_name, settings)


INFO = ConnectorInfo(
    name="hubspot",
    roles=frozenset({"crm", "source"}),
    settings_model=HubSpotSettings,
    factory=_build,
    description="HubSpot CRM (engagements, lifecycle stages) and marketing events as touches",
)
