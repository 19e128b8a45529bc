"""A connector whose server is not there says which host it tried and what to do about it."""

from __future__ import annotations

import socket

import pytest

from connectors.errors import ClosedloopError


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _hint(message: str, port: int) -> None:
    assert f"127.0.0.1:{port}" in message
    assert "`closedloop sandbox serve`" in message


def test_hubspot_names_the_host_and_the_remedy(closed_port: int) -> None:
    from connectors.hubspot.connector import HubSpotConnector
    from connectors.hubspot.settings import HubSpotSettings

    settings = HubSpotSettings.model_validate(
        {
            "host": f"http://127.0.0.1:{closed_port}",
            "auth": {"method": "private_app", "access_token": "pat-x"},
        }
    )
    with HubSpotConnector("hubspot", settings) as crm:
        results = crm.check()
    failed = [r for r in results if not r.ok]
    assert failed
    assert "cannot connect to HubSpot" in failed[0].detail
    _hint(failed[0].detail, closed_port)
    assert "NewConnectionError talking to HubSpot" not in failed[0].detail


def test_salesforce_names_the_host_and_the_remedy(closed_port: int) -> None:
    from connectors.salesforce.client import SalesforceClient
    from connectors.salesforce.settings import SalesforceSettings

    settings = SalesforceSettings.model_validate(
        {
            "instance_url": f"https://127.0.0.1:{closed_port}",
            "auth": {"method": "session", "session_id": "00Dx!y"},
            "max_attempts": 1,
        }
    )
    client = SalesforceClient(settings, sleep=lambda _s: None)
    with pytest.raises(ClosedloopError) as caught:
        client.versions(budgeted=False)
    assert "cannot connect to" in str(caught.value)
    _hint(str(caught.value), closed_port)


def test_marketo_names_the_host_and_the_remedy(closed_port: int) -> None:
    from connectors.marketo.settings import MarketoSettings
    from connectors.marketo.source import MarketoSource

    settings = MarketoSettings.model_validate(
        {
            "base_url": f"http://127.0.0.1:{closed_port}",
            "client_id": "c",
            "client_secret": "s",
            "max_attempts": 1,
        }
    )
    with MarketoSource("marketo", settings) as source, pytest.raises(ClosedloopError) as caught:
        source.client.refresh_token()
    _hint(str(caught.value), closed_port)
