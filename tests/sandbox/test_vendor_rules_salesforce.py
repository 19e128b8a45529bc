"""Salesforce rules from docs/vendor-behaviour.md that no other test pinned, over real HTTPS.

Each test names the rule it pins; the rule's vendor source is in docs/vendor-behaviour.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import credentials
from sandbox.core import LoopbackServer, SandboxState, make_tls_files
from sandbox.salesforce import build_app
from tests.sandbox.test_salesforce import BASE, Org


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    state = SandboxState(timeout_hold_s=0.05)
    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    server = LoopbackServer(build_app(state), tls=(tls.cert_file, tls.key_file))
    server.start()
    org = Org(server, state, tls.ca_file)
    yield org
    org.http.close()
    server.stop()


@pytest.fixture
def org(running: Org) -> Org:
    running.state.reset()
    return running


def _leads(org: Org, count: int) -> list[str]:
    return [
        org.store.insert("Lead", {"LastName": f"Doe {i}", "Company": "Acme"}) for i in range(count)
    ]


def _first_error(answer: Any) -> dict[str, Any]:
    body = answer.json()
    assert isinstance(body, list), body
    error: dict[str, Any] = body[0]
    return error


def test_query_batch_size_is_held_between_200_and_2000(org: Org) -> None:
    _leads(org, 2100)
    small = org.call(
        "GET",
        f"{BASE}/query",
        params={"q": "SELECT Id FROM Lead"},
        headers={"Sforce-Query-Options": "batchSize=50"},
    ).json()
    large = org.call(
        "GET",
        f"{BASE}/query",
        params={"q": "SELECT Id FROM Lead"},
        headers={"Sforce-Query-Options": "batchSize=5000"},
    ).json()
    default = org.call("GET", f"{BASE}/query", params={"q": "SELECT Id FROM Lead"}).json()
    assert (len(small["records"]), len(large["records"]), len(default["records"])) == (
        200,
        2000,
        2000,
    )
    rest = org.call("GET", large["nextRecordsUrl"]).json()
    assert len(rest["records"]) == 100
    assert rest["done"] is True


def test_an_unknown_query_locator_is_invalid_query_locator(org: Org) -> None:
    answer = org.call("GET", f"{BASE}/query/01gNOSUCHCURSOR-2000")
    assert answer.status_code == 400
    assert _first_error(answer)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_collections_retrieve_takes_2000_ids_and_delete_200(org: Org) -> None:
    ids = _leads(org, 2)
    ok = org.call(
        "POST",
        f"{BASE}/composite/sobjects/Lead",
        json={"ids": ids * 1000, "fields": ["LastName"]},
    )
    assert ok.status_code == 200
    assert len(ok.json()) == 2000
    too_many = org.call(
        "POST",
        f"{BASE}/composite/sobjects/Lead",
        json={"ids": ids * 1000 + ids[:1], "fields": ["LastName"]},
    )
    assert too_many.status_code == 400
    assert _first_error(too_many)["errorCode"] == "EXCEEDED_ID_LIMIT"
    delete = org.call(
        "DELETE", f"{BASE}/composite/sobjects", params={"ids": ",".join(ids * 100 + ids[:1])}
    )
    assert delete.status_code == 400
    assert _first_error(delete)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_an_external_id_held_by_two_records_answers_300_and_writes_nothing(org: Org) -> None:
    first = org.store.insert("Account", {"Name": "Acme US", "Domain__c": "acme.com"})
    second = org.store.insert("Account", {"Name": "Acme EU", "Domain__c": "acme.com"})
    read = org.call("GET", f"{BASE}/sobjects/Account/Domain__c/acme.com")
    assert read.status_code == 300
    assert sorted(url.rsplit("/", 1)[1] for url in read.json()) == sorted([first, second])
    upsert = org.call(
        "PATCH", f"{BASE}/sobjects/Account/Domain__c/acme.com", json={"Name": "Renamed"}
    )
    assert upsert.status_code == 300
    names = {row["Name"] for row in org.store.records["Account"].values()}
    assert "Renamed" not in names


def test_a_method_the_resource_lacks_is_405_method_not_allowed(org: Org) -> None:
    answer = org.call("DELETE", f"{BASE}/limits")
    assert answer.status_code == 405
    assert _first_error(answer)["errorCode"] == "METHOD_NOT_ALLOWED"


def test_bulk_ingest_leaves_empty_values_alone_and_nulls_na(org: Org) -> None:
    lead = org.store.insert(
        "Lead", {"LastName": "Doe", "Company": "Acme", "Title": "CTO", "Email": "d@acme.com"}
    )
    job = org.call(
        "POST",
        f"{BASE}/jobs/ingest",
        json={"object": "Lead", "operation": "update", "contentType": "CSV", "lineEnding": "LF"},
    ).json()
    csv_text = f"Id,Title,Email\n{lead},,#N/A\n"
    upload = org.call(
        "PUT",
        f"{BASE}/jobs/ingest/{job['id']}/batches",
        data=csv_text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 201
    org.call("PATCH", f"{BASE}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    row = org.store.get("Lead", lead)
    assert row is not None
    assert (row["Title"], row["Email"]) == ("CTO", None)


def test_a_token_answer_carries_instance_url_id_issued_at_and_its_signature(org: Org) -> None:
    answer = org.http.post(
        org.server.url + "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        },
    )
    body = answer.json()
    assert answer.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == org.server.url
    expected = hmac.new(
        credentials.SALESFORCE_CLIENT_SECRET.encode(),
        (body["id"] + body["issued_at"]).encode(),
        hashlib.sha256,
    ).digest()
    assert base64.b64decode(body["signature"]) == expected


@pytest.mark.parametrize(
    "value", ["2026-05-06T10:00:00Z", "2026-05-06T00:00:00.000+0000", "2026-05-06Z", "06/05/2026"]
)
def test_a_date_field_takes_only_a_day_through_rest(org: Org, value: str) -> None:
    url = f"{BASE}/sobjects/Task/Closedloop_Key__c/mk:1"

    refused = org.call("PATCH", url, json={"Subject": "Met", "ActivityDate": value})
    taken = org.call("PATCH", url, json={"Subject": "Met", "ActivityDate": "2026-05-06"})

    assert refused.status_code == 400
    assert _first_error(refused) == {
        "message": f"Cannot deserialize instance of date from VALUE_STRING value {value} or "
        "request may be missing a required field",
        "errorCode": "JSON_PARSER_ERROR",
    }
    assert taken.status_code == 201
    [task] = org.store.dump()["records"]["Task"]
    assert task["ActivityDate"] == "2026-05-06"


# -- owners, assignment rules and the email opt-out ----------------------------------------------


def _create_leads(org: Org, headers: dict[str, str] | None, *owner: str) -> list[str]:
    """Two Leads through a Composite sObject Collections create (the connector's path), the
    subrequest carrying ``headers``; ``owner``: an OwnerId for both."""
    records = [
        {"attributes": {"type": "Lead"}, "LastName": f"Doe {i}", "Company": "Acme",
         **({"OwnerId": owner[0]} if owner else {})}
        for i in range(2)
    ]  # fmt: skip
    sub: dict[str, Any] = {
        "method": "POST", "url": f"{BASE}/composite/sobjects", "referenceId": "c",
        "body": {"allOrNone": False, "records": records},
    }  # fmt: skip
    if headers is not None:
        sub["httpHeaders"] = headers
    answer = org.call("POST", f"{BASE}/composite", json={"compositeRequest": [sub]})
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["compositeResponse"]
    assert all(r["success"] for r in result["body"]), result
    return [r["id"] for r in result["body"]]


def _owners(org: Org, ids: list[str]) -> set[str]:
    return {org.store.records["Lead"][i]["OwnerId"] for i in ids}


def test_the_assignment_rule_header_defaults_to_true_and_false_or_a_rule_id_overrides(
    org: Org,
) -> None:
    queue = org.store.add_queue("Inbound Leads")
    other = org.store.add_queue("Partner Leads")
    rep = org.store.add_user("Rita", "Rep", "rita.rep@example.com")
    org.store.add_assignment_rule("Inbound", queue)
    partner_rule = org.store.add_assignment_rule("Partner", other, active=False)

    assert _owners(org, _create_leads(org, None)) == {queue}, "no header: the active rule"
    assert _owners(org, _create_leads(org, {"Sforce-Auto-Assign": "true"})) == {queue}
    assert _owners(org, _create_leads(org, {"Sforce-Auto-Assign": "FALSE"}, rep)) == {rep}
    assert _owners(org, _create_leads(org, {"Sforce-Auto-Assign": partner_rule})) == {other}
    # An update without the header runs the active rule too; FALSE keeps the owner.
    [kept, moved] = _create_leads(org, {"Sforce-Auto-Assign": "FALSE"}, rep)
    patch = {"records": [{"attributes": {"type": "Lead"}, "Id": kept, "Rating": "Hot"}]}
    sub = {"method": "PATCH", "url": f"{BASE}/composite/sobjects", "referenceId": "u",
           "body": patch, "httpHeaders": {"Sforce-Auto-Assign": "FALSE"}}  # fmt: skip
    assert org.call("POST", f"{BASE}/composite", json={"compositeRequest": [sub]}).ok
    assert org.call("PATCH", f"{BASE}/sobjects/Lead/{moved}", json={"Rating": "Hot"}).ok
    assert org.store.records["Lead"][kept]["OwnerId"] == rep
    assert org.store.records["Lead"][moved]["OwnerId"] == queue


def test_a_lead_owner_is_an_active_user_or_a_queue_that_holds_leads(org: Org) -> None:
    cases_only = org.store.add_queue("Cases", objects=("Case",))
    leads = org.store.add_queue("Leads")
    gone = org.store.add_user("Gone", "Rep", "gone@example.com", active=False)
    url = f"{BASE}/sobjects/Lead"
    lead = {"LastName": "Doe", "Company": "Acme"}

    not_leads = org.call("POST", url, json={**lead, "OwnerId": cases_only})
    inactive = org.call("POST", url, json={**lead, "OwnerId": gone})
    queued = org.call("POST", url, json={**lead, "OwnerId": leads})
    contact = org.call("POST", f"{BASE}/sobjects/Contact", json={"LastName": "Doe",
                                                                  "OwnerId": leads})  # fmt: skip

    assert _first_error(not_leads)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert _first_error(inactive)["errorCode"] == "INACTIVE_OWNER_OR_USER"
    assert queued.status_code == 201
    assert contact.status_code == 400, "Contacts cannot be owned by queues"
    assert _first_error(contact)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_group_queue_and_assignment_rule_are_queryable_and_leads_carry_the_opt_out(
    org: Org,
) -> None:
    queue = org.store.add_queue("Inbound Leads")
    rule = org.store.add_assignment_rule("Inbound", queue)
    [lead] = _leads(org, 1)

    def query(soql: str) -> list[dict[str, Any]]:
        answer = org.call("GET", f"{BASE}/query", params={"q": soql})
        assert answer.status_code == 200, answer.text
        records: list[dict[str, Any]] = answer.json()["records"]
        return records

    assert [r["Id"] for r in query("SELECT Id FROM Group WHERE Type = 'Queue'")] == [queue]
    assert query("SELECT QueueId FROM QueueSobject WHERE SobjectType = 'Lead'")[0]["QueueId"] == (
        queue
    )
    active = "SELECT Id FROM AssignmentRule WHERE SobjectType = 'Lead' AND Active = true"
    assert [r["Id"] for r in query(active)] == [rule]
    [row] = query("SELECT Id, HasOptedOutOfEmail FROM Lead WHERE LastName = 'Doe 0'")
    assert (row["Id"], row["HasOptedOutOfEmail"]) == (lead, False)
    refused = org.call("POST", f"{BASE}/sobjects/AssignmentRule", json={"Name": "x"})
    assert refused.status_code == 400
