"""Timeline writes: idempotent upserts on the touch key, the call budget, per-record rejects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from connectors.errors import AuthError, ConfigError, RateLimited
from connectors.salesforce.connector import SalesforceConnector, rejections
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import (
    data_calls,
    known_people,
    live,
    password_auth,
    settings_for,
    task,
)

Make = Callable[..., SalesforceConnector]
# A fault sequence in which sessions expire between and during composite calls, each expiry
# followed by a working login (a fresh token rejected again would rightly be an AuthError).
SEED = 1


def test_pushing_the_same_5000_touches_three_times_leaves_exactly_5000_tasks(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    people = known_people(sandbox.store("salesforce"))
    touches = [task(f"marketo:{n}", people[n % len(people)]["Id"]) for n in range(5_000)]
    connector = make_connector()

    outcomes = [connector.push_touches(touches) for _ in range(3)]

    assert all(r.ok for results in outcomes for r in results)
    assert [r.created for r in outcomes[0]] == [True] * 5_000
    assert [r.created for r in outcomes[2]] == [False] * 5_000
    assert [r.crm_id for r in outcomes[0]] == [r.crm_id for r in outcomes[2]]
    assert sandbox.dump()["salesforce"]["counts"]["Task"] == 5_000


def test_pushing_10000_touches_for_known_people_takes_at_most_12_calls(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    people = known_people(sandbox.store("salesforce"))
    touches = [task(f"marketo:{n}", people[n % len(people)]["Id"]) for n in range(10_000)]
    connector = make_connector()

    results = connector.push_touches(touches)

    assert sum(r.ok for r in results) == 10_000
    assert data_calls(sandbox) <= 12
    assert connector.api_calls == data_calls(sandbox)
    assert sandbox.state.counts("salesforce") == {"composite": 10}  # the minimum: 10 calls


def test_a_too_long_subject_or_bad_picklist_rejects_only_that_record_with_its_message(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    touches = [task(f"marketo:{n}", who) for n in range(10)]
    touches[3] = task("marketo:3", who, Subject="x" * 300)
    touches[7] = task("marketo:7", who, Status="Half Done")

    results = make_connector().push_touches(touches)

    failed = {r.key: r for r in results if not r.ok}
    assert set(failed) == {"marketo:3", "marketo:7"}
    assert failed["marketo:3"].error_code == "STRING_TOO_LONG"
    assert "max length=255" in (failed["marketo:3"].error_message or "")
    assert failed["marketo:7"].error_code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert "Half Done" in (failed["marketo:7"].error_message or "")
    assert len(live(sandbox.store("salesforce"), "Task")) == 8
    rejected = {r.key: r for r in rejections(results)}
    assert rejected["marketo:7"].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert "bad value for restricted picklist" in str(rejected["marketo:7"])


def test_a_key_given_twice_in_one_batch_is_written_once_with_its_last_rendering(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    touches = [task("marketo:1", who, Subject="first"), task("marketo:1", who, Subject="second")]

    results = make_connector().push_touches(touches)

    assert [r.ok for r in results] == [True, True]
    assert results[0].crm_id == results[1].crm_id
    tasks = live(sandbox.store("salesforce"), "Task")
    assert [t["Subject"] for t in tasks] == ["second"]


def test_dates_in_the_payload_are_written_as_salesforce_dates(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    touch = task("marketo:1", who, ActivityDate=date(2026, 5, 4))

    (result,) = make_connector().push_touches([touch])

    assert result.ok
    assert sandbox.store("salesforce").get("Task", result.crm_id)["ActivityDate"] == "2026-05-04"


def test_an_expired_session_mid_run_is_refreshed_and_the_run_writes_no_duplicate(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    people = known_people(sandbox.store("salesforce"))
    touches = [task(f"marketo:{n}", people[n % len(people)]["Id"]) for n in range(5_000)]
    connector = make_connector(auth=password_auth(sandbox))
    connector.push_touches(touches[:1_000])
    sandbox.set_faults("salesforce:expired_token=0.3", seed=SEED)

    results = connector.push_touches(touches)

    assert all(r.ok for r in results)
    assert connector.client.logins > 1, "no session expired: the seed injects none"
    assert sandbox.dump()["salesforce"]["counts"]["Task"] == 5_000


def test_an_expired_session_id_is_an_auth_error_saying_how_to_fix_it(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    connector = make_connector()
    sandbox.set_faults("salesforce:expired_token=1")

    with pytest.raises(AuthError) as caught:
        connector.push_touches([task("marketo:1", who)])

    assert "INVALID_SESSION_ID" in str(caught.value)
    assert "client_credentials or jwt" in str(caught.value)


def test_a_missing_external_id_field_is_a_config_error_naming_the_field_to_create(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    connector = make_connector(task_external_id_field="Touch_Key__c")

    with pytest.raises(ConfigError) as caught:
        connector.push_touches([task("marketo:1", who)])

    assert "Create a Text(255) field Touch_Key__c on Task" in str(caught.value)


def test_work_stops_at_the_budget_share_with_a_time_to_resume(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    who = known_people(store)[0]["Id"]
    store.daily_limit, store.api_used = 1_000, 498
    connector = make_connector(daily_budget_share=0.5)
    touches = [task(f"marketo:{n}", who) for n in range(3_000)]

    with pytest.raises(RateLimited) as caught:
        connector.push_touches(touches)

    # Two calls reach the 50% share of 1,000 (Sforce-Limit-Info: 500/1000): no third starts.
    assert store.api_used == 500
    assert caught.value.retry_after >= 60
    assert caught.value.resume_at is not None
    assert "resume at about" in str(caught.value)
    assert "daily_budget_share" in str(caught.value)


def test_a_usage_reading_past_its_resume_time_is_read_again_with_one_call(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    who = known_people(store)[0]["Id"]
    store.daily_limit, store.api_used = 1_000, 498
    connector = make_connector(daily_budget_share=0.5)
    with pytest.raises(RateLimited):
        connector.push_touches([task(f"marketo:{n}", who) for n in range(3_000)])
    assert connector.client.current_usage() == (500, 1_000)
    # The rolling window frees calls while a long-running process waits: once the reading is
    # older than the resume time it implied, the next call reads the org's usage again.
    store.api_used = 10
    connector.client.usage_at -= 86_400
    assert connector.client.current_usage() is None
    connector.push_touches([task("marketo:late", who)])
    assert connector.client.current_usage() == (11, 1_000)


def test_request_limit_exceeded_is_rate_limited_not_a_failure(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    connector = make_connector()
    sandbox.set_faults("salesforce:403=1")

    with pytest.raises(RateLimited) as caught:
        connector.push_touches([task("marketo:1", who)])

    assert "REQUEST_LIMIT_EXCEEDED" in str(caught.value)


def test_server_errors_are_retried_for_upserts(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    who = known_people(sandbox.store("salesforce"))[0]["Id"]
    connector = make_connector(max_attempts=5)
    sandbox.set_faults("salesforce:503=0.5", seed=1)

    results = connector.push_touches([task(f"marketo:{n}", who) for n in range(1_500)])

    assert all(r.ok for r in results)
    assert len(live(sandbox.store("salesforce"), "Task")) == 1_500


def test_tasks_refused_for_a_row_lock_are_sent_again_and_each_lands_once(
    sandbox: SandboxServer,
) -> None:
    people = known_people(sandbox.store("salesforce"))
    touches = [task(f"marketo:{n}", people[n % len(people)]["Id"]) for n in range(1_000)]
    waits: list[float] = []
    connector = SalesforceConnector(
        "crm", settings_for(sandbox, lock_retry_backoff_s=1.0), sleep=waits.append
    )
    sandbox.set_faults("salesforce:unable_to_lock_row=0.1", seed=SEED)
    try:
        results = connector.push_touches(touches)
    finally:
        connector.close()

    assert [r.key for r in results if not r.ok] == []
    tasks = live(sandbox.store("salesforce"), "Task")
    assert sorted(t["Closedloop_Key__c"] for t in tasks) == sorted(t.key for t in touches)
    assert waits, "no record was locked: the seed injects none"
    assert waits == [1.0, 2.0, 4.0][: len(waits)]
    # The first call carries all 1,000; each retry only the records still locked.
    assert sandbox.state.counts("salesforce") == {"composite": 1 + len(waits)}


def test_tasks_whose_person_stays_locked_come_back_retryable_with_salesforce_code(
    sandbox: SandboxServer,
) -> None:
    store = sandbox.store("salesforce")
    busy, *others = [p["Id"] for p in known_people(store)[:4]]
    touches = [task(f"marketo:{n}", busy if n % 3 == 0 else others[n % 3]) for n in range(9)]
    waits: list[float] = []
    connector = SalesforceConnector(
        "crm", settings_for(sandbox, lock_retry_backoff_s=0.5), sleep=waits.append
    )
    store.hold_locks([busy])  # another integration holds the Lead past Salesforce's 10 s wait
    try:
        results = connector.push_touches(touches)
    finally:
        connector.close()

    locked = [r for r in results if not r.ok]
    assert [r.key for r in locked] == ["marketo:0", "marketo:3", "marketo:6"]
    assert all(r.retryable for r in locked)
    assert {(r.error_code, r.error_message) for r in locked} == {
        ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 3 records")
    }
    assert not any(r.retryable for r in results if r.ok)
    assert waits == [0.5, 1.0, 2.0]  # lock_retries (3) more tries over seconds, then give up
    assert sorted(t["Closedloop_Key__c"] for t in live(store, "Task")) == [
        f"marketo:{n}" for n in (1, 2, 4, 5, 7, 8)
    ]


def test_a_collection_that_fails_on_the_server_inside_a_composite_is_sent_again_and_lands_once(
    sandbox: SandboxServer,
) -> None:
    people = known_people(sandbox.store("salesforce"))
    touches = [task(f"marketo:{n}", people[n % len(people)]["Id"]) for n in range(1_000)]
    waits: list[float] = []
    connector = SalesforceConnector(
        "crm", settings_for(sandbox, lock_retry_backoff_s=1.0), sleep=waits.append
    )
    sandbox.set_faults("salesforce:subrequest_500=0.3", seed=SEED)
    try:
        results = connector.push_touches(touches)
    finally:
        connector.close()

    assert [r.key for r in results if not r.ok] == []
    tasks = live(sandbox.store("salesforce"), "Task")
    assert sorted(t["Closedloop_Key__c"] for t in tasks) == sorted(t.key for t in touches)
    assert waits, "no collection failed: the seed injects none"
    assert waits == [1.0, 2.0, 4.0][: len(waits)]
    assert sandbox.state.counts("salesforce") == {"composite": 1 + len(waits)}


def test_touches_of_a_collection_the_server_keeps_failing_come_back_retryable_not_rejected(
    sandbox: SandboxServer,
) -> None:
    """Every collection subrequest answers 500 UNKNOWN_EXCEPTION inside an HTTP 200 Composite
    answer: nothing says the records are bad, so none may become a dead letter."""
    people = known_people(sandbox.store("salesforce"))
    touches = [task(f"marketo:{n}", people[n % len(people)]["Id"]) for n in range(300)]
    waits: list[float] = []
    connector = SalesforceConnector(
        "crm", settings_for(sandbox, lock_retry_backoff_s=0.5), sleep=waits.append
    )
    sandbox.set_faults("salesforce:subrequest_500=1")
    try:
        failing = connector.push_touches(touches)
        sandbox.set_faults("")
        later = connector.push_touches(touches)
    finally:
        connector.close()

    assert all(not r.ok and r.retryable for r in failing)
    assert {r.error_code for r in failing} == {"UNKNOWN_EXCEPTION"}
    assert "An unexpected error occurred" in (failing[0].error_message or "")
    assert waits == [0.5, 1.0, 2.0]
    assert all(r.ok and r.created for r in later)
    tasks = live(sandbox.store("salesforce"), "Task")
    assert sorted(t["Closedloop_Key__c"] for t in tasks) == sorted(t.key for t in touches)
