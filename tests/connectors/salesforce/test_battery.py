"""The connector test kit against the sandbox org, over HTTPS with the real simple-salesforce."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from connectors.base import RenderedTouch
from connectors.salesforce.connector import SalesforceConnector
from connectors.testing import KitSpec, connector_battery
from sandbox import credentials
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import known_people, live, settings_for, task


@pytest.fixture
def kit(sandbox: SandboxServer) -> Iterator[KitSpec]:
    store = sandbox.store("salesforce")
    built: list[SalesforceConnector] = []

    def make(session_id: str = credentials.SALESFORCE_SESSION_ID) -> SalesforceConnector:
        auth = {"method": "session", "session_id": session_id}
        built.append(SalesforceConnector("crm", settings_for(sandbox, auth=auth)))
        return built[-1]

    people = known_people(store)[:40]

    def touches() -> Sequence[RenderedTouch]:
        return [task(f"kit:{n}", person["Id"]) for n, person in enumerate(people)]

    def count_written(keys: Sequence[str]) -> dict[str, int]:
        tasks = live(store, "Task")
        return {key: sum(1 for t in tasks if t.get("Closedloop_Key__c") == key) for key in keys}

    yield KitSpec(
        make=make,
        make_unauthorised=lambda: make("00Dbad!nope"),
        touches_to_push=touches,
        count_written=count_written,
        known_emails=[p["Email"] for p in people[:25]],
    )
    for connector in built:
        connector.close()


TestSalesforceBattery = connector_battery()
