"""The HubSpot caller: rate-limit headers, burst and daily limits, OAuth refresh, errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import Cursor
from connectors.errors import AuthError, RateLimited, Transient
from connectors.hubspot.connector import HubSpotConnector
from connectors.ratelimit import ManualClock
from sandbox import credentials
from sandbox.core import free_port
from sandbox.hubspot import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, HubSpotStore
from sandbox.server import SandboxServer
from sync.metrics import budget_remaining_of
from tests.connectors.hubspot.conftest import known_contacts, settings_for

Connect = Callable[..., HubSpotConnector]
OAUTH = {
    "method": "oauth",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "refresh_token": REFRESH_TOKEN,
}


def _emails(server: SandboxServer, count: int = 3) -> list[str]:
    return [e for e, _ in known_contacts(server, count)]


def test_the_burst_window_adopts_the_portals_limit_from_the_headers(
    portal: SandboxServer, connect: Connect
) -> None:
    portal.store("hubspot").rate_limit_max = 40
    connector = connect(burst_limit_per_10s=100)
    connector.resolve_people(_emails(portal))
    assert connector.client.window.calls == 40


def test_the_client_waits_for_a_free_slot_instead_of_exceeding_the_burst_limit(
    portal_readonly: SandboxServer, reader: Connect, clock: ManualClock
) -> None:
    connector = reader(burst_limit_per_10s=3)
    for email in _emails(portal_readonly, 5):
        assert connector.resolve_people([email])
    assert sum(clock.sleeps) >= 10.0
    assert "contacts.batch_read" in portal_readonly.state.counts("hubspot")


def test_a_429_waits_the_interval_and_repeats_the_call(
    portal_readonly: SandboxServer, reader: Connect, clock: ManualClock
) -> None:
    portal_readonly.set_faults("hubspot:429=1.0")
    connector = reader(max_rate_waits=3)
    with pytest.raises(RateLimited) as caught:
        connector.resolve_people(_emails(portal_readonly))
    assert portal_readonly.state.total_calls("hubspot") == 4
    assert caught.value.retry_after == 10.0
    assert sum(clock.sleeps) >= 30.0


def test_a_burst_limit_that_stays_spent_blames_processes_sharing_the_app_not_the_portal(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    # HubSpot's 10-s window is per private app (per OAuth app install): other integrations of
    # the portal, with their own apps, do not spend it; other processes with this app do.
    portal_readonly.set_faults("hubspot:429=1.0")
    with pytest.raises(RateLimited) as caught:
        reader(max_rate_waits=1).resolve_people(_emails(portal_readonly))
    message = str(caught.value)
    assert "same app" in message
    assert "burst_limit_per_10s" in message
    assert "integrations" not in message


def test_a_private_apps_daily_budget_share_stops_calls_with_rate_limited(
    portal: SandboxServer, connect: Connect
) -> None:
    portal.store("hubspot").daily_limit = 100
    connector = connect(daily_budget_share=0.05)  # 5 of the portal's 100 calls a day

    def resolve_one_by_one() -> None:
        for email in _emails(portal, 10):
            connector.resolve_people([email])

    with pytest.raises(RateLimited) as caught:
        resolve_one_by_one()
    assert caught.value.resume_at is not None
    assert portal.state.total_calls("hubspot") == 5
    # The account's own figures from the Daily headers (sync.budgets reads them).
    assert connector.client.daily_usage == (5, 100)


def test_an_oauth_connection_never_stops_for_a_daily_budget(
    portal: SandboxServer, connect: Connect
) -> None:
    # Public (OAuth) apps have no daily limit: no share of one can stop them.
    store: HubSpotStore = portal.store("hubspot")
    store.daily_limit = 2  # the private app's; it must not touch the OAuth app
    connector = connect(auth=OAUTH, daily_budget_share=0.00002)  # 5 of a Starter's 250,000
    emails = _emails(portal, 10)
    for email in emails:
        assert connector.resolve_people([email])
    assert portal.state.counts("hubspot")["contacts.batch_read"] == len(emails)
    assert store.refused == {}
    assert budget_remaining_of(connector) is None


def test_searches_take_no_slot_of_the_burst_window(
    portal: SandboxServer, connect: Connect, clock: ManualClock
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    store.rate_limit_max = 4
    connector = connect(burst_limit_per_10s=4, search_per_second=100)
    assert portal.world is not None
    until = portal.world.now
    connector.resolve_people(_emails(portal, 1))  # a contacts read and an associations read
    connector.resolve_people(_emails(portal, 2)[1:])  # the 10-second window is now full
    for _ in range(3):
        for _page in connector.pull_changes("accounts", Cursor(), until):
            pass
    counts = portal.state.counts("hubspot")
    assert counts["companies.search"] >= 3
    assert store.refused == {}
    assert clock.sleeps == []
    assert connector.client.rate_waits == 0


def test_the_portals_daily_limit_surfaces_as_rate_limited(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    store: HubSpotStore = portal_readonly.store("hubspot")
    store.daily_limit = 0
    with pytest.raises(RateLimited, match="daily"):
        reader().resolve_people(_emails(portal_readonly))


def test_an_oauth_app_refreshes_its_expired_token_and_repeats_the_call_once(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    connector = reader(auth=OAUTH)
    assert connector.resolve_people(_emails(portal_readonly, 1))
    store: HubSpotStore = portal_readonly.store("hubspot")
    store.revoke(connector.client._token or "")
    assert connector.resolve_people(_emails(portal_readonly, 2))
    counts = portal_readonly.state.counts("hubspot")
    assert counts["oauth.token"] == 2
    assert counts["contacts.batch_read"] == 3


def test_a_rejected_refresh_token_is_an_auth_error_without_the_secret(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    connector = reader(auth={**OAUTH, "refresh_token": "stale-refresh-value"})
    with pytest.raises(AuthError) as caught:
        connector.resolve_people(_emails(portal_readonly, 1))
    assert "re-authorise" in str(caught.value)
    assert "stale-refresh-value" not in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)


def test_a_wrong_private_app_token_is_an_auth_error_without_the_token(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    bad = {"method": "private_app", "access_token": "pat-na1-wrong-token-value"}
    with pytest.raises(AuthError) as caught:
        reader(auth=bad).resolve_people(_emails(portal_readonly, 1))
    assert "pat-na1-wrong-token-value" not in str(caught.value)
    assert credentials.HUBSPOT_TOKEN not in str(caught.value)


def test_server_errors_on_reads_are_retried(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    portal_readonly.set_faults("hubspot:503=0.5", seed=3)
    connector = reader(max_attempts=10)
    found = connector.resolve_people(_emails(portal_readonly, 3))
    assert len(found) == 3
    assert connector.calls > 2


def test_an_unreachable_host_is_transient_not_a_urllib3_error(clock: ManualClock) -> None:
    settings = settings_for_closed_port()
    connector = HubSpotConnector("hubspot", settings, clock=clock)
    with pytest.raises(Transient, match="HubSpot"):
        connector.resolve_people(["someone@example.com"])
    assert connector.calls == settings.max_attempts


def settings_for_closed_port() -> object:
    from connectors.hubspot.settings import HubSpotSettings

    return HubSpotSettings.model_validate(
        {
            "host": f"http://127.0.0.1:{free_port()}",
            "auth": {"method": "private_app", "access_token": credentials.HUBSPOT_TOKEN},
            "max_attempts": 2,
            "timeout_s": 2,
        }
    )


def test_api_objects_are_created_once_and_reused(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    connector = reader()
    for _ in range(3):
        connector.resolve_people(_emails(portal_readonly, 1))
    assert connector.client.api("objects_batch") is connector.client.api("objects_batch")
    assert len(connector.client._configs) == 2  # objects batch + associations, nothing more


def test_settings_for_the_sandbox_are_valid(portal_readonly: SandboxServer) -> None:
    assert settings_for(portal_readonly).host == portal_readonly.hubspot_url
