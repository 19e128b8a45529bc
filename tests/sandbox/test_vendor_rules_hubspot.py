"""HubSpot rules from docs/vendor-behaviour.md that no other test pinned, through real HTTP.

Each test names the rule it pins; the rule's vendor source is in docs/vendor-behaviour.md.
"""

from __future__ import annotations

import json
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


def _call(hub: tuple[HubSpotStore, str], method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    return httpx.request(method, hub[1] + path, headers=headers, timeout=30, **kw)


def _contacts(hub: tuple[HubSpotStore, str], count: int) -> list[str]:
    inputs = [{"properties": {"email": f"p{i}@example.com"}} for i in range(count)]
    ids: list[str] = []
    for start in range(0, count, 100):
        answer = _call(
            hub,
            "POST",
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": inputs[start : start + 100]},
        )
        assert answer.status_code == 201, answer.text
        ids += [r["id"] for r in answer.json()["results"]]
    return ids


def _property_errors(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["category"] == "VALIDATION_ERROR"
    return [e["error"] for e in json.loads(body["message"].split(": ", 1)[1])]


def _groups(*sizes: int) -> list[dict[str, Any]]:
    """Filter groups of the given sizes, every filter true for every contact."""
    condition = {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}
    return [{"filters": [dict(condition) for _ in range(size)]} for size in sizes]


def _search(client: HubSpot, groups: list[dict[str, Any]], limit: int = 1) -> Any:
    return client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(filter_groups=groups, limit=limit)
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


def test_filter_groups_are_ored_and_the_filters_inside_a_group_anded(
    hub: tuple[HubSpotStore, str], client: HubSpot
) -> None:
    ids = _contacts(hub, 4)
    same = {"propertyName": "email", "operator": "EQ"}
    groups = [
        {"filters": [{**same, "value": "p0@example.com"}, {**same, "value": "p1@example.com"}]},
        {"filters": [{**same, "value": "P2@EXAMPLE.COM"}]},
        {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": [ids[3]]}]},
    ]
    found = _search(client, groups, limit=10)
    assert sorted(r.id for r in found.results) == sorted(ids[2:])


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"firstname": "x" * 65_537}, "INVALID_LENGTH"),
        ({"createdate": "2026-01-01T00:00:00Z"}, "READ_ONLY_VALUE"),
        ({"hubspot_owner_id": "123"}, "INVALID_OWNER_ID"),
        ({"email": "not-an-address"}, "INVALID_EMAIL"),
        ({"lifecyclestage": "hot"}, "INVALID_OPTION"),
        ({"no_such_property": "1"}, "PROPERTY_DOESNT_EXIST"),
    ],
)
def test_a_value_hubspot_refuses_fails_the_record_with_its_error_code(
    hub: tuple[HubSpotStore, str], properties: dict[str, str], code: str
) -> None:
    answer = _call(hub, "POST", "/crm/v3/objects/contacts", json={"properties": properties})
    assert _property_errors(answer) == [code]


def test_a_string_of_65536_characters_is_accepted(hub: tuple[HubSpotStore, str]) -> None:
    answer = _call(
        hub, "POST", "/crm/v3/objects/contacts", json={"properties": {"firstname": "x" * 65_536}}
    )
    assert answer.status_code == 201


def test_a_deal_needs_a_name_and_a_stage(hub: tuple[HubSpotStore, str]) -> None:
    answer = _call(hub, "POST", "/crm/v3/objects/deals", json={"properties": {"amount": "10"}})
    assert sorted(_property_errors(answer)) == ["REQUIRED_PROPERTY", "REQUIRED_PROPERTY"]


def test_datetimes_are_taken_as_epoch_ms_or_iso_and_read_back_as_iso(
    hub: tuple[HubSpotStore, str],
) -> None:
    for stamp in ("1780000000000", "2026-05-28T20:26:40Z"):
        answer = _call(
            hub,
            "POST",
            "/crm/v3/objects/notes",
            json={"properties": {"hs_timestamp": stamp, "hs_note_body": "hi"}},
        )
        assert answer.status_code == 201
        assert answer.json()["properties"]["hs_timestamp"] == "2026-05-28T20:26:40.000Z"


