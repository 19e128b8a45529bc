"""Marketo calls under the error table: token refresh, waits, quota, retries (respx-mocked)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connectors.errors import AuthError, ConfigError, RateLimited, RecordRejected, Transient
from connectors.marketo.auth import MAX_RENEWALS
from connectors.marketo.errors import ERROR_ACTIONS, Action
from connectors.marketo.source import MarketoSource
from connectors.ratelimit import ManualClock
from tests.connectors.marketo.conftest import SECRET, fail, make_settings, ok, token

USAGE = "/rest/v1/stats/usage.json"


def test_token_is_fetched_once_and_sent_as_bearer_on_every_call(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.get(USAGE).mock(return_value=ok([{"date": "2026-07-01", "total": 5}]))
    for _ in range(3):
        source.client.call("GET", USAGE)
    assert api["token"].call_count == 1
    assert all(c.request.headers["Authorization"] == "Bearer tok-1" for c in route.calls)
    assert all("access_token" not in str(c.request.url) for c in route.calls)


def test_token_is_renewed_before_it_expires(
    source: MarketoSource, api: respx.MockRouter, clock: ManualClock
) -> None:
    api["token"].side_effect = [token("tok-1", expires_in=600), token("tok-2", expires_in=600)]
    route = api.get(USAGE).mock(return_value=ok([]))
    source.client.call("GET", USAGE)
    clock.advance(560)  # within the 60 s safety margin of the expiry
    source.client.call("GET", USAGE)
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


@pytest.mark.parametrize("code", ["601", "602"])
def test_rejected_token_is_refreshed_and_the_call_repeated_once(
    source: MarketoSource, api: respx.MockRouter, code: str
) -> None:
    api["token"].side_effect = [token("old"), token("new")]
    route = api.get(USAGE).mock(side_effect=[fail(code, "Access token expired"), ok([])])
    assert source.client.call("GET", USAGE)["success"] is True
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer old",
        "Bearer new",
    ]
    assert api["token"].call_count == 2


def test_a_token_refused_again_after_its_renewal_is_renewed_again(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api["token"].side_effect = [token("t1"), token("t2"), token("t3")]
    route = api.get(USAGE).mock(
        side_effect=[
            fail("602", "Access token expired"),
            fail("602", "Access token expired"),
            ok([]),
        ]
    )
    assert source.client.call("GET", USAGE)["success"] is True
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer t1",
        "Bearer t2",
        "Bearer t3",
    ]


def test_a_token_refused_after_every_renewal_is_an_auth_error_saying_so(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.get(USAGE).mock(return_value=fail("601", "Access token invalid"))
    with pytest.raises(AuthError) as caught:
        source.client.call("GET", USAGE)
    assert route.call_count == MAX_RENEWALS + 1  # the call, then one repeat per renewal
    assert api["token"].call_count == MAX_RENEWALS + 1
    message = str(caught.value)
    assert f"601 Access token invalid, still after renewing the access token {MAX_RENEWALS}" in (
        message
    )
    assert "LaunchPoint" in message  # the remedy
    assert "renewed automatically" not in message


def test_a_renewal_that_gives_back_the_refused_token_waits_out_its_last_second(
    source: MarketoSource, api: respx.MockRouter, clock: ManualClock
) -> None:
    # Marketo hands out the current token until it has expired, even in its last second.
    api["token"].side_effect = [token("t1"), token("t1", expires_in=1), token("t2")]
    route = api.get(USAGE).mock(side_effect=[fail("602", "Access token expired"), ok([])])
    assert source.client.call("GET", USAGE)["success"] is True
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer t1", "Bearer t2"]
    assert clock.sleeps == [2.0]


def test_bad_client_credentials_are_an_auth_error_that_hides_the_secret(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api["token"].mock(
        return_value=httpx.Response(
            401, json={"error": "unauthorized", "error_description": "Bad client credentials"}
        )
    )
    with pytest.raises(AuthError) as caught:
        source.client.call("GET", USAGE)
    assert "client_secret" in str(caught.value)  # names the setting to fix ...
    assert SECRET not in str(caught.value)  # ... never its value


def test_606_waits_for_the_call_window_then_repeats(
    source: MarketoSource, api: respx.MockRouter, clock: ManualClock
) -> None:
    route = api.get(USAGE).mock(side_effect=[fail("606", "Max rate limit exceeded"), ok([])])
    assert source.client.call("GET", USAGE)["success"] is True
    assert route.call_count == 2
    # Only our one call was in the window: wait until it leaves the 20 s window.
    assert sum(clock.sleeps) == pytest.approx(20.0)


def test_606_that_never_clears_becomes_rate_limited(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.get(USAGE).mock(return_value=fail("606", "Max rate limit exceeded"))
    with pytest.raises(RateLimited) as caught:
        source.client.call("GET", USAGE)
    assert caught.value.retry_after > 0
    assert route.call_count == source.settings.max_rate_waits + 1


def test_615_waits_for_a_concurrent_call_to_end_then_repeats(
    source: MarketoSource, api: respx.MockRouter, clock: ManualClock
) -> None:
    route = api.get(USAGE).mock(side_effect=[fail("615", "Concurrent access limit"), ok([])])
    assert source.client.call("GET", USAGE)["success"] is True
    assert route.call_count == 2
    assert clock.sleeps
    assert sum(clock.sleeps) < 20.0


def test_607_is_rate_limited_until_midnight_central_and_stops_further_calls(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.get(USAGE).mock(return_value=fail("607", "Daily quota reached"))
    with pytest.raises(RateLimited) as caught:
        source.client.call("GET", USAGE)
    # The clock says 2026-07-01 15:00 UTC = 10:00 CDT; Marketo resets at 00:00 CDT = 05:00 UTC.
    assert caught.value.resume_at == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)
    assert caught.value.retry_after == pytest.approx(14 * 3600)
    with pytest.raises(RateLimited):
        source.client.call("GET", USAGE)
    assert route.call_count == 1  # the spent quota is known: no second call goes out


def test_our_own_daily_quota_stops_calls_before_marketo_has_to(
    clock: ManualClock, api: respx.MockRouter
) -> None:
    route = api.get(USAGE).mock(return_value=ok([]))
    with MarketoSource("m", make_settings(daily_quota=2), clock=clock) as source:
        source.client.call("GET", USAGE)
        source.client.call("GET", USAGE)
        with pytest.raises(RateLimited):
            source.client.call("GET", USAGE)
    assert route.call_count == 2


def test_1003_is_a_config_error_naming_code_and_remedy(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.get(USAGE).mock(return_value=fail("1003", "Too many activity types"))
    with pytest.raises(ConfigError, match=r"1003 Too many activity types.*activity types"):
        source.client.call("GET", USAGE)


@pytest.mark.parametrize("code", ["1004", "1001", "709", "609"])
def test_record_level_codes_reject_the_record_with_its_code(
    source: MarketoSource, api: respx.MockRouter, code: str
) -> None:
    api.get(USAGE).mock(return_value=fail(code, "nope"))
    with pytest.raises(RecordRejected) as caught:
        source.client.call("GET", USAGE)
    assert caught.value.code == code


def test_603_access_denied_is_an_auth_error(source: MarketoSource, api: respx.MockRouter) -> None:
    api.get(USAGE).mock(return_value=fail("603", "Access denied"))
    with pytest.raises(AuthError, match="permissions"):
        source.client.call("GET", USAGE)


def test_702_no_data_is_an_empty_result(source: MarketoSource, api: respx.MockRouter) -> None:
    api.get(USAGE).mock(return_value=fail("702", "No data found"))
    assert source.client.call("GET", USAGE)["result"] == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_with_backoff_then_transient(
    source: MarketoSource, api: respx.MockRouter, clock: ManualClock, status: int
) -> None:
    route = api.get(USAGE).mock(return_value=httpx.Response(status, text="down"))
    with pytest.raises(Transient, match=f"HTTP {status}"):
        source.client.call("GET", USAGE)
    assert route.call_count == 3  # max_attempts
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] >= clock.sleeps[0]


def test_server_error_then_success_returns_the_result(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.get(USAGE).mock(side_effect=[httpx.Response(503), fail("611", "System error"), ok([])])
    assert source.client.call("GET", USAGE)["success"] is True


def test_timeouts_and_dropped_connections_surface_as_transient_not_httpx(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.get(USAGE).mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("x"),
        ]
    )
    with pytest.raises(Transient, match="ReadTimeout on GET") as caught:
        source.client.call("GET", USAGE)
    assert not isinstance(caught.value, httpx.HTTPError)


def test_adding_to_a_static_list_is_repeated_after_a_server_error(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    route = api.post("/rest/v1/lists/77/leads.json").mock(
        side_effect=[httpx.Response(502), ok([{"id": 5, "status": "added"}])]
    )
    assert source.add_to_list(77, [5]).changed == [5]
    assert route.call_count == 2


def test_bad_base_url_is_a_config_error(source: MarketoSource, api: respx.MockRouter) -> None:
    api.get(USAGE).mock(return_value=httpx.Response(404, text="Not Found"))
    with pytest.raises(ConfigError, match="base_url"):
        source.client.call("GET", USAGE)


def test_every_code_in_the_table_has_an_action_and_a_remedy() -> None:
    assert {"601", "602", "606", "607", "615", "1003"} <= set(ERROR_ACTIONS)
    assert all(rule.remedy for rule in ERROR_ACTIONS.values())
    assert ERROR_ACTIONS["606"].action is Action.WAIT_WINDOW
    assert ERROR_ACTIONS["615"].action is Action.WAIT_CONCURRENCY
    assert ERROR_ACTIONS["607"].action is Action.DAILY_QUOTA


def test_identity_outage_is_retried_then_transient(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api["token"].mock(return_value=httpx.Response(503))
    route = api.get(USAGE).mock(return_value=ok([]))
    with pytest.raises(Transient, match="identity"):
        source.client.call("GET", USAGE)
    assert api["token"].call_count == 3
    assert route.call_count == 0


def test_full_bulk_export_queue_is_rate_limited_for_minutes(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.post("/bulk/v1/activities/export/create.json").mock(
        return_value=ok([{"exportId": "e1", "status": "Created"}])
    )
    api.post("/bulk/v1/activities/export/e1/enqueue.json").mock(
        return_value=fail("1029", "Too many jobs (10) in queue")
    )
    with pytest.raises(RateLimited) as caught:
        source.bulk_export(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC), [1])
    assert caught.value.retry_after >= 60


def test_a_failed_bulk_export_is_transient_and_names_the_job(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    api.post("/bulk/v1/activities/export/create.json").mock(
        return_value=ok([{"exportId": "e2", "status": "Created"}])
    )
    api.post("/bulk/v1/activities/export/e2/enqueue.json").mock(
        return_value=ok([{"exportId": "e2", "status": "Queued"}])
    )
    api.get("/bulk/v1/activities/export/e2/status.json").mock(
        return_value=ok([{"exportId": "e2", "status": "Failed"}])
    )
    with pytest.raises(Transient, match="e2 ended as Failed"):
        source.bulk_export(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC), [1])


def _completed_export(api: respx.MockRouter, content: bytes, checksum: str) -> None:
    base = "/bulk/v1/activities/export/e3"
    api.post("/bulk/v1/activities/export/create.json").mock(
        return_value=ok([{"exportId": "e3", "status": "Created"}])
    )
    api.post(f"{base}/enqueue.json").mock(return_value=ok([{"exportId": "e3", "status": "Queued"}]))
    api.get(f"{base}/status.json").mock(
        return_value=ok([{"exportId": "e3", "status": "Completed", "fileChecksum": checksum}])
    )
    api.get(f"{base}/file.json").mock(
        return_value=httpx.Response(200, content=content, headers={"content-type": "text/csv"})
    )


def test_a_bulk_export_file_that_does_not_match_its_checksum_is_transient(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    content = b"marketoGUID,leadId,activityDate,activityTypeId\ng1,1,2026-06-01T10:00:00Z,10\n"
    _completed_export(api, content[:-5], "sha256:" + hashlib.sha256(content).hexdigest())
    with pytest.raises(Transient, match="checksum"):
        source.bulk_export(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC), [10])


def test_a_bulk_export_file_matching_its_checksum_is_parsed(
    source: MarketoSource, api: respx.MockRouter
) -> None:
    content = b"marketoGUID,leadId,activityDate,activityTypeId\ng1,1,2026-06-01T10:00:00Z,10\n"
    _completed_export(api, content, "sha256:" + hashlib.sha256(content).hexdigest())
    rows = source.bulk_export(
        datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC), [10]
    )
    assert [(r["marketoGUID"], r["leadId"]) for r in rows] == [("g1", 1)]
