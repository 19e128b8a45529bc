"""HubSpot rules from docs/vendor-behaviour.md that no other test pinned, through real HTTP.

Each test names the rule it pins; the rule's vendor source is in docs/vendor-behaviour.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import PublicObjectSearchRequest
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException

from sandbox import credentials
from sandbox.core import LoopbackServer, SandboxState
from sandbox.hubspot import HubSpotStore, build_app


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxState, str]]:
    state = SandboxState()
    server = LoopbackServer(build_app(state))
    server.start()
    yield state, server.url
    server.stop()


@pytest.fixture
def hub(served: tuple[SandboxState, str]) -> tuple[HubSpotStore, str]:
    state, url = served
    state.reset()
    store: HubSpotStore = state.vendors["hubspot"]
    store.rate_limit_max = 190
    store.search_per_second = 1000
    return store, url


@pytest.fixture
def client(hub: tuple[HubSpotStore, str]) -> HubSpot:
    return HubSpot(access_token=credentials.HUBSPOT_TOKEN, host=hub[1])


def _groups(*sizes: int) -> list[dict[str, Any]]:
    """Filter groups of the given sizes, every filter true for every contact."""
    condition = {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}
    return [{"filters": [dict(condition) for _ in range(size)]} for size in sizes]


def _search(client: HubSpot, groups: list[dict[str, Any]]) -> Any:
    return client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(filter_groups=groups, limit=1)
    )


def test_search_takes_five_groups_of_up_to_ten_filters_and_twenty_five_in_all(
    client: HubSpot,
) -> None:
    assert _search(client, _groups(10, 10, 5)).total == 0
    assert _search(client, _groups(5, 5, 5, 5, 5)).total == 0


@pytest.mark.parametrize(
    ("sizes", "limit"),
    [((1, 1, 1, 1, 1, 1), "filter groups"), ((11,), "filters in a group"), ((10, 10, 6), "25")],
)
def test_search_beyond_the_filter_limits_is_a_bad_request_naming_the_limit(
    client: HubSpot, sizes: tuple[int, ...], limit: str
) -> None:
    with pytest.raises(ContactsApiException) as raised:
        _search(client, _groups(*sizes))
    assert raised.value.status == 400
    assert '"category":"VALIDATION_ERROR"' in raised.value.body
    assert limit in raised.value.body


def test_error_bodies_carry_status_message_category_and_correlation_id(
    hub: tuple[HubSpotStore, str],
) -> None:
    answer = httpx.get(
        f"{hub[1]}/crm/v3/objects/contacts/999999",
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
    )
    body = answer.json()
    assert answer.status_code == 404
    assert body["status"] == "error"
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["message"]
    assert body["correlationId"]