def test_batch_update_writes_known_records_and_reports_unknown_ids_as_multi_status(
    hub: tuple[HubSpotStore, str],
) -> None:
    (known,) = _contacts(hub, 1)
    inputs = [
        {"id": known, "properties": {"firstname": "Ada"}},
        {"id": "999999", "properties": {"firstname": "Nobody"}},
    ]
    answer = _call(hub, "POST", "/crm/v3/objects/contacts/batch/update", json={"inputs": inputs})
    body = answer.json()
    assert answer.status_code == 207
    assert [r["id"] for r in body["results"]] == [known]
    assert body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["999999"]


def test_upsert_needs_an_id_property_with_unique_values(hub: tuple[HubSpotStore, str]) -> None:
    by_name = [{"idProperty": "firstname", "id": "Ada", "properties": {"lastname": "L"}}]
    answer = _call(hub, "POST", "/crm/v3/objects/contacts/batch/upsert", json={"inputs": by_name})
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_object_lists_page_at_most_100_records_with_an_after_cursor(
    hub: tuple[HubSpotStore, str],
) -> None:
    _contacts(hub, 101)
    assert _call(hub, "GET", "/crm/v3/objects/contacts", params={"limit": 101}).status_code == 400
    first = _call(hub, "GET", "/crm/v3/objects/contacts", params={"limit": 100}).json()
    after = first["paging"]["next"]["after"]
    rest = _call(hub, "GET", "/crm/v3/objects/contacts", params={"after": after}).json()
    assert len(first["results"]) == 100
    assert len(rest["results"]) == 1
    assert "paging" not in rest


def test_list_memberships_page_at_most_250_and_dynamic_lists_refuse_manual_changes(
    hub: tuple[HubSpotStore, str],
) -> None:
    ids = _contacts(hub, 251)
    manual = _call(
        hub,
        "POST",
        "/crm/v3/lists",
        json={"name": "Nurture", "objectTypeId": "0-1", "processingType": "MANUAL"},
    ).json()["list"]["listId"]
    added = _call(hub, "PUT", f"/crm/v3/lists/{manual}/memberships/add", json=[*ids, "999999"])
    assert added.json()["recordIdsMissing"] == ["999999"]
    page = _call(hub, "GET", f"/crm/v3/lists/{manual}/memberships", params={"limit": 500}).json()
    assert len(page["results"]) == 250
    assert "after" in page["paging"]["next"]
    dynamic = _call(
        hub,
        "POST",
        "/crm/v3/lists",
        json={"name": "Active", "objectTypeId": "0-1", "processingType": "DYNAMIC"},
    ).json()["list"]["listId"]
    refused = _call(hub, "PUT", f"/crm/v3/lists/{dynamic}/memberships/add", json=ids[:1])
    assert refused.status_code == 400
    twin = _call(
        hub,
        "POST",
        "/crm/v3/lists",
        json={"name": "Nurture", "objectTypeId": "0-1", "processingType": "MANUAL"},
    )
    assert twin.status_code == 400


def test_association_batch_read_takes_at_most_1000_ids(hub: tuple[HubSpotStore, str]) -> None:
    inputs = [{"id": str(i)} for i in range(1001)]
    answer = _call(
        hub, "POST", "/crm/v4/associations/contacts/companies/batch/read", json={"inputs": inputs}
    )
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_association_batch_create_takes_at_most_2000_inputs(hub: tuple[HubSpotStore, str]) -> None:
    link = {"from": {"id": "1"}, "to": {"id": "2"}, "types": []}
    answer = _call(
        hub,
        "POST",
        "/crm/v4/associations/contacts/companies/batch/create",
        json={"inputs": [link] * 2001},
    )
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_form_submissions_come_newest_first_50_a_page_at_most(
    hub: tuple[HubSpotStore, str],
) -> None:
    store = hub[0]
    form = "3b1e5c1a-0000-4000-8000-000000000001"
    store.data.forms[form] = {"id": form, "name": "Demo request"}
    store.data.submissions[form] = [
        {"conversionId": f"c{i}", "submittedAt": 1_780_000_000_000 - i, "values": []}
        for i in range(60)
    ]
    path = f"/form-integrations/v1/submissions/forms/{form}"
    first = _call(hub, "GET", path, params={"limit": 100}).json()
    rest = _call(hub, "GET", path, params={"after": first["paging"]["next"]["after"]}).json()
    stamps = [s["submittedAt"] for s in first["results"] + rest["results"]]
    assert len(first["results"]) == 50
    assert stamps == sorted(stamps, reverse=True)
    assert len(stamps) == 60


