"""The Marketo emulator, driven with httpx over loopback HTTP as the Marketo connector will."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox import credentials
from sandbox.core import FaultRule, LoopbackServer, SandboxState
from sandbox.marketo import MarketoStore, build_app
from sandbox.seed import generate

NOW = datetime(2026, 11, 1, tzinfo=UTC)
EMAIL_TYPES = "6,7,10,11"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxState, str]]:
    state = SandboxState()
    server = LoopbackServer(build_app(state))
    server.start()
    yield state, server.url
    server.stop()


@pytest.fixture
def mkto(
    served: tuple[SandboxState, str],
) -> Iterator[tuple[MarketoStore, httpx.Client, SandboxState]]:
    state, url = served
    state.reset()
    state.timeout_hold_s = 5.0
    store: MarketoStore = state.vendors["marketo"]
    store.rate_max = 100
    store.rate_window_s = 20.0
    store.daily_quota = 50_000
    store.max_concurrent = 10
    store.token_lifetime_s = 3600
    store.clock.rebase(NOW, frozen=True)
    with httpx.Client(base_url=url) as http:
        yield store, http, state


def _token(http: httpx.Client) -> str:
    answer = http.get(
        "/identity/oauth/token",
        params={
            "grant_type": "client_credentials",
            "client_id": credentials.MARKETO_CLIENT_ID,
            "client_secret": credentials.MARKETO_CLIENT_SECRET,
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 3599
    token: str = body["access_token"]
    return token


def _get(http: httpx.Client, token: str, path: str, **params: Any) -> dict[str, Any]:
    answer = http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def _error_code(body: dict[str, Any]) -> str:
    assert body["success"] is False
    code: str = body["errors"][0]["code"]
    return code


def _seed(store: MarketoStore, people: int = 3, per_day: int = 0) -> list[int]:
    """Leads with activities on a few scattered days (weeks apart) before NOW."""
    leads = [
        store.add_lead({"email": f"p{i}@example.com", "firstName": f"P{i}"}) for i in range(people)
    ]
    for day in (60, 59, 20, 3):
        for lead in leads:
            for n in range(per_day or 1):
                store.add_activity(
                    lead, 10, NOW - timedelta(days=day, minutes=n), primary=(7, "Newsletter")
                )
    return leads


def test_bad_client_credentials_get_401(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    answer = mkto[1].get(
        "/identity/oauth/token",
        params={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


def test_token_is_reused_until_it_expires_then_602_and_a_new_one(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    first = _token(http)
    assert _token(http) == first
    assert _get(http, first, "/rest/v1/activities/types.json")["success"] is True
    store.revoke(first)
    assert _error_code(_get(http, first, "/rest/v1/activities/types.json")) == "602"
    second = _token(http)
    assert second != first
    assert _get(http, second, "/rest/v1/activities/types.json")["success"] is True
    assert _error_code(_get(http, "not-a-token", "/rest/v1/activities/types.json")) == "601"
    assert _error_code(http.get("/rest/v1/activities/types.json").json()) == "600"


def test_the_removed_access_token_query_parameter_no_longer_authenticates(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    http = mkto[1]
    token = _token(http)
    body = http.get("/rest/v1/activities/types.json", params={"access_token": token}).json()
    assert _error_code(body) == "600"
    body = _get(http, token, "/rest/v1/activities/types.json")
    assert {t["id"] for t in body["result"]} >= {1, 2, 6, 7, 10, 11, 104}


def test_paging_through_activities_crosses_empty_pages(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    leads = _seed(store)
    token = _token(http)
    page_token = _get(
        http, token, "/rest/v1/activities/pagingtoken.json", sinceDatetime="2026-08-01T00:00:00Z"
    )["nextPageToken"]
    seen: list[int] = []
    empty_pages_with_more = 0
    for _ in range(100):
        body = _get(
            http,
            token,
            "/rest/v1/activities.json",
            nextPageToken=page_token,
            activityTypeIds=EMAIL_TYPES,
        )
        assert body["success"] is True
        if "result" not in body and body["moreResult"]:
            empty_pages_with_more += 1
        seen += [a["id"] for a in body.get("result", [])]
        page_token = body["nextPageToken"]
        if not body["moreResult"]:
            break
    assert len(seen) == len(set(seen)) == 4 * len(leads)
    assert empty_pages_with_more > 0
    # The last token picks up what happens next, and only that.
    store.clock.advance(60)
    fresh = store.add_activity(
        leads[0], 11, primary=(7, "Newsletter"), attributes={"Link": "https://x"}
    )
    store.clock.advance(60)
    body = _get(
        http,
        token,
        "/rest/v1/activities.json",
        nextPageToken=page_token,
        activityTypeIds=EMAIL_TYPES,
    )
    assert [a["id"] for a in body["result"]] == [fresh["id"]]
    assert body["result"][0]["attributes"] == [{"name": "Link", "value": "https://x"}]


def test_a_busy_slice_is_split_into_pages_of_300(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    _seed(store, people=2, per_day=200)
    token = _token(http)
    page_token = _get(
        http, token, "/rest/v1/activities/pagingtoken.json", sinceDatetime="2026-09-01"
    )["nextPageToken"]
    sizes: list[int] = []
    ids: list[int] = []
    while True:
        body = _get(
            http, token, "/rest/v1/activities.json", nextPageToken=page_token, activityTypeIds="10"
        )
        sizes.append(len(body.get("result", [])))
        ids += [a["id"] for a in body.get("result", [])]
        page_token = body["nextPageToken"]
        if not body["moreResult"]:
            break
    assert max(sizes) == 300
    assert len(ids) == len(set(ids)) == 4 * 2 * 200  # days x leads x activities a day


def test_more_than_ten_activity_types_are_rejected(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    _, http, _ = mkto
    token = _token(http)
    page_token = _get(
        http, token, "/rest/v1/activities/pagingtoken.json", sinceDatetime="2026-10-01"
    )["nextPageToken"]
    body = _get(
        http,
        token,
        "/rest/v1/activities.json",
        nextPageToken=page_token,
        activityTypeIds="1,2,3,6,7,8,9,10,11,12,13",
    )
    assert _error_code(body) == "1003"
    missing = _get(http, token, "/rest/v1/activities.json", activityTypeIds="1")
    assert _error_code(missing) == "701"


def test_rate_limit_answers_606_once_the_window_is_full(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, state = mkto
    store.rate_max = 5
    token = _token(http)
    codes = []
    for _ in range(6):
        body = _get(http, token, "/rest/v1/activities/types.json")
        codes.append("ok" if body["success"] else _error_code(body))
    assert codes == ["ok"] * 5 + ["606"]
    store.rate_window_s = 0.0
    assert _get(http, token, "/rest/v1/activities/types.json")["success"] is True
    assert state.counts("marketo")["identity.token"] == 1


def test_daily_quota_answers_607(mkto: tuple[MarketoStore, httpx.Client, SandboxState]) -> None:
    store, http, _ = mkto
    store.daily_quota = 2
    token = _token(http)
    bodies = [_get(http, token, "/rest/v1/activities/types.json") for _ in range(3)]
    assert [b["success"] for b in bodies] == [True, True, False]
    assert _error_code(bodies[2]) == "607"


def test_too_many_concurrent_calls_answer_615(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, state = mkto
    store.max_concurrent = 1
    state.timeout_hold_s = 1.0
    token = _token(http)
    state.faults.configure([FaultRule("marketo", "timeout", 1.0)])
    held: dict[str, int] = {}

    def slow_call() -> None:
        with httpx.Client(base_url=str(http.base_url)) as other:
            held["status"] = other.get(
                "/rest/v1/lists.json", headers={"Authorization": f"Bearer {token}"}
            ).status_code

    worker = threading.Thread(target=slow_call)
    worker.start()
    try:
        for _ in range(200):
            if store.in_flight:
                break
            threading.Event().wait(0.01)
        body = _get(http, token, "/rest/v1/lists.json")
    finally:
        worker.join()
        state.faults.configure([])
    assert _error_code(body) == "615"
    assert held["status"] == 504


def test_injected_faults_use_marketo_codes(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    _, http, state = mkto
    token = _token(http)
    state.faults.configure([FaultRule("marketo", "429", 1.0)])
    assert _error_code(_get(http, token, "/rest/v1/lists.json")) == "606"
    state.faults.configure([FaultRule("marketo", "403", 1.0)])
    assert _error_code(_get(http, token, "/rest/v1/lists.json")) == "607"
    state.faults.configure([FaultRule("marketo", "503", 1.0)])
    assert (
        http.get("/rest/v1/lists.json", headers={"Authorization": f"Bearer {token}"}).status_code
        == 503
    )
    state.faults.configure([FaultRule("marketo", "expired_token", 1.0)])
    assert _error_code(_get(http, token, "/rest/v1/lists.json")) == "602"
    state.faults.configure([])
    assert _error_code(_get(http, token, "/rest/v1/lists.json")) == "602"
    assert _get(http, _token(http), "/rest/v1/lists.json")["success"] is True


def test_leads_by_email_respect_fields_and_the_300_value_limit(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    store.add_lead({"email": "Ada@example.com", "firstName": "Ada", "leadScore": 40})
    token = _token(http)
    body = _get(
        http,
        token,
        "/rest/v1/leads.json",
        filterType="email",
        filterValues="ada@example.com,nobody@example.com",
        fields="email,leadScore",
    )
    assert body["result"] == [
        {"id": body["result"][0]["id"], "email": "Ada@example.com", "leadScore": 40}
    ]
    too_many = ",".join(f"x{i}@example.com" for i in range(301))
    assert (
        _error_code(
            _get(http, token, "/rest/v1/leads.json", filterType="email", filterValues=too_many)
        )
        == "1003"
    )
    assert (
        _error_code(
            _get(
                http,
                token,
                "/rest/v1/leads.json",
                filterType="email",
                filterValues="a@b.c",
                fields="shoeSize",
            )
        )
        == "1006"
    )


def test_static_list_add_and_remove_report_per_lead_status(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    lead = store.add_lead({"email": "n@example.com"})
    list_id = store.add_list("Nurture")
    token = _token(http)
    auth = {"Authorization": f"Bearer {token}"}
    added = http.post(
        f"/rest/v1/lists/{list_id}/leads.json",
        json={"input": [{"id": lead}, {"id": 1}]},
        headers=auth,
    ).json()
    assert added["result"] == [
        {"id": lead, "status": "added"},
        {"id": 1, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    removed = http.request(
        "DELETE",
        f"/rest/v1/lists/{list_id}/leads.json",
        json={"input": [{"id": lead}]},
        headers=auth,
    ).json()
    assert removed["result"] == [{"id": lead, "status": "removed"}]
    assert store.dump()["lists"][str(list_id)]["members"] == []
    big = {"input": [{"id": lead}] * 301}
    assert (
        _error_code(
            http.post(f"/rest/v1/lists/{list_id}/leads.json", json=big, headers=auth).json()
        )
        == "1003"
    )
    assert (
        _error_code(
            http.post(
                "/rest/v1/lists/99/leads.json", json={"input": [{"id": lead}]}, headers=auth
            ).json()
        )
        == "1013"
    )
    names = [entry["name"] for entry in _get(http, token, "/rest/v1/lists.json")["result"]]
    assert names == ["Nurture"]


def test_bulk_export_moves_through_its_lifecycle_to_a_csv(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    _seed(store)
    token = _token(http)
    auth = {"Authorization": f"Bearer {token}"}
    too_long = {
        "filter": {
            "createdAt": {"startAt": "2026-01-01T00:00:00Z", "endAt": "2026-03-01T00:00:00Z"}
        }
    }
    assert (
        _error_code(
            http.post("/bulk/v1/activities/export/create.json", json=too_long, headers=auth).json()
        )
        == "1003"
    )
    request = {
        "format": "CSV",
        "filter": {
            "createdAt": {"startAt": "2026-10-01T00:00:00Z", "endAt": "2026-10-31T00:00:00Z"},
            "activityTypeIds": [10],
        },
    }
    created = http.post("/bulk/v1/activities/export/create.json", json=request, headers=auth).json()
    export_id = created["result"][0]["exportId"]
    assert created["result"][0]["status"] == "Created"
    base = f"/bulk/v1/activities/export/{export_id}"
    not_ready = http.get(f"{base}/file.json", headers=auth)
    assert not_ready.status_code == 404
    assert not_ready.headers["content-type"].startswith("text/plain")
    assert http.post(f"{base}/enqueue.json", headers=auth).json()["result"][0]["status"] == "Queued"
    statuses = [_get(http, token, f"{base}/status.json")["result"][0]["status"] for _ in range(3)]
    assert statuses == ["Processing", "Completed", "Completed"]
    content = http.get(f"{base}/file.json", headers=auth)
    rows = list(csv.DictReader(io.StringIO(content.text)))
    assert content.headers["content-type"].startswith("text/csv")
    assert len(rows) == 6  # one activity per lead on each of the two October days
    assert {r["activityTypeId"] for r in rows} == {"10"}
    # Range: the rest of the file from a byte on (206), nothing past its end (416).
    size = len(content.content)
    tail = http.get(f"{base}/file.json", headers={**auth, "Range": "bytes=10-"})
    assert tail.status_code == 206
    assert tail.content == content.content[10:]
    assert tail.headers["content-range"] == f"bytes 10-{size - 1}/{size}"
    middle = http.get(f"{base}/file.json", headers={**auth, "Range": "bytes=5-9"})
    assert (middle.status_code, middle.content) == (206, content.content[5:10])
    past = http.get(f"{base}/file.json", headers={**auth, "Range": f"bytes={size}-"})
    assert past.status_code == 416


def test_seeded_world_becomes_leads_and_standard_activities(
    mkto: tuple[MarketoStore, httpx.Client, SandboxState],
) -> None:
    store, http, _ = mkto
    world = generate(5, 20, now=NOW)
    store.load_world(world)
    dump = store.dump()
    assert len(dump["leads"]) <= len(world.people)
    assert set(dump["world_ids"]["leads"]) == {p.id for p in world.people}
    assert dump["activities"] == len(world.activities)
    assert {"6", "7", "1"} <= set(dump["activities_by_type"])
    token = _token(http)
    webinar = _get(
        http, token, "/rest/v1/activities/pagingtoken.json", sinceDatetime="2026-04-01T00:00:00Z"
    )["nextPageToken"]
    body = _get(
        http,
        token,
        "/rest/v1/activities.json",
        nextPageToken=webinar,
        activityTypeIds="104",
        batchSize="300",
    )
    assert body["success"] is True
