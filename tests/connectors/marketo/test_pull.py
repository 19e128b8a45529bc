"""Incremental and bulk pulls of Marketo activities into touches (respx-mocked instance)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from connectors.base import Cursor, TouchKind
from connectors.errors import ConfigError
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from connectors.testing import drain_touches
from tests.connectors.marketo.conftest import NOW, STANDARD_TYPES, activity, make_settings, ok

ACTIVITIES = "/rest/v1/activities.json"
PAGING = "/rest/v1/activities/pagingtoken.json"
LEADS = "/rest/v1/leads.json"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Feed:
    """Answers paging-token, activities and lead calls from a list of activities.

    Paging tokens encode the next offset into the time-ordered records of the requested types;
    ``empty_first`` pages with ``moreResult`` true come before the data, as Marketo does.
    """

    def __init__(self, records: list[dict[str, Any]], empty_first: int = 0) -> None:
        self.records = sorted(records, key=lambda r: (r["activityDate"], r["id"]))
        self.empty_left = empty_first
        self.type_groups: list[list[int]] = []
        self.lead_batches: list[list[int]] = []
        self.since: list[str] = []

    def paging(self, request: httpx.Request) -> httpx.Response:
        since = request.url.params["sinceDatetime"]
        self.since.append(since)
        return ok(nextPageToken=f"since|{since}")

    def activities(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        ids = [int(i) for i in params["activityTypeIds"].split(",")]
        assert len(ids) <= 10, "Marketo allows at most 10 activity types per call"
        size = int(params.get("batchSize", "300"))
        assert size <= 300
        token = params["nextPageToken"]
        self.type_groups.append(ids)
        kind, value = token.split("|", 1)
        matching = [r for r in self.records if r["activityTypeId"] in ids]
        if kind == "since":
            matching = [r for r in matching if r["activityDate"] >= value]
            offset = 0
        else:
            since, offset_text = value.rsplit("@", 1)
            matching = [r for r in matching if r["activityDate"] >= since]
            offset = int(offset_text)
            value = since
        if self.empty_left:
            self.empty_left -= 1
            return ok([], moreResult=True, nextPageToken=f"off|{value}@{offset}")
        page = matching[offset : offset + size]
        more = offset + size < len(matching)
        return ok(page, moreResult=more, nextPageToken=f"off|{value}@{offset + len(page)}")

    def leads(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert params["filterType"] == "id"
        ids = [int(i) for i in params["filterValues"].split(",")]
        assert len(ids) <= 300
        self.lead_batches.append(ids)
        return ok([{"id": i, "email": f"Lead{i}@Example.com"} for i in ids if i != 404])

    def mount(self, api: respx.MockRouter) -> None:
        api.get(PAGING).mock(side_effect=self.paging)
        api.get(ACTIVITIES).mock(side_effect=self.activities)
        api.get(LEADS).mock(side_effect=self.leads)


def at(minutes: int) -> str:
    return iso(NOW - timedelta(days=2) + timedelta(minutes=minutes))


def test_pull_yields_every_activity_with_email_kind_and_raw_payload(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    feed = Feed(
        [
            activity(1, 6, at(0), lead=7, campaignId=55),
            activity(2, 10, at(5), lead=7),
            activity(3, 1, at(9), lead=8, primaryAttributeValue="/pricing"),
            activity(4, 2, at(12), lead=404),
        ]
    )
    feed.mount(api)
    touches, cursor = drain_touches(source, Cursor(at(-60)), NOW)
    assert [t.key for t in touches] == [
        "marketo:guid-1",
        "marketo:guid-2",
        "marketo:guid-3",
        "marketo:guid-4",
    ]
    first = touches[0]
    assert first.kind is TouchKind.EMAIL_SENT
    assert first.email == "lead7@example.com"
    assert first.person_ref == "7"
    assert first.campaign == "55"
    assert first.channel == "email"
    assert first.raw["marketoGUID"] == "guid-1"
    assert touches[2].kind is TouchKind.PAGE_VIEW
    assert touches[2].asset == "/pricing"
    assert touches[3].email is None  # the lead no longer exists
    assert cursor == Cursor(at(12), frozenset({"marketo:guid-4"}))
    assert feed.since == [at(-60)]


def test_empty_pages_with_more_results_are_followed(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    feed = Feed([activity(1, 6, at(0)), activity(2, 6, at(1))], empty_first=3)
    feed.mount(api)
    touches, _ = drain_touches(source, Cursor(at(-1)), NOW)
    assert len(touches) == 2
    # Three empty pages said "more", then the page with both activities.
    assert len([g for g in feed.type_groups if 6 in g]) == 4


def test_paging_continues_with_each_next_page_token_until_more_result_is_false(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    feed = Feed([activity(n, 6, at(n), lead=n % 5) for n in range(1, 26)])
    feed.mount(api)
    with MarketoSource("mkto", make_settings(page_size=10), clock=clock) as source:
        touches, cursor = drain_touches(source, Cursor(at(0)), NOW)
    assert len(touches) == 25
    tokens = [
        c.request.url.params["nextPageToken"]
        for c in api.calls
        if c.request.url.path == ACTIVITIES and "6" in c.request.url.params["activityTypeIds"]
    ]
    assert tokens == [f"since|{at(0)}", f"off|{at(0)}@10", f"off|{at(0)}@20"]
    assert cursor.value == at(25)


def test_more_than_ten_activity_types_are_split_into_calls_of_ten(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    many = [{"id": 1000 + i, "name": f"Custom {i}"} for i in range(23)]
    api["types"].mock(return_value=ok(STANDARD_TYPES + many))
    feed = Feed([activity(i, 1000 + i, at(i)) for i in range(23)])
    feed.mount(api)
    settings = make_settings(activity_types=[t["id"] for t in many])
    with MarketoSource("mkto", settings, clock=clock) as source:
        touches, _ = drain_touches(source, Cursor(at(-1)), NOW)
    assert len(touches) == 23
    assert sorted(len(g) for g in feed.type_groups) == [3, 10, 10]
    assert sorted(i for g in feed.type_groups for i in g) == [1000 + i for i in range(23)]
    assert all(t.kind is TouchKind.OTHER for t in touches)
    assert api.routes["types"].call_count == 1


def test_groups_are_read_interleaved_so_the_cursor_never_skips_a_group(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    many = [{"id": 1000 + i, "name": f"Custom {i}"} for i in range(11)]
    api["types"].mock(return_value=ok(many))
    # Group 1 (types 1000-1009) is busy; group 2 (type 1010) has one early activity.
    records = [activity(n, 1000 + n % 10, at(n)) for n in range(1, 41)]
    records.append(activity(99, 1010, at(2)))
    feed = Feed(records)
    feed.mount(api)
    settings = make_settings(activity_types=[t["id"] for t in many], page_size=10)
    with MarketoSource("mkto", settings, clock=clock) as source:
        pages = list(source.pull_touches(Cursor(at(0)), NOW))
    emitted: set[str] = set()
    for page in pages:
        emitted |= {t.key for t in page.records}
        value = page.cursor.value
        assert value is not None
        # Everything at or before the cursor's time has been yielded by then.
        due = {f"mkto:{r['marketoGUID']}" for r in records if r["activityDate"] < value}
        assert due <= emitted
    assert len(emitted) == 41


def test_pull_stops_at_until_and_the_next_pull_resumes_without_duplicates(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    feed = Feed(
        [
            activity(1, 6, at(0)),
            activity(2, 6, at(10)),
            activity(3, 7, at(10)),
            activity(4, 6, at(20)),
        ]
    )
    feed.mount(api)
    until = datetime.fromisoformat(at(10))
    first, cursor = drain_touches(source, Cursor(at(-5)), until)
    assert [t.source_id for t in first] == ["guid-1", "guid-2", "guid-3"]
    assert cursor == Cursor(at(10), frozenset({"marketo:guid-2", "marketo:guid-3"}))
    second, cursor = drain_touches(source, cursor, NOW)
    assert [t.source_id for t in second] == ["guid-4"]
    assert feed.since[-1] == at(10)
    third, _ = drain_touches(source, cursor, NOW)
    assert third == []


def test_connector_drops_boundary_keys_itself(source: MarketoSource, api: respx.MockRouter) -> None:
    Feed([activity(1, 6, at(0)), activity(2, 6, at(0))]).mount(api)
    cursor = Cursor(at(0), frozenset({"marketo:guid-1"}))
    keys = [t.key for page in source.pull_touches(cursor, NOW) for t in page.records]
    assert keys == ["marketo:guid-2"]


def test_lead_emails_are_looked_up_300_at_a_time_and_cached(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    # 700 distinct leads, each with two activities, over several pages.
    records = [activity(n, 6, at(n // 50), lead=1 + n % 700) for n in range(1400)]
    feed = Feed(records)
    feed.mount(api)
    with MarketoSource("mkto", make_settings(), clock=clock) as source:
        touches, _ = drain_touches(source, Cursor(at(-1)), NOW)
    assert len(touches) == 1400
    assert [len(b) for b in feed.lead_batches] == [300, 300, 100]
    assert all(
        t.email == (None if t.person_ref == "404" else f"lead{t.person_ref}@example.com")
        for t in touches
    )


def test_first_pull_of_a_quiet_instance_starts_lookback_days_back_and_ends_at_until(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    feed = Feed([])
    feed.mount(api)
    settings = make_settings(initial_lookback_days=20)
    with MarketoSource("mkto", settings, clock=clock) as source:
        pages = list(source.pull_touches(Cursor(), NOW))
    assert all(not page.records for page in pages)
    assert feed.since == [iso(NOW - timedelta(days=20))]
    # Nothing found: the next pull starts at ``until``, not 20 days back again.
    assert pages[-1].cursor == Cursor(iso(NOW))


def test_unknown_activity_type_names_are_a_config_error_listing_them(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    settings = make_settings(activity_types=["Open Email", "Watch Video", 4242])
    with (
        MarketoSource("mkto", settings, clock=clock) as source,
        pytest.raises(ConfigError, match=r"'Watch Video', 4242.*Open Email"),
    ):
        list(source.pull_touches(Cursor(at(0)), NOW))


def test_visits_carrying_paid_click_parameters_become_ad_clicks(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    Feed(
        [
            activity(1, 1, at(1), primaryAttributeValue="example.com/pricing"),
            activity(2, 1, at(2), attributes=[{"name": "Query Parameters", "value": "gclid=abc"}]),
            activity(3, 1, at(3), primaryAttributeValue="example.com/demo?utm_medium=CPC"),
            activity(4, 1, at(4), primaryAttributeValue="example.com/blog?utm_medium=email"),
        ]
    ).mount(api)
    touches, _ = drain_touches(source, Cursor(at(0)), NOW)
    assert [t.kind for t in touches] == [
        TouchKind.PAGE_VIEW,
        TouchKind.AD_CLICK,
        TouchKind.AD_CLICK,
        TouchKind.PAGE_VIEW,
    ]


def test_program_status_changes_become_webinar_and_event_touches(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    def status(n: int, program: str, new: str, **extra: str) -> dict[str, Any]:
        attrs = [{"name": "New Status", "value": new}] + [
            {"name": k, "value": v} for k, v in extra.items()
        ]
        return activity(n, 104, at(n), primaryAttributeValue=program, attributes=attrs)

    Feed(
        [
            status(1, "Webinar: Attribution 101", "Registered"),
            status(2, "Webinar: Attribution 101", "Attended"),
            status(3, "Customer Roadshow Chicago", "Attended"),
            status(4, "Q3 Launch", "Attended", **{"Webinar URL": "https://w.example"}),
            status(5, "Whitepaper", "Downloaded"),
            status(6, "Nurture", "Member"),
        ]
    ).mount(api)
    touches, _ = drain_touches(source, Cursor(at(0)), NOW)
    assert [t.kind for t in touches] == [
        TouchKind.WEBINAR_REGISTERED,
        TouchKind.WEBINAR_ATTENDED,
        TouchKind.EVENT_ATTENDED,
        TouchKind.WEBINAR_ATTENDED,
        TouchKind.CONTENT_DOWNLOAD,
        TouchKind.OTHER,
    ]
    assert touches[0].attributes["New Status"] == "Registered"


BULK = "/bulk/v1/activities/export"


def test_long_backfill_uses_bulk_export_in_31_day_windows(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    created: list[dict[str, Any]] = []
    statuses = iter(["Queued", "Processing", "Completed"] * 3)

    def create(request: httpx.Request) -> httpx.Response:
        created.append(json.loads(request.content))
        return ok([{"exportId": f"job{len(created)}", "status": "Created"}])

    def file(request: httpx.Request) -> httpx.Response:
        job = request.url.path.split("/")[-2]
        n = int(job[3:])
        start = datetime.fromisoformat(created[n - 1]["filter"]["createdAt"]["startAt"])
        when = (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        csv_text = (
            "marketoGUID,leadId,activityDate,activityTypeId,campaignId,"
            "primaryAttributeValueId,primaryAttributeValue,attributes\n"
            f'g{n},{n},{when},11,9,3,Newsletter,"{{""Link"": ""https://x.example/p""}}"\n'
        )
        return httpx.Response(200, text=csv_text, headers={"content-type": "text/csv"})

    api.post(f"{BULK}/create.json").mock(side_effect=create)
    enqueue = api.post(url__regex=rf"{BULK}/job\d+/enqueue\.json").mock(
        return_value=ok([{"exportId": "x", "status": "Queued"}])
    )
    api.get(url__regex=rf"{BULK}/job\d+/status\.json").mock(
        side_effect=lambda _request: ok([{"exportId": "x", "status": next(statuses)}])
    )
    api.get(url__regex=rf"{BULK}/job\d+/file\.json").mock(side_effect=file)
    api.get(LEADS).mock(side_effect=Feed([]).leads)
    settings = make_settings(bulk_backfill_days=30, bulk_poll_interval_s=60)
    with MarketoSource("mkto", settings, clock=clock) as source:
        start = NOW - timedelta(days=80)
        touches, cursor = drain_touches(source, Cursor(iso(start)), NOW)
    assert len(created) == 3  # 80 days: 31 + 31 + 18
    spans = [
        datetime.fromisoformat(c["filter"]["createdAt"]["endAt"])
        - datetime.fromisoformat(c["filter"]["createdAt"]["startAt"])
        for c in created
    ]
    assert all(span <= timedelta(days=31) for span in spans)
    assert created[0]["filter"]["activityTypeIds"] == sorted(
        t["id"] for t in STANDARD_TYPES if t["id"] not in (3, 12)
    )
    assert enqueue.call_count == 3
    assert [t.source_id for t in touches] == ["g1", "g2", "g3"]
    assert touches[0].kind is TouchKind.EMAIL_CLICK
    assert touches[0].email == "lead1@example.com"
    assert touches[0].attributes["Link"] == "https://x.example/p"
    # Two polls before each job completed: after 1 s, then 2 s (the pause doubles up to 60 s).
    assert [s for s in clock.sleeps if s in (1, 2, 4, 60)] == [1, 2] * 3
    assert cursor.value == iso(NOW)