def test_email_events_come_1000_a_page_with_offset_and_has_more(
    hub: tuple[HubSpotStore, str],
) -> None:
    store = hub[0]
    store.data.email_events[:] = [
        {
            "id": f"e{i}",
            "type": "OPEN",
            "recipient": "a@example.com",
            "created": 1_780_000_000_000 - i,
            "emailCampaignId": 1,
        }
        for i in range(1001)
    ]
    first = _call(hub, "GET", "/email/public/v1/events", params={"limit": 5000}).json()
    rest = _call(hub, "GET", "/email/public/v1/events", params={"offset": first["offset"]}).json()
    assert (len(first["events"]), first["hasMore"]) == (1000, True)
    assert (len(rest["events"]), rest["hasMore"]) == (1, False)


def test_a_timeline_batch_takes_at_most_100_events(hub: tuple[HubSpotStore, str]) -> None:
    [contact] = _contacts(hub, 1)
    events = [
        {"eventTemplateId": "1001", "objectId": contact, "id": f"e{i}", "tokens": {"n": str(i)}}
        for i in range(101)
    ]
    path = "/crm/v3/timeline/events/batch/create"
    too_many = _call(hub, "POST", path, json={"inputs": events})
    assert too_many.status_code == 400
    assert too_many.json()["category"] == "VALIDATION_ERROR"
    assert "more than 100 inputs" in too_many.json()["message"]
    assert not hub[0].data.timeline_events
    assert _call(hub, "POST", path, json={"inputs": events[:100]}).status_code == 201
    assert len(hub[0].data.timeline_events) == 100


def _occurrence(**changes: Any) -> dict[str, Any]:
    return {"eventName": "pe123_content_downloaded", "objectId": "1", "properties": {}} | changes


@pytest.mark.parametrize(
    "accepted",
    [
        _occurrence(properties={f"p{i}": "x" for i in range(50)}),
        _occurrence(properties={"asset_name": "x" * 256}),
        _occurrence(properties={"hs_page_url": "x" * 1024, "hs_referrer": "x" * 1024}),
        _occurrence(properties={"download_link": "x" * 1024, "a" * 50: "1", "hs_screen_width": 9}),
        _occurrence(occurredAt="2026-05-14T10:00:00Z"),
        _occurrence(occurredAt=1_780_000_000_000),
        _occurrence(occurredAt="2001-01-01T00:00:00Z"),
        _occurrence(eventName="pe1_" + "a" * 50),
    ],
    ids=["50 properties", "256 characters", "url and referrer 1024", "link 1024, name of 50",
         "iso occurredAt", "epoch ms occurredAt", "occurredAt years back", "name of 50"],
)  # fmt: skip
def test_a_custom_event_within_hubspots_limits_is_recorded(
    hub: tuple[HubSpotStore, str], accepted: dict[str, Any]
) -> None:
    answer = _call(hub, "POST", "/events/v3/send", json=accepted)
    assert answer.status_code == 204, answer.text
    assert hub[0].data.behavioral_events == [accepted]


