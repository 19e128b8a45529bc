"""Marketo rules from docs/vendor-behaviour.md that no other test pinned, through real HTTP.

The emulator is driven with httpx as Marketo's docs describe the calls, and the Marketo
connector is pointed at it where the rule is one the connector must follow. Each test names
the rule it pins; the rule's vendor source is in docs/vendor-behaviour.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.errors import RateLimited
from connectors.marketo.settings import MarketoSettings
from connectors.marketo.source import MarketoSource
from sandbox import credentials
from sandbox.core import LoopbackServer, SandboxState, parse_faults
from sandbox.marketo import MarketoStore, build_app

NOW = datetime(2026, 11, 1, tzinfo=UTC)
EXPORTS = "/bulk/v1/activities/export"
DEFAULTS = {
    name: getattr(MarketoStore(), name)
    for name in ("rate_max", "rate_window_s", "daily_quota", "max_concurrent", "export_daily_bytes")
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxState, str]]:
    state = SandboxState()
    server = LoopbackServer(build_app(state))
    server.start()
    yield state, server.url
    server.stop()


@pytest.fixture
def mkto(served: tuple[SandboxState, str]) -> Iterator[tuple[MarketoStore, httpx.Client, str]]:
    """An empty Marketo instance with its clock frozen at NOW, and a client holding a token."""
    state, url = served
    state.reset()
    store: MarketoStore = state.vendors["marketo"]
    for name, value in DEFAULTS.items():
        setattr(store, name, value)
    store.clock.rebase(NOW, frozen=True)
    with httpx.Client(base_url=url) as http:
        answer = http.get(
            "/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": credentials.MARKETO_CLIENT_ID,
                "client_secret": credentials.MARKETO_CLIENT_SECRET,
            },
        )
        http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield store, http, url


def _code(body: dict[str, Any]) -> str:
    assert body["success"] is False, body
    code: str = body["errors"][0]["code"]
    return code


def _leads(store: MarketoStore, count: int, email: str = "") -> list[int]:
    return [
        store.add_lead({"email": email or f"p{i}@example.com", "firstName": f"P{i}"})
        for i in range(count)
    ]


def _connector(url: str, **overrides: Any) -> MarketoSource:
    settings = MarketoSettings.model_validate(
        {
            "base_url": url,
            "client_id": credentials.MARKETO_CLIENT_ID,
            "client_secret": credentials.MARKETO_CLIENT_SECRET,
            **overrides,
        }
    )
    return MarketoSource("marketo", settings)


# ----------------------------------------------------------------------------- lead database


def test_first_or_last_name_cannot_be_a_filter_type(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    _leads(store, 1)
    body = http.get("/rest/v1/leads.json", params={"filterType": "firstName", "filterValues": "P0"})
    assert _code(body.json()) == "1011"


def test_a_filter_matching_more_than_1000_leads_is_refused(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    _leads(store, 1001, email="shared@example.com")
    params = {"filterType": "email", "filterValues": "shared@example.com"}
    body = http.get("/rest/v1/leads.json", params=params).json()
    assert _code(body) == "1003"
    assert "Too many results" in body["errors"][0]["message"]


def test_more_leads_than_a_batch_come_with_more_result_and_a_next_page_token(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    shared = _leads(store, 301, email="shared@example.com")
    params = {"filterType": "email", "filterValues": "shared@example.com"}
    first = http.get("/rest/v1/leads.json", params=params).json()
    assert len(first["result"]) == 300
    assert first["moreResult"] is True
    second = http.get(
        "/rest/v1/leads.json", params={**params, "nextPageToken": first["nextPageToken"]}
    ).json()
    assert [lead["id"] for lead in first["result"] + second["result"]] == shared
    assert "nextPageToken" not in second


def test_the_connector_follows_lead_pages_so_no_address_is_lost(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, _, url = mkto
    _leads(store, 300, email="shared@example.com")
    (alone,) = _leads(store, 1, email="alone@example.com")
    with _connector(url) as source:
        found = source.lookup_leads(["shared@example.com", "alone@example.com"])
    assert found["alone@example.com"].external_id == str(alone)


def test_static_list_members_are_paged_300_at_most(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    list_id = store.add_list("Big")
    store.members[list_id].update(_leads(store, 5))
    first = http.get(f"/rest/v1/lists/{list_id}/leads.json", params={"batchSize": 3}).json()
    rest = http.get(
        f"/rest/v1/lists/{list_id}/leads.json", params={"nextPageToken": first["nextPageToken"]}
    ).json()
    assert len(first["result"]) == 3
    assert len(rest["result"]) == 2
    assert http.get("/rest/v1/lists.json", params={"batchSize": 301}).json()["success"]


# -------------------------------------------------------------------------------- activities


def _activities(http: httpx.Client, **params: Any) -> dict[str, Any]:
    token = http.get(
        "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": "2026-10-01T00:00:00Z"}
    ).json()["nextPageToken"]
    body: dict[str, Any] = http.get(
        "/rest/v1/activities.json",
        params={"nextPageToken": token, "activityTypeIds": "10", **params},
    ).json()
    return body


def test_activities_take_at_most_30_lead_ids_and_300_per_page(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    http = mkto[1]
    assert _activities(http, leadIds=",".join(str(i) for i in range(30)))["success"] is True
    assert _code(_activities(http, leadIds=",".join(str(i) for i in range(31)))) == "1003"
    assert _code(_activities(http, batchSize=301)) == "1003"


def test_repeated_query_parameters_count_like_a_comma_separated_list(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    first, second = _leads(store, 2)
    store.add_activity(first, 10, NOW - timedelta(days=3))
    store.add_activity(first, 11, NOW - timedelta(days=3))
    token = http.get(
        "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": "2026-10-28T00:00:00Z"}
    ).json()["nextPageToken"]
    body = http.get(
        "/rest/v1/activities.json",
        params=[("nextPageToken", token), ("activityTypeIds", "10"), ("activityTypeIds", "11")],
    ).json()
    assert sorted(a["activityTypeId"] for a in body["result"]) == [10, 11]
    list_id = store.add_list("Nurture")
    added = http.post(
        f"/rest/v1/lists/{list_id}/leads.json", params=[("id", first), ("id", second)]
    ).json()
    assert [r["status"] for r in added["result"]] == ["added", "added"]


def test_blank_required_activity_parameters_are_701(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    http = mkto[1]
    assert _code(http.get("/rest/v1/activities/pagingtoken.json").json()) == "701"
    assert _code(_activities(http, activityTypeIds="")) == "701"


def test_a_static_list_of_10000_leads_cannot_filter_activities_from_2026_12_30(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    list_id = store.add_list("Everyone")
    store.members[list_id].update(range(1, 10_001))
    assert _activities(http, listId=list_id)["success"] is True
    store.clock.set(datetime(2026, 12, 30, tzinfo=UTC))
    assert _code(_activities(http, listId=list_id)) == "1003"
    store.members[list_id].discard(1)
    assert _activities(http, listId=list_id)["success"] is True


# ---------------------------------------------------------------------- limits and HTTP errors


def test_calls_answered_with_an_error_count_against_neither_quota_nor_rate(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    store.daily_quota = 3
    store.rate_max = 3
    for _ in range(5):
        assert _code(http.get("/rest/v1/leads.json").json()) == "701"
    assert http.get("/rest/v1/activities/types.json").json()["success"] is True
    usage = http.get("/rest/v1/stats/usage.json").json()["result"][0]
    assert usage["total"] == 2  # the types call and this one


def test_daily_usage_reports_todays_calls_per_api_user(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    http = mkto[1]
    for _ in range(3):
        http.get("/rest/v1/activities/types.json")
    (day,) = http.get("/rest/v1/stats/usage.json").json()["result"]
    assert day["date"] == "2026-10-31"  # midnight UTC is still the 31st in Chicago
    assert day["total"] == 4
    assert [u["count"] for u in day["users"]] == [4]


def test_the_connector_check_reads_the_instance_wide_usage(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    _, http, url = mkto
    for _ in range(7):  # another integration's calls
        http.get("/rest/v1/activities/types.json")
    with _connector(url) as source:
        quota = {r.name: r for r in source.check()}["marketo.daily_quota"]
    # 7 + the connector's activity types call + the usage call itself
    assert quota.detail.startswith("9 of 50000 calls used today")


def test_a_uri_over_8_kb_is_http_414_and_a_body_over_1_mb_is_http_413(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    list_id = store.add_list("Nurture")
    long_filter = ",".join(f"someone{i}@example.com" for i in range(400))
    answer = http.get(
        "/rest/v1/leads.json", params={"filterType": "email", "filterValues": long_filter}
    )
    assert answer.status_code == 414
    body = {"input": [{"id": 1}], "padding": "x" * (1024 * 1024)}
    assert http.post(f"/rest/v1/lists/{list_id}/leads.json", json=body).status_code == 413


# ------------------------------------------------------------------------------- bulk extract


def _export(http: httpx.Client, days: int = 30) -> str:
    start = NOW - timedelta(days=days)
    request = {
        "format": "CSV",
        "filter": {
            "createdAt": {
                "startAt": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endAt": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        },
    }
    created = http.post(f"{EXPORTS}/create.json", json=request).json()
    export_id: str = created["result"][0]["exportId"]
    return export_id


def _status(http: httpx.Client, export_id: str) -> dict[str, Any]:
    job: dict[str, Any] = http.get(f"{EXPORTS}/{export_id}/status.json").json()["result"][0]
    return job


def test_a_completed_export_carries_the_sha256_checksum_of_its_file(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    (lead,) = _leads(store, 1)
    store.add_activity(lead, 10, NOW - timedelta(days=2))
    export_id = _export(http)
    http.post(f"{EXPORTS}/{export_id}/enqueue.json")
    while (job := _status(http, export_id))["status"] != "Completed":
        pass
    content = http.get(f"{EXPORTS}/{export_id}/file.json").content
    assert job["fileChecksum"] == "sha256:" + hashlib.sha256(content).hexdigest()
    assert job["fileSize"] == len(content)
    assert len(list(csv.DictReader(io.StringIO(content.decode())))) == job["numberOfRecords"] == 1


def test_enqueueing_a_queued_job_again_is_1029_job_already_queued(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    http = mkto[1]
    export_id = _export(http)
    assert http.post(f"{EXPORTS}/{export_id}/enqueue.json").json()["success"] is True
    again = http.post(f"{EXPORTS}/{export_id}/enqueue.json").json()
    assert _code(again) == "1029"
    assert again["errors"][0]["message"] == "Job already queued"


def test_export_jobs_of_the_past_seven_days_are_listed_by_status(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, _ = mkto
    old = _export(http)
    store.clock.rebase(NOW + timedelta(days=8), frozen=True)
    created, queued = _export(http), _export(http)
    assert http.post(f"{EXPORTS}/{queued}/enqueue.json").json()["success"] is True

    def listed(status: str) -> list[str]:
        answer = http.get(f"{EXPORTS}.json", params={"status": status}).json()
        assert answer["success"] is True, answer
        return [job["exportId"] for job in answer["result"]]

    assert listed("Created") == [created]  # the 8-day-old job is no longer listed
    assert listed("created") == [created]  # the Swagger spells the statuses in lower case
    assert listed("Created,Queued") == [created, queued]
    assert old not in listed("")
    assert _code(http.get(f"{EXPORTS}.json", params={"status": "Done"}).json()) == "1003"


def test_a_lost_response_fault_creates_the_job_then_answers_502(
    served: tuple[SandboxState, str], mkto: tuple[MarketoStore, httpx.Client, str]
) -> None:
    state, (store, http, _) = served[0], mkto
    state.faults.configure(parse_faults("marketo/export.create:lost_response=1"))
    try:
        request = {"filter": {"createdAt": {"startAt": "2026-10-01", "endAt": "2026-10-10"}}}
        lost = http.post(f"{EXPORTS}/create.json", json=request)
    finally:
        state.faults.configure([])
    assert (lost.status_code, lost.text) == (502, "Bad Gateway")
    assert [job["status"] for job in store.exports.values()] == ["Created"]


def test_ten_jobs_fill_the_queue_and_two_process_at_once(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    http = mkto[1]
    jobs = [_export(http) for _ in range(11)]
    for export_id in jobs[:10]:
        assert http.post(f"{EXPORTS}/{export_id}/enqueue.json").json()["success"] is True
    full = http.post(f"{EXPORTS}/{jobs[10]}/enqueue.json").json()
    assert _code(full) == "1029"
    assert full["errors"][0]["message"] == "Too many jobs in queue"
    statuses = [_status(http, export_id)["status"] for export_id in jobs[:3]]
    assert statuses == ["Processing", "Processing", "Queued"]


def test_the_daily_export_allocation_stops_new_jobs_until_midnight_central(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, url = mkto
    (lead,) = _leads(store, 1)
    store.add_activity(lead, 10, NOW - timedelta(days=2))
    export_id = _export(http)
    http.post(f"{EXPORTS}/{export_id}/enqueue.json")
    while _status(http, export_id)["status"] != "Completed":
        pass
    store.export_daily_bytes = 1  # the first file used the day's allocation up
    refused = http.post(
        f"{EXPORTS}/create.json",
        json={
            "filter": {
                "createdAt": {"startAt": "2026-10-01T00:00:00Z", "endAt": "2026-10-02T00:00:00Z"}
            }
        },
    ).json()
    assert _code(refused) == "1029"
    assert refused["errors"][0]["message"] == "Export daily quota exceeded"
    with _connector(url) as source, pytest.raises(RateLimited) as caught:
        source.bulk_export(NOW - timedelta(days=2), NOW, [10])
    wait = (source.client.quota.resets_at() - source.client.clock.now()).total_seconds()
    assert abs(caught.value.retry_after - wait) < 60
    assert "midnight US Central" in str(caught.value)
    store.clock.set(datetime(2026, 11, 1, 6, tzinfo=UTC))  # past midnight in Chicago
    assert http.post(f"{EXPORTS}/{_export(http)}/enqueue.json").json()["success"] is True


def test_the_file_of_an_unfinished_export_is_a_plain_text_404(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    http = mkto[1]
    answer = http.get(f"{EXPORTS}/{_export(http)}/file.json")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/plain")
    assert http.get(f"{EXPORTS}/no-such-job/file.json").status_code == 404


def test_the_connector_polls_an_export_no_faster_than_its_status_changes() -> None:
    settings = MarketoSettings.model_validate(
        {"base_url": "https://123-abc-456.mktorest.com", "client_id": "c", "client_secret": "s"}
    )
    assert settings.bulk_poll_interval_s >= 60


# ----------------------------------------------------------------------------- programs


def test_programs_come_200_a_call_with_the_salesforce_campaign_they_are_synced_to(
    mkto: tuple[MarketoStore, httpx.Client, str],
) -> None:
    store, http, url = mkto
    for n in range(205):
        program_id = 3000 + n
        store.programs[program_id] = {"id": program_id, "name": f"Program {n}", "channel": "email"}
        store.program_ids[f"cmp-{n}"] = program_id
    store.sync_crm_campaigns({"cmp-3": ("701000000000003AAA", "Spring Expo")})
    refused = http.get("/rest/asset/v1/programs.json", params={"maxReturn": 201}).json()
    assert _code(refused) == "701"
    past = http.get("/rest/asset/v1/programs.json", params={"offset": 205}).json()
    assert past["success"] is True
    assert "result" not in past
    with _connector(url) as source:
        programs = source.programs()
        calls = source.client.calls
    assert len(programs) == 205
    synced = [p for p in programs if p.crm_campaign_id]
    assert [(p.external_id, p.crm_campaign_id, p.crm_campaign_name) for p in synced] == [
        ("3003", "701000000000003AAA", "Spring Expo")
    ]
    assert calls == 2  # 200 + 5: two calls (the identity call is not counted)
