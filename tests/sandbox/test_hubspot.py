"""The HubSpot emulator, driven through the real hubspot-api-client over loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.objects.notes import BatchInputSimplePublicObjectBatchInputForCreate
from hubspot.crm.objects.notes import PublicObjectSearchRequest as NotesSearchRequest
from hubspot.crm.objects.notes.exceptions import ApiException as NotesApiException
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.events.send import BatchedBehavioralEventHttpCompletionRequest
from hubspot.events.send.exceptions import ApiException as EventsApiException

from sandbox import credentials
from sandbox.core import FaultRule, LoopbackServer, SandboxState
from sandbox.hubspot import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    HubSpotStore,
    build_app,
)
from sandbox.seed import generate

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxState, str]]:
    state = SandboxState()
    server = LoopbackServer(build_app(state))
    server.start()
    yield state, server.url
    server.stop()


@pytest.fixture
def hub(served: tuple[SandboxState, str]) -> tuple[HubSpotStore, str, SandboxState]:
    state, url = served
    state.reset()
    store: HubSpotStore = state.vendors["hubspot"]
    fresh = HubSpotStore()  # the limits a test changed go back to HubSpot's
    for name in ("rate_limit_max", "oauth_rate_limit_max", "search_per_second", "daily_limit"):
        setattr(store, name, getattr(fresh, name))
    store.clock.rebase(NOW, frozen=True)
    return store, url, state


@pytest.fixture
def client(hub: tuple[HubSpotStore, str, SandboxState]) -> HubSpot:
    return HubSpot(access_token=credentials.HUBSPOT_TOKEN, host=hub[1])


def _upsert(client: HubSpot, emails: list[str], **props: str) -> object:
    inputs = [
        {"idProperty": "email", "id": email, "properties": {"firstname": "Ada", **props}}
        for email in emails
    ]
    return client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs)
    )


def test_contacts_batch_upsert_creates_then_updates_by_email(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    first = _upsert(client, ["a@example.com", "b@example.com"])
    assert [r.new for r in first.results] == [True, True]
    second = _upsert(client, ["a@example.com"], lastname="Lovelace")
    assert second.results[0].new is False
    assert second.results[0].id == first.results[0].id
    contacts = hub[0].dump()["objects"]["contacts"]
    assert contacts[first.results[0].id]["lastname"] == "Lovelace"
    assert len(contacts) == 2


def test_batch_read_by_email_reports_unknown_ids_as_multi_status(client: HubSpot) -> None:
    _upsert(client, ["known@example.com"])
    answer = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            properties=["firstname", "email"],
            inputs=[{"id": "known@example.com"}, {"id": "ghost@example.com"}],
        )
    )
    assert [r.properties["email"] for r in answer.results] == ["known@example.com"]
    assert answer.num_errors == 1
    assert answer.errors[0].category == "OBJECT_NOT_FOUND"
    assert answer.errors[0].context == {"ids": ["ghost@example.com"]}


def test_batch_of_more_than_100_inputs_is_rejected(client: HubSpot) -> None:
    emails = [f"p{i}@example.com" for i in range(101)]
    with pytest.raises(ContactsApiException) as raised:
        _upsert(client, emails)
    assert raised.value.status == 400
    assert "VALIDATION_ERROR" in raised.value.body
    assert "more than 100 inputs" in raised.value.body


def test_unknown_property_and_bad_option_fail_the_record(client: HubSpot) -> None:
    answer = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {"idProperty": "email", "id": "x@example.com", "properties": {"shoe_size": "9"}},
                {
                    "idProperty": "email",
                    "id": "y@example.com",
                    "properties": {"lifecyclestage": "hot"},
                },
                {
                    "idProperty": "email",
                    "id": "z@example.com",
                    "properties": {"lifecyclestage": "lead"},
                },
            ]
        )
    )
    assert [r.properties["email"] for r in answer.results] == ["z@example.com"]
    messages = " ".join(e.message for e in answer.errors)
    assert "PROPERTY_DOESNT_EXIST" in messages
    assert "INVALID_OPTION" in messages


def test_creating_a_contact_with_a_used_email_is_a_conflict(client: HubSpot) -> None:
    created = _upsert(client, ["dup@example.com"])
    with pytest.raises(ContactsApiException) as raised:
        client.crm.contacts.basic_api.create({"properties": {"email": "DUP@example.com"}})
    assert raised.value.status == 409
    assert f"Existing ID: {created.results[0].id}" in raised.value.body


def test_search_pages_through_every_match_with_total(client: HubSpot) -> None:
    for chunk in range(3):
        _upsert(client, [f"s{chunk}-{i}@example.com" for i in range(100)], lastname="Search")
    seen: list[str] = []
    after = None
    while True:
        page = client.crm.contacts.search_api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[
                    {"filters": [{"propertyName": "lastname", "operator": "EQ", "value": "search"}]}
                ],
                sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                properties=["email"],
                limit=200,
                after=after,
            )
        )
        assert page.total == 300
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(seen) == 300
    assert seen == sorted(seen, key=int)


def _modified_since(client: HubSpot, name: str, since: datetime) -> list[str]:
    page = client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {
                            "propertyName": name,
                            "operator": "GTE",
                            "value": str(int(since.timestamp() * 1000)),
                        }
                    ]
                }
            ],
            properties=["email"],
        )
    )
    return [r.properties["email"] for r in page.results]


def test_contacts_are_found_by_modification_time_on_lastmodifieddate(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    store = hub[0]
    _upsert(client, ["old@example.com", "edited@example.com"])
    boundary = store.clock.advance(3600)
    _upsert(client, ["new@example.com"])
    _upsert(client, ["edited@example.com"], lastname="Later")
    assert sorted(_modified_since(client, "lastmodifieddate", boundary)) == [
        "edited@example.com",
        "new@example.com",
    ]


def test_contacts_searched_on_hs_lastmodifieddate_come_back_without_their_changes(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    store = hub[0]
    _upsert(client, ["old@example.com"])
    boundary = store.clock.advance(3600)
    _upsert(client, ["new@example.com"])
    assert _modified_since(client, "hs_lastmodifieddate", boundary) == []
    # Companies (and deals) keep theirs in hs_lastmodifieddate.
    client.crm.companies.basic_api.create({"properties": {"name": "Changed Ltd"}})
    page = client.crm.companies.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {
                            "propertyName": "hs_lastmodifieddate",
                            "operator": "GTE",
                            "value": str(int(boundary.timestamp() * 1000)),
                        }
                    ]
                }
            ],
            properties=["name"],
        )
    )
    assert [r.properties["name"] for r in page.results] == ["Changed Ltd"]


def test_search_beyond_ten_thousand_results_is_a_bad_request(client: HubSpot) -> None:
    with pytest.raises(ContactsApiException) as raised:
        client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(after="10000", limit=10))
    assert raised.value.status == 400


def test_search_limit_above_200_is_rejected(client: HubSpot) -> None:
    with pytest.raises(ContactsApiException) as raised:
        client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=201))
    assert raised.value.status == 400


def test_search_has_its_own_per_second_limit(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    hub[0].search_per_second = 2
    request = PublicObjectSearchRequest(limit=1)
    client.crm.contacts.search_api.do_search(request)
    client.crm.contacts.search_api.do_search(request)
    with pytest.raises(ContactsApiException) as raised:
        client.crm.contacts.search_api.do_search(request)
    assert raised.value.status == 429
    assert '"policyName":"SECONDLY"' in raised.value.body
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in raised.value.headers)
    assert hub[0].refused == {"SECONDLY": 1}


def test_notes_batch_create_with_associations_lands_on_the_contact(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    contact_id = _upsert(client, ["note@example.com"]).results[0].id
    answer = client.crm.objects.notes.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                {
                    "properties": {
                        "hs_timestamp": "2026-10-31T10:00:00Z",
                        "hs_note_body": f"touch {i}",
                    },
                    "associations": [
                        {
                            "to": {"id": contact_id},
                            "types": [
                                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}
                            ],
                        }
                    ],
                }
                for i in range(3)
            ]
        )
    )
    assert answer.status == "COMPLETE"
    note_ids = {r.id for r in answer.results}
    read = client.crm.associations.v4.batch_api.get_page(
        "contacts",
        "notes",
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": contact_id}]),
    )
    linked = {str(t.to_object_id) for t in read.results[0].to}
    assert linked == note_ids
    assert all(t.association_types[0].type_id == 201 for t in read.results[0].to)


def test_association_batch_read_pages_each_records_associations_on_its_own(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = hub[0]
    monkeypatch.setattr(store.data, "association_page", 2)
    with store.lock:
        _, made = store.data.batch_create(
            "companies", {"inputs": [{"properties": {"name": f"Co {i}"}} for i in range(5)]}
        )
        _, people = store.data.batch_create(
            "contacts",
            {"inputs": [{"properties": {"email": e}} for e in ("busy@x.com", "calm@x.com")]},
        )
        busy, calm = (r["id"] for r in people["results"])
        companies = [r["id"] for r in made["results"]]
        for company in companies:
            store.data.associate("contacts", busy, "companies", company, 279)
        store.data.associate("contacts", calm, "companies", companies[0], 279)
    api = client.crm.associations.v4.batch_api
    inputs: list[dict[str, str]] = [{"id": busy}, {"id": calm}]
    seen: dict[str, list[str]] = {}
    rounds = 0
    while inputs:
        rounds += 1
        read = api.get_page(
            "contacts", "companies", BatchInputPublicFetchAssociationsBatchRequest(inputs=inputs)
        )
        inputs = []
        for row in read.results:
            assert len(row.to) <= 2
            seen.setdefault(row._from.id, []).extend(str(t.to_object_id) for t in row.to)
            if row.paging is not None:
                inputs.append({"id": row._from.id, "after": row.paging.next.after})
    assert seen == {busy: companies, calm: [companies[0]]}
    assert rounds == 3


def test_engagement_without_hs_timestamp_fails_the_whole_batch(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    with pytest.raises(NotesApiException) as raised:
        client.crm.objects.notes.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    {"properties": {"hs_timestamp": "2026-10-31T10:00:00Z"}, "associations": []},
                    {"properties": {"hs_note_body": "no time"}, "associations": []},
                ]
            )
        )
    assert raised.value.status == 400
    assert "hs_timestamp" in raised.value.body
    assert hub[0].dump()["objects"]["notes"] == {}


@pytest.mark.parametrize("object_type", ["notes", "tasks", "calls", "emails", "meetings"])
def test_activities_refuse_unique_value_properties(client: HubSpot, object_type: str) -> None:
    spec = PropertyCreate(
        name="closedloop_touch_key", label="closedloop touch key", type="string",
        field_type="text", group_name="activityinformation", has_unique_value=True,
    )  # fmt: skip
    with pytest.raises(PropertiesApiException) as raised:
        client.crm.properties.core_api.create(object_type, spec)
    assert raised.value.status == 400
    assert "Unique value properties are not supported" in raised.value.body


def test_companies_take_a_unique_value_property(client: HubSpot) -> None:
    spec = PropertyCreate(
        name="erp_id", label="ERP id", type="string", field_type="text",
        group_name="companyinformation", has_unique_value=True,
    )  # fmt: skip
    assert client.crm.properties.core_api.create("companies", spec).has_unique_value is True


def test_the_same_note_created_twice_is_stored_twice(client: HubSpot) -> None:
    client.crm.properties.core_api.create(
        "notes",
        PropertyCreate(
            name="closedloop_touch_key", label="closedloop touch key", type="string",
            field_type="text", group_name="noteinformation",
        ),
    )  # fmt: skip
    note = {
        "properties": {"hs_timestamp": "2026-10-31T10:00:00Z", "closedloop_touch_key": "marketo:1"},
        "associations": [],
    }
    for _ in range(2):
        client.crm.objects.notes.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(inputs=[note])
        )
    found = client.crm.objects.notes.search_api.do_search(
        NotesSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "closedloop_touch_key",
                                         "operator": "IN", "values": ["marketo:1"]}]}],
            limit=10,
        )
    )  # fmt: skip
    assert found.total == 2


def _post(url: str, path: str, body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    return httpx.post(f"{url}{path}", json=body, headers=headers)


def test_traced_batch_create_answers_per_record_with_207(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    good = {"properties": {"hs_timestamp": "2026-10-31T10:00:00Z"}, "associations": []}
    bad = {"properties": {"hs_note_body": "no timestamp"}, "associations": []}
    inputs = [
        {**good, "objectWriteTraceId": "a"},
        {**bad, "objectWriteTraceId": "b"},
        {**good, "objectWriteTraceId": "c"},
    ]
    answer = _post(hub[1], "/crm/v3/objects/notes/batch/create", {"inputs": inputs})
    assert answer.status_code == 207
    body = answer.json()
    assert sorted(r["objectWriteTraceId"] for r in body["results"]) == ["a", "c"]
    assert body["numErrors"] == 1
    [error] = body["errors"]
    assert error["context"] == {"objectWriteTraceId": ["b"]}
    assert "hs_timestamp" in error["message"]
    assert len(hub[0].dump()["objects"]["notes"]) == 2


def test_a_trace_id_used_twice_in_one_batch_is_refused(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    note = {"properties": {"hs_timestamp": "2026-10-31T10:00:00Z"}, "associations": []}
    inputs = [{**note, "objectWriteTraceId": "a"}, {**note, "objectWriteTraceId": "a"}]
    answer = _post(hub[1], "/crm/v3/objects/notes/batch/create", {"inputs": inputs})
    assert answer.status_code == 400
    assert hub[0].dump()["objects"]["notes"] == {}


def test_untraced_batch_create_stays_all_or_nothing(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    inputs = [
        {"properties": {"hs_timestamp": "2026-10-31T10:00:00Z"}, "associations": [],
         "objectWriteTraceId": "a"},
        {"properties": {"hs_note_body": "no timestamp"}, "associations": []},
    ]  # fmt: skip
    answer = _post(hub[1], "/crm/v3/objects/notes/batch/create", {"inputs": inputs})
    assert answer.status_code == 400
    assert hub[0].dump()["objects"]["notes"] == {}


def test_search_finds_a_new_record_only_after_the_index_lag(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    hub[0].data.search_index_lag_s = 0.3
    note = {"properties": {"hs_timestamp": "2026-10-31T10:00:00Z"}, "associations": []}
    client.crm.objects.notes.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=[note])
    )

    def total() -> int:
        return int(client.crm.objects.notes.search_api.do_search(NotesSearchRequest(limit=1)).total)

    assert total() == 0
    time.sleep(0.4)
    assert total() == 1


def test_ten_second_window_answers_429_with_policy_and_headers(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    store, url, _ = hub
    store.rate_limit_max = 3
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=url, headers=headers) as http:
        answers = [http.get("/crm/v3/owners/") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[2].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert answers[3].json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert answers[3].json()["errorType"] == "RATE_LIMIT"


def test_secondly_headers_count_only_the_calls_of_the_last_second(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    store, url, _ = hub
    store.rate_limit_max = 50  # 5 calls per second
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=url, headers=headers) as http:
        first = [http.get("/crm/v3/owners/") for _ in range(2)]
        time.sleep(1.1)
        later = http.get("/crm/v3/owners/")
    assert first[0].headers["X-HubSpot-RateLimit-Secondly"] == "5"
    assert [a.headers["X-HubSpot-RateLimit-Secondly-Remaining"] for a in first] == ["4", "3"]
    # The two earlier calls left the secondly window but are still in the ten-second one.
    assert later.headers["X-HubSpot-RateLimit-Secondly-Remaining"] == "4"
    assert later.headers["X-HubSpot-RateLimit-Remaining"] == "47"


def _mint(http: httpx.Client) -> str:
    answer = http.post(
        "/oauth/v1/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        },
    )
    token: str = answer.json()["access_token"]
    return token


def test_oauth_calls_get_no_daily_limit_and_no_daily_headers(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    store, url, _ = hub
    store.daily_limit = 1
    private = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=url) as http:
        oauth = {"Authorization": f"Bearer {_mint(http)}"}
        first_private = http.get("/crm/v3/owners/", headers=private)
        spent_private = http.get("/crm/v3/owners/", headers=private)
        by_oauth = [http.get("/crm/v3/owners/", headers=oauth) for _ in range(3)]
    assert first_private.headers["X-HubSpot-RateLimit-Daily"] == "1"
    assert first_private.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert spent_private.status_code == 429
    assert spent_private.json()["policyName"] == "DAILY"
    assert [a.status_code for a in by_oauth] == [200, 200, 200]
    assert all("X-HubSpot-RateLimit-Daily" not in a.headers for a in by_oauth)
    assert all("X-HubSpot-RateLimit-Daily-Remaining" not in a.headers for a in by_oauth)
    assert by_oauth[0].headers["X-HubSpot-RateLimit-Max"] == "110"
    assert first_private.headers["X-HubSpot-RateLimit-Max"] == "190"


def test_an_oauth_apps_tokens_share_its_ten_second_window(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    store, url, _ = hub
    store.oauth_rate_limit_max = 2
    private = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=url) as http:
        first = {"Authorization": f"Bearer {_mint(http)}"}
        second = {"Authorization": f"Bearer {_mint(http)}"}
        answers = [http.get("/crm/v3/owners/", headers=h) for h in (first, second, second)]
        by_private_app = http.get("/crm/v3/owners/", headers=private)
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert by_private_app.status_code == 200
    assert store.refused == {"TEN_SECONDLY_ROLLING": 1}


def test_search_takes_no_slot_of_the_ten_second_window_and_sends_no_limit_headers(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    store, url, _ = hub
    store.rate_limit_max = 2
    store.search_per_second = 100
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=url, headers=headers) as http:
        reads = [http.get("/crm/v3/owners/") for _ in range(2)]
        searches = [
            http.post("/crm/v3/objects/contacts/search", json={"limit": 1}) for _ in range(4)
        ]
        over = http.get("/crm/v3/owners/")
    assert [a.status_code for a in reads] == [200, 200]
    assert [a.status_code for a in searches] == [200, 200, 200, 200]
    assert not any(h.startswith("x-hubspot-ratelimit") for a in searches for h in a.headers)
    assert over.status_code == 429
    assert over.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_a_pair_linked_under_two_labels_reads_back_both_labels_each_way(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    with httpx.Client(base_url=hub[1], headers=headers) as http:
        contact = http.post(
            "/crm/v3/objects/contacts", json={"properties": {"email": "pair@example.com"}}
        ).json()["id"]
        company = http.post(
            "/crm/v3/objects/companies", json={"properties": {"name": "Pair Ltd"}}
        ).json()["id"]
        link = {
            "from": {"id": contact},
            "to": {"id": company},
            "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279},
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1},
            ],
        }
        for _ in range(2):  # a replayed create adds nothing
            created = http.post(
                "/crm/v4/associations/contacts/companies/batch/create", json={"inputs": [link]}
            )
            assert created.status_code == 201, created.text

        def labels(source: str, target: str, record_id: str) -> list[list[int]]:
            read = http.post(
                f"/crm/v4/associations/{source}/{target}/batch/read",
                json={"inputs": [{"id": record_id}]},
            ).json()
            return [
                [t["typeId"] for t in to["associationTypes"]] for to in read["results"][0]["to"]
            ]

        assert labels("contacts", "companies", contact) == [[1, 279]]
        assert labels("companies", "contacts", company) == [[2, 280]]


def test_minted_token_is_revoked_by_an_expired_token_fault(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    _, url, state = hub
    with httpx.Client(base_url=url) as http:
        minted = http.post(
            "/oauth/v1/token",
            data={
                "grant_type": "refresh_token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
            },
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {minted}"}
        assert http.get("/crm/v3/owners/", headers=auth).status_code == 200
        state.faults.configure([FaultRule("hubspot", "expired_token", 1.0)])
        expired = http.get("/crm/v3/owners/", headers=auth)
        state.faults.configure([])
        assert expired.status_code == 401
        assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
        assert http.get("/crm/v3/owners/", headers=auth).status_code == 401
        fixed = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
        assert http.get("/crm/v3/owners/", headers=fixed).status_code == 200
    assert state.counts("hubspot")["oauth.token"] == 1


def test_unknown_token_is_rejected(hub: tuple[HubSpotStore, str, SandboxState]) -> None:
    with httpx.Client(base_url=hub[1]) as http:
        answer = http.get("/crm/v3/owners/", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_seeded_world_serves_owners_deals_and_email_events(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    store, url, state = hub
    world = generate(3, 20, now=NOW)
    store.load_world(world)
    owners = client.crm.owners.owners_api.get_page(limit=100)
    assert len(owners.results) == len(world.owners)
    deals = client.crm.deals.basic_api.get_page(limit=100, properties=["dealstage", "pipeline"])
    assert len(deals.results) == len(world.opportunities)
    assert {d.properties["pipeline"] for d in deals.results} == {"default"}
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    events: list[dict[str, object]] = []
    offset = None
    with httpx.Client(base_url=url, headers=headers) as http:
        while True:
            params = {"limit": "50", **({"offset": offset} if offset else {})}
            page = http.get("/email/public/v1/events", params=params).json()
            events += page["events"]
            if not page["hasMore"]:
                break
            offset = page["offset"]
        forms = http.get("/marketing/v3/forms").json()["results"]
        first = forms[0]["id"]
        submissions = http.get(f"/form-integrations/v1/submissions/forms/{first}").json()
    expected = sum(1 for a in world.activities if a.kind.startswith("email_"))
    assert len(events) == expected
    assert {e["type"] for e in events} <= {
        "SENT",
        "DELIVERED",
        "OPEN",
        "CLICK",
        "BOUNCE",
        "STATUSCHANGE",
    }
    assert submissions["results"][0]["values"][0]["name"] == "email"
    assert state.counts("hubspot")["email.events"] >= 2


def test_lists_take_contacts_for_recycling(
    client: HubSpot, hub: tuple[HubSpotStore, str, SandboxState]
) -> None:
    ids = [r.id for r in _upsert(client, ["r1@example.com", "r2@example.com"]).results]
    created = client.crm.lists.lists_api.create(
        {"name": "Recycled", "objectTypeId": "0-1", "processingType": "MANUAL"}
    )
    list_id = created.list.list_id
    added = client.crm.lists.memberships_api.add(list_id, [*ids, "999999"])
    assert sorted(added.records_ids_added) == sorted(ids)
    assert added.record_ids_missing == ["999999"]
    client.crm.lists.memberships_api.remove(list_id, [ids[0]])
    page = client.crm.lists.memberships_api.get_page(list_id)
    assert [m.record_id for m in page.results] == [ids[1]]


def test_timeline_batch_and_behavioral_events_are_recorded(
    hub: tuple[HubSpotStore, str, SandboxState], client: HubSpot
) -> None:
    store, url, _ = hub
    _upsert(client, ["t@example.com"])
    headers = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    event = {
        "eventTemplateId": "1001",
        "email": "t@example.com",
        "tokens": {"asset": "Guide"},
        "id": "marketo:9",
    }
    with httpx.Client(base_url=url, headers=headers) as http:
        assert (
            http.post(
                "/integrators/timeline/v3/events/batch/create", json={"inputs": [event]}
            ).status_code
            == 201
        )
        assert http.post("/integrators/timeline/v3/events", json=event).status_code == 409
        sent = http.post(
            "/events/v3/send", json={"eventName": "pe1_webinar", "email": "t@example.com"}
        )
        assert sent.status_code == 204
    dump = store.dump()
    assert [e["id"] for e in dump["timeline_events"]] == ["marketo:9"]
    assert dump["behavioral_events"][0]["eventName"] == "pe1_webinar"


def test_behavioral_batch_records_all_or_refuses_all_with_hubspots_error(
    hub: tuple[HubSpotStore, str, SandboxState], client: HubSpot
) -> None:
    store, _, state = hub
    batch = client.events.send.batch_api
    good = [{"eventName": "pe1_webinar", "objectId": str(i), "properties": {}} for i in range(500)]
    assert batch.send(BatchedBehavioralEventHttpCompletionRequest(inputs=good)) is None  # 204
    assert len(store.dump()["behavioral_events"]) == 500
    with pytest.raises(EventsApiException) as too_many:
        batch.send(BatchedBehavioralEventHttpCompletionRequest(inputs=[*good, good[0]]))
    assert too_many.value.status == 400
    assert '"category":"VALIDATION_ERROR"' in too_many.value.body
    assert "more than 500 inputs. Found 501." in too_many.value.body
    no_contact = {"eventName": "pe1_webinar", "properties": {}}
    with pytest.raises(EventsApiException) as invalid:
        batch.send(BatchedBehavioralEventHttpCompletionRequest(inputs=[*good[:3], no_contact]))
    assert invalid.value.status == 400
    assert "One of email, objectId or utk is required." in invalid.value.body
    assert len(store.dump()["behavioral_events"]) == 500  # neither refused batch left a trace
    assert state.counts("hubspot")["events.send.batch"] == 3


def test_injected_429_fault_uses_hubspot_shape(hub: tuple[HubSpotStore, str, SandboxState]) -> None:
    _, url, state = hub
    state.faults.configure([FaultRule("hubspot", "429", 1.0)])
    with httpx.Client(base_url=url) as http:
        answer = http.get(
            "/crm/v3/owners/", headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
        )
    state.faults.configure([])
    assert answer.status_code == 429
    assert answer.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_an_injected_429_answers_as_the_callers_app_type_would_be_limited(
    hub: tuple[HubSpotStore, str, SandboxState],
) -> None:
    store, url, state = hub
    with httpx.Client(base_url=url) as http:
        oauth = {"Authorization": f"Bearer {_mint(http)}"}
        private = {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
        state.faults.configure([FaultRule("hubspot", "429", 1.0)])
        by_oauth = http.get("/crm/v3/owners/", headers=oauth)
        by_private_app = http.get("/crm/v3/owners/", headers=private)
        searched = http.post("/crm/v3/objects/contacts/search", headers=private, json={})
        state.faults.configure([])
    assert [a.status_code for a in (by_oauth, by_private_app, searched)] == [429, 429, 429]
    # An OAuth app: its own 10-s limit (110), no daily limit and so no Daily headers.
    assert by_oauth.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert by_oauth.json()["groupName"] == "publicapi:oauth:sandbox"
    assert by_oauth.headers["X-HubSpot-RateLimit-Max"] == str(store.oauth_rate_limit_max)
    assert by_oauth.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "X-HubSpot-RateLimit-Daily" not in by_oauth.headers
    assert "X-HubSpot-RateLimit-Daily-Remaining" not in by_oauth.headers
    # The private app: its 10-s limit (190) and the account's daily headers, as on every answer.
    assert by_private_app.json()["groupName"] == "publicapi:private-app:sandbox"
    assert by_private_app.headers["X-HubSpot-RateLimit-Max"] == str(store.rate_limit_max)
    assert by_private_app.headers["X-HubSpot-RateLimit-Daily"] == str(store.daily_limit)
    assert "X-HubSpot-RateLimit-Daily-Remaining" in by_private_app.headers
    # CRM search: its own per-second policy, and no rate-limit headers at all.
    assert searched.json()["policyName"] == "SECONDLY"
    assert not [h for h in searched.headers if h.lower().startswith("x-hubspot-ratelimit")]
