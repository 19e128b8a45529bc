"""The HubSpot connector type: a CRM (engagements, lifecycle changes) and a marketing source.

``INFO`` is what the ``closedloop.connectors`` entry point ``hubspot`` names. The connector
class is imported only when a connection is built, so ``closedloop config check`` and
``--help`` never load hubspot-api-client.
"""

from __future__ import annotations

import importlib
from typing import Any

from connectors.hubspot.settings import HubSpotSettings
from connectors.registry import ConnectorInfo, SinkInfo

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
    # Properties are read from the portal (``describe_fields``); a batch of 100 records is one
    # counted push call (ARCHITECTURE.md "Limits").
    sink=SinkInfo(
        label="HubSpot portal",
        person_objects=("contact",),
        deal_objects=("deal",),
        default_objects=("note", "task", "contact", "deal"),
        push_capacity=100,
    ),
)
