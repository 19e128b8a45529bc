"""Injected faults reach clients of the real emulators at the rate, in the shape, and replayably."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from connectors.errors import ConfigError
from sandbox import credentials
from sandbox.server import SandboxControl, SandboxServer

SF_DATA = f"/services/data/v{credentials.SALESFORCE_API_VERSION}"


@pytest.fixture
def salesforce(sandbox_readonly: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox_readonly.salesforce_url + SF_DATA,
        headers={"Authorization": f"Bearer {credentials.SALESFORCE_SESSION_ID}"},
        verify=ssl.create_default_context(cafile=str(sandbox_readonly.ca_file)),
        trust_env=False,
    ) as client:
        yield client


@pytest.fixture
def hubspot(sandbox_readonly: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox_readonly.hubspot_url,
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        trust_env=False,
    ) as client:
        yield client


@pytest.fixture
def marketo(sandbox_readonly: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_readonly.marketo_url, trust_env=False) as client:
        token = client.get(
            "/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": credentials.MARKETO_CLIENT_ID,
                "client_secret": credentials.MARKETO_CLIENT_SECRET,
            },
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@pytest.fixture
def control(sandbox_readonly: SandboxServer) -> Iterator[SandboxControl]:
    with sandbox_readonly.control() as ctl:
        yield ctl


def test_a_ten_percent_fault_rate_is_observed_and_every_call_is_counted(
    salesforce: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("salesforce:503=0.1", seed=1)
    statuses = [salesforce.get("/").status_code for _ in range(2_000)]
    failed = statuses.count(503)
    assert abs(failed / 2_000 - 0.10) <= 0.05
    assert statuses.count(200) == 2_000 - failed
    assert control.counters()["salesforce"] == {"resources": 2_000}


def test_the_same_fault_seed_gives_the_same_sequence(
    salesforce: httpx.Client, control: SandboxControl
) -> None:
    def sequence(seed: int) -> list[int]:
        control.set_faults("salesforce:500=0.2,salesforce:403=0.1", seed=seed)
        return [salesforce.get("/").status_code for _ in range(150)]

    first = sequence(4)
    assert {200, 403, 500} <= set(first)
    assert sequence(4) == first
    assert sequence(5) != first


def test_the_demo_world_is_loaded_into_all_three_stores(
    sandbox_readonly: SandboxServer, control: SandboxControl
) -> None:
    state = control.state()
    assert state["salesforce"]["counts"]["Lead"] > 100
    assert len(state["hubspot"]["objects"]["contacts"]) > 300
    assert len(state["marketo"]["leads"]) > 300
    assert control.world()["seed"] == 42


def test_salesforce_answers_a_429_fault_as_request_limit_exceeded(
    salesforce: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("salesforce:429=1")
    response = salesforce.get("/")
    assert response.status_code == 403
    assert response.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_hubspot_answers_a_429_fault_with_its_rate_limit_body(
    hubspot: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("hubspot:429=1")
    response = hubspot.get("/crm/v3/objects/contacts", params={"limit": 1})
    assert response.status_code == 429
    assert response.json()["errorType"] == "RATE_LIMIT"
    assert response.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_marketo_answers_a_429_fault_with_http_200_and_code_606(
    marketo: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("marketo:429=1")
    response = marketo.get("/rest/v1/activities/types.json")
    assert response.status_code == 200
    assert response.json()["success"] is False
    assert response.json()["errors"][0]["code"] == "606"


def test_a_wildcard_rule_fails_every_api(
    salesforce: httpx.Client, hubspot: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("*:500=1")
    assert salesforce.get("/").status_code == 500
    assert hubspot.get("/crm/v3/objects/contacts").status_code == 500


def test_an_expired_token_fault_never_revokes_the_fixed_session(
    salesforce: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("salesforce:expired_token=1")
    expired = salesforce.get("/")
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    control.set_faults(None)
    assert salesforce.get("/").status_code == 200


def test_a_timeout_fault_holds_the_request_then_answers_504(
    sandbox_readonly: SandboxServer, hubspot: httpx.Client, control: SandboxControl
) -> None:
    sandbox_readonly.state.timeout_hold_s = 0.2
    control.set_faults("hubspot:timeout=1")
    assert hubspot.get("/crm/v3/objects/contacts").status_code == 504
    control.reset()
    assert sandbox_readonly.state.timeout_hold_s == 5.0
    assert control.faults()["rules"] == []
    assert hubspot.get("/crm/v3/objects/contacts", params={"limit": 1}).status_code == 200


def test_latency_is_applied_to_real_vendor_calls(
    hubspot: httpx.Client, control: SandboxControl
) -> None:
    control.set_latency(250)
    response = hubspot.get("/crm/v3/objects/contacts", params={"limit": 1})
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.25


def test_a_row_lock_fault_set_through_the_control_api_refuses_records_not_calls(
    salesforce: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("salesforce:unable_to_lock_row=1")
    records = [
        {"attributes": {"type": "Task"}, "Closedloop_Key__c": f"faults:lock:{n}", "Subject": "x"}
        for n in range(3)
    ]

    assert salesforce.get("/").status_code == 200
    response = salesforce.patch(
        "/composite/sobjects/Task/Closedloop_Key__c",
        json={"allOrNone": False, "records": records},
    )

    assert response.status_code == 200
    assert [r["errors"][0]["statusCode"] for r in response.json()] == ["UNABLE_TO_LOCK_ROW"] * 3


def test_a_row_lock_fault_is_refused_for_apis_other_than_salesforce(
    control: SandboxControl,
) -> None:
    with pytest.raises(ConfigError, match="unable_to_lock_row is a salesforce fault"):
        control.set_faults("hubspot:unable_to_lock_row=0.1")


def test_a_subrequest_fault_fails_one_collection_of_a_composite_with_500_and_saves_none_of_it(
    salesforce: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("salesforce:subrequest_500=1")
    records = [
        {"attributes": {"type": "Task"}, "Closedloop_Key__c": f"faults:sub:{n}", "Subject": "x"}
        for n in range(3)
    ]
    subrequests = [
        {
            "method": "PATCH",
            "url": f"{SF_DATA}/composite/sobjects/Task/Closedloop_Key__c",
            "referenceId": "tasks",
            "body": {"allOrNone": False, "records": records},
        },
        {
            "method": "GET",
            "url": f"{SF_DATA}/query?q=SELECT+Id+FROM+Task+WHERE+Closedloop_Key__c+LIKE+"
            "'faults:sub:%25'",
            "referenceId": "read",
        },
    ]

    response = salesforce.post("/composite", json={"compositeRequest": subrequests})

    assert response.status_code == 200
    failed, read = response.json()["compositeResponse"]
    assert failed["httpStatusCode"] == 500
    assert failed["body"][0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert failed["body"][0]["message"].startswith("An unexpected error occurred.")
    assert (read["httpStatusCode"], read["body"]["totalSize"]) == (200, 0)


def test_a_subrequest_fault_is_refused_for_apis_other_than_salesforce(
    control: SandboxControl,
) -> None:
    with pytest.raises(ConfigError, match="subrequest_500 is a salesforce fault"):
        control.set_faults("marketo:subrequest_500=0.1")


def test_a_fault_scoped_to_one_endpoint_leaves_the_others_alone(
    marketo: httpx.Client, control: SandboxControl
) -> None:
    control.set_faults("marketo/stats.usage:503=1")
    assert marketo.get("/rest/v1/stats/usage.json").status_code == 503
    assert marketo.get("/rest/v1/activities/types.json").json()["success"] is True
    assert control.faults()["rules"] == [
        {"api": "marketo", "endpoint": "stats.usage", "kind": "503", "rate": 1.0}
    ]


def test_salesforce_applies_a_create_under_a_lost_response_fault_then_answers_502(
    sandbox: SandboxServer,
) -> None:
    seen: list[tuple[str, str, str]] = []
    sandbox.state.on_applied = lambda *call: seen.append(call)
    with sandbox.control() as control:
        control.set_faults("salesforce/sobject_create:lost_response=1")
    with httpx.Client(
        base_url=sandbox.salesforce_url + SF_DATA,
        headers={"Authorization": f"Bearer {credentials.SALESFORCE_SESSION_ID}"},
        verify=ssl.create_default_context(cafile=str(sandbox.ca_file)),
        trust_env=False,
    ) as salesforce:
        answer = salesforce.post("/sobjects/Task", json={"Subject": "lost answer 1"})
        found = salesforce.get(
            "/query", params={"q": "SELECT Id FROM Task WHERE Subject = 'lost answer 1'"}
        )

    assert answer.status_code == 502
    assert found.json()["totalSize"] == 1  # the Task was created although no answer came
    assert ("salesforce", "sobject_create", "POST") in seen


def test_hubspot_applies_a_batch_create_under_a_lost_response_fault_then_answers_502(
    sandbox: SandboxServer,
) -> None:
    with sandbox.control() as control:
        control.set_faults("hubspot/notes.batch_create:lost_response=1")
    store = sandbox.store("hubspot")
    with store.lock:
        before = len(store.data.objects["notes"])
    body = {
        "inputs": [{"properties": {"hs_note_body": "lost", "hs_timestamp": "2026-01-05T10:00:00Z"}}]
    }
    with httpx.Client(
        base_url=sandbox.hubspot_url,
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        trust_env=False,
    ) as hubspot:
        answer = hubspot.post("/crm/v3/objects/notes/batch/create", json=body)
        read = hubspot.get("/crm/v3/objects/notes", params={"limit": 1})

    assert answer.status_code == 502
    assert read.status_code == 200  # only the scoped endpoint loses its answers
    with store.lock:
        assert len(store.data.objects["notes"]) == before + 1


def test_a_lost_response_fault_may_be_set_for_every_api(control: SandboxControl) -> None:
    control.set_faults("salesforce:lost_response=0.1,hubspot:lost_response=0.1")
    assert {r["api"] for r in control.faults()["rules"]} == {"salesforce", "hubspot"}
