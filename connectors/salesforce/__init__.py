"""The Salesforce connector type: a CRM (touch sink on Task timelines + change source).

``INFO`` is what the ``closedloop.connectors`` entry point ``salesforce`` names. The connector
class is imported only when a connection is built, so ``closedloop config check`` and
``--help`` never load simple-salesforce.
"""

from __future__ import annotations

import importlib
from typing import Any

from connectors.registry import ConnectorInfo, SinkInfo
from connectors.salesforce.settings import SalesforceSettings

__all__ = ["INFO"]


def _build(connection_name: str, settings: SalesforceSettings) -> Any:
    module = importlib.import_module("connectors.salesforce.connector")
    return module.SalesforceConnector(connection_name, settings)


INFO = ConnectorInfo(
    name="salesforce",
    roles=frozenset({"crm"}),
    settings_model=SalesforceSettings,
    factory=_build,
    description="Salesforce CRM: touches as Tasks, dispositions, accounts and opportunities",
    # Fields are read from the org (``describe_fields``); a Composite request of 5 collections
    # of 200 records is one counted push call (ARCHITECTURE.md "Limits").
    sink=SinkInfo(
        label="Salesforce org",
        person_objects=("Lead", "Contact"),
        deal_objects=("Opportunity",),
        default_objects=("Task", "Lead", "Contact", "Opportunity"),
        push_capacity=1000,
    ),
)