@pytest.mark.parametrize(
    ("refused", "reason"),
    [
        (_occurrence(properties={f"p{i}": "x" for i in range(51)}), "at most 50 properties"),
        (_occurrence(properties={"asset_name": "x" * 257}), "at most 256 characters"),
        (_occurrence(properties={"hs_page_url": "x" * 1025}), "at most 1024 characters"),
        (_occurrence(properties={"a" * 51: "1"}), "at most 50 characters"),
        (_occurrence(properties={"Asset_Name": "x"}), "lowercase letters"),
        (_occurrence(properties={"1st_asset": "x"}), "start with a letter"),
        (_occurrence(properties={"asset-name": "x"}), "lowercase letters"),
        (_occurrence(eventName="content_downloaded"), "pe<HubID>_<name>"),
        (_occurrence(eventName="pe123_Content"), "pe<HubID>_<name>"),
        (_occurrence(eventName="pe1_" + "a" * 51), "pe<HubID>_<name>"),
        (_occurrence(occurredAt="last tuesday"), "occurredAt"),
        (_occurrence(properties=["asset_name"]), "properties"),
    ],
    ids=["51 properties", "257 characters", "url 1025", "name of 51", "uppercase name",
         "name starting with a digit", "hyphen in name", "no pe prefix", "uppercase event name",
         "event name of 51", "unreadable occurredAt", "properties not an object"],
)  # fmt: skip
def test_a_custom_event_beyond_hubspots_limits_is_refused_and_its_batch_with_it(
    hub: tuple[HubSpotStore, str], refused: dict[str, Any], reason: str
) -> None:
    alone = _call(hub, "POST", "/events/v3/send", json=refused)
    assert alone.status_code == 400
    assert alone.json()["category"] == "VALIDATION_ERROR"
    assert reason in alone.json()["message"]
    batch = _call(hub, "POST", "/events/v3/send/batch", json={"inputs": [_occurrence(), refused]})
    assert batch.status_code == 400
    assert reason in batch.json()["message"]
    assert hub[0].data.behavioral_events == []


def test_a_search_query_takes_at_most_3000_characters(
    hub: tuple[HubSpotStore, str], client: HubSpot
) -> None:
    _contacts(hub, 1)
    found = client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(query="p" * 3000, limit=1)
    )
    assert found.total == 0
    with pytest.raises(ContactsApiException) as raised:
        client.crm.contacts.search_api.do_search(
            PublicObjectSearchRequest(query="p" * 3001, limit=1)
        )
    assert raised.value.status == 400
    assert '"category":"VALIDATION_ERROR"' in raised.value.body
    assert "3000 characters" in raised.value.body


# -- communication preferences and owners ---------------------------------------------------------

_V3 = "/communication-preferences/v3"
_V4 = "/communication-preferences/v4/statuses"


def test_v3_subscribe_refuses_an_address_that_unsubscribed(hub: tuple[HubSpotStore, str]) -> None:
    email = {"emailAddress": "ann@example.com", "subscriptionId": "1001"}

    subscribed = _call(hub, "POST", f"{_V3}/subscribe", json=email)
    unsubscribed = _call(hub, "POST", f"{_V3}/unsubscribe", json=email)
    again = _call(hub, "POST", f"{_V3}/unsubscribe", json=email)
    resubscribed = _call(hub, "POST", f"{_V3}/subscribe", json=email)

    assert subscribed.status_code == 200
    assert unsubscribed.status_code == 200
    assert unsubscribed.json()["status"] == "NOT_SUBSCRIBED"
    assert again.status_code == 400
    assert resubscribed.status_code == 400
    assert resubscribed.json()["category"] == "VALIDATION_ERROR"
    status = _call(hub, "GET", f"{_V3}/status/email/ann@example.com").json()
    assert {s["id"]: s["status"] for s in status["subscriptionStatuses"]}["1001"] == (
        "NOT_SUBSCRIBED"
    )


def test_v4_unsubscribe_all_is_batched_read_back_and_v3_cannot_resubscribe(
    hub: tuple[HubSpotStore, str],
) -> None:
    inputs = {"inputs": ["ann@example.com", "bo@example.com", "not-an-address"]}

    missing_channel = _call(hub, "POST", f"{_V4}/batch/unsubscribe-all", json=inputs)
    done = _call(hub, "POST", f"{_V4}/batch/unsubscribe-all?channel=EMAIL", json=inputs)
    read = _call(hub, "POST", f"{_V4}/batch/unsubscribe-all/read?channel=EMAIL",
                 json={"inputs": ["ann@example.com", "cy@example.com"]})  # fmt: skip
    resubscribed = _call(
        hub, "POST", f"{_V3}/subscribe",
        json={"emailAddress": "bo@example.com", "subscriptionId": "1002"},
    )  # fmt: skip

    assert missing_channel.status_code == 400
    assert done.status_code == 200
    body = done.json()
    assert [r["subscriberIdString"] for r in body["results"]] == ["ann@example.com",
                                                                  "bo@example.com"]  # fmt: skip
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"] == {"subscriberIdString": ["not-an-address"]}
    wide = {r["subscriberIdString"]: r["wideStatuses"][0]["status"] for r in read.json()["results"]}
    assert wide == {"ann@example.com": "UNSUBSCRIBED", "cy@example.com": "NOT_SPECIFIED"}
    assert resubscribed.status_code == 400


def test_v4_batch_write_sets_one_subscription_and_batch_read_returns_every_type(
    hub: tuple[HubSpotStore, str],
) -> None:
    write = {"inputs": [{"subscriberIdString": "ann@example.com", "subscriptionId": 1001,
                         "statusState": "UNSUBSCRIBED", "channel": "EMAIL"}]}  # fmt: skip
    unknown = {"inputs": [{**write["inputs"][0], "subscriptionId": 4242}]}

    assert _call(hub, "POST", f"{_V4}/batch/write", json=write).status_code == 200
    assert _call(hub, "POST", f"{_V4}/batch/write", json=unknown).status_code == 400
    read = _call(hub, "POST", f"{_V4}/batch/read?channel=EMAIL",
                 json={"inputs": ["ann@example.com"]})  # fmt: skip
    [result] = read.json()["results"]
    assert {s["subscriptionId"]: s["status"] for s in result["statuses"]} == {
        1001: "UNSUBSCRIBED",
        1002: "NOT_SPECIFIED",
    }
    definitions = _call(hub, "GET", "/communication-preferences/v4/definitions").json()
    assert [d["name"] for d in definitions["results"]] == ["Marketing Information", "One to One"]


def test_an_owner_is_read_by_id_and_an_unknown_one_is_404(hub: tuple[HubSpotStore, str]) -> None:
    store, _ = hub
    with store.lock:
        owner = store.data.add_owner("Hana Owner", "hana@example.com")

    found = _call(hub, "GET", f"/crm/v3/owners/{owner}")
    missing = _call(hub, "GET", "/crm/v3/owners/99999999")

    assert found.status_code == 200
    assert found.json()["email"] == "hana@example.com"
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def _notes_with(name: str, count: int) -> list[dict[str, Any]]:
    """Traced note inputs carrying the property ``name``."""
    return [
        {
            "properties": {"hs_timestamp": "1790000000000", name: f"k{i}"},
            "objectWriteTraceId": f"k{i}",
        }
        for i in range(count)
    ]


def test_notes_naming_a_property_the_portal_lacks_are_refused_and_none_is_created(
    hub: tuple[HubSpotStore, str],
) -> None:
    name = "closedloop_probe_key"
    path = "/crm/v3/objects/notes/batch/create"
    refused = _call(hub, "POST", path, json={"inputs": _notes_with(name, 3)})
    assert refused.status_code == 207, refused.text
    body = refused.json()
    assert body["results"] == []
    assert sorted(k for e in body["errors"] for k in e["context"]["objectWriteTraceId"]) == [
        "k0", "k1", "k2",
    ]  # fmt: skip
    for error in body["errors"]:
        assert error["category"] == "VALIDATION_ERROR"
        assert "PROPERTY_DOESNT_EXIST" in error["message"]
        assert f'"{name}"' in error["message"]
    created = _call(
        hub, "POST", "/crm/v3/properties/notes",
        json={"name": name, "label": "probe", "type": "string", "fieldType": "text",
              "groupName": "noteinformation"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    again = _call(hub, "POST", path, json={"inputs": _notes_with(name, 3)})
    assert again.status_code == 201, again.text
    assert len(again.json()["results"]) == 3


def test_a_search_filtering_on_a_property_the_portal_lacks_is_a_bad_request(
    hub: tuple[HubSpotStore, str],
) -> None:
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "closedloop_absent", "operator": "HAS_PROPERTY"}]}
        ],
        "limit": 10,
    }
    answer = _call(hub, "POST", "/crm/v3/objects/notes/search", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert "closedloop_absent" in answer.json()["message"]
