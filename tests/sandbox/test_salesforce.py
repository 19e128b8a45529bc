"""The Salesforce emulator driven by the real simple-salesforce over HTTPS, and its strictness."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from sandbox import credentials
from sandbox.core import FaultRule, LoopbackServer, SandboxState, make_tls_files
from sandbox.salesforce import build_app
from sandbox.salesforce_store import SalesforceStore
from sandbox.seed import generate

VERSION = credentials.SALESFORCE_API_VERSION
BASE = f"/services/data/v{VERSION}"


class Org:
    """A started emulator plus helpers to call it raw (for status codes and error bodies)."""

    def __init__(self, server: LoopbackServer, state: SandboxState, ca_file: Path) -> None:
        self.server = server
        self.state = state
        self.http = requests.Session()
        self.http.verify = str(ca_file)
        self.http.trust_env = False

    @property
    def store(self) -> SalesforceStore:
        store: SalesforceStore = self.state.vendors["salesforce"]
        return store

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = credentials.SALESFORCE_SESSION_ID,
        **kw: Any,
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.server.url + path, headers=headers, timeout=30, **kw)

    def client(self) -> Salesforce:
        return Salesforce(
            instance_url=self.server.url,
            session_id=credentials.SALESFORCE_SESSION_ID,
            session=self.http,
            version=VERSION,
        )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    state = SandboxState(timeout_hold_s=0.05)
    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    server = LoopbackServer(build_app(state), tls=(tls.cert_file, tls.key_file))
    server.start()
    org = Org(server, state, tls.ca_file)
    yield org
    org.http.close()  # no idle keep-alive connection may hold up the server's shutdown
    server.stop()


@pytest.fixture
def org(running: Org) -> Org:
    running.state.reset()
    return running


@pytest.fixture
def sf(org: Org) -> Salesforce:
    return org.client()


def _lead(org: Org, **values: Any) -> str:
    return org.store.insert("Lead", {"LastName": "Doe", "Company": "Acme", **values})


def _error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, list), body
    first: dict[str, Any] = body[0]
    return first


def _tasks(count: int, prefix: str = "mk") -> list[dict[str, Any]]:
    return [
        {
            "attributes": {"type": "Task"},
            "Closedloop_Key__c": f"{prefix}:{i}",
            "Subject": f"Touch {i}",
        }
        for i in range(count)
    ]


# ----------------------------------------------------------------------- simple-salesforce flows


def test_sobject_crud_round_trip_with_simple_salesforce(sf: Salesforce, org: Org) -> None:
    created = sf.Lead.create(
        {"FirstName": "Jane", "LastName": "Doe", "Company": "Acme", "Email": "jane@acme.com"}
    )
    lead = sf.Lead.get(created["id"])
    assert lead["Name"] == "Jane Doe"
    assert lead["Status"] == "Open - Not Contacted"
    assert lead["Id"].startswith("00Q")
    assert len(lead["Id"]) == 18

    assert sf.Lead.update(created["id"], {"Status": "Working - Contacted"}) == 204
    assert sf.Lead.get(created["id"])["Status"] == "Working - Contacted"

    assert sf.Lead.delete(created["id"]) == 204
    assert org.store.dump()["counts"]["Lead"] == 0


def test_upsert_by_external_id_answers_201_then_200(sf: Salesforce, org: Org) -> None:
    assert sf.Task.upsert("Closedloop_Key__c/marketo:1", {"Subject": "Opened email"}) == 201
    assert sf.Task.upsert("Closedloop_Key__c/marketo:1", {"Subject": "Clicked email"}) == 200
    tasks = org.store.dump()["records"]["Task"]
    assert [t["Subject"] for t in tasks] == ["Clicked email"]

    raw = org.call(
        "PATCH", f"{BASE}/sobjects/Task/Closedloop_Key__c/marketo:1", json={"Subject": "x"}
    )
    assert raw.json() == {"id": tasks[0]["Id"], "success": True, "errors": [], "created": False}


def test_query_all_iter_pages_across_more_than_2000_records(sf: Salesforce, org: Org) -> None:
    for i in range(2600):
        _lead(org, Email=f"p{i}@example.com")
    org.state.reset_counters()

    emails = [r["Email"] for r in sf.query_all_iter("SELECT Id, Email FROM Lead ORDER BY Email")]

    assert len(emails) == 2600
    assert emails == sorted(emails)
    assert org.state.counts("salesforce") == {"query": 1, "query_more": 1}


def test_query_honours_batch_size_header(sf: Salesforce, org: Org) -> None:
    for i in range(450):
        _lead(org, Email=f"p{i}@example.com")
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})
    assert page["totalSize"] == 450
    assert len(page["records"]) == 200
    assert page["nextRecordsUrl"].startswith(f"{BASE}/query/01g")
    assert page["nextRecordsUrl"].endswith("-200")


def test_query_all_returns_deleted_records_and_query_does_not(sf: Salesforce, org: Org) -> None:
    keep, gone = _lead(org, Email="keep@x.com"), _lead(org, Email="gone@x.com")
    sf.Lead.delete(gone)
    live = sf.query("SELECT Id FROM Lead")["records"]
    everything = sf.query_all("SELECT Id, IsDeleted FROM Lead", include_deleted=True)["records"]
    assert [r["Id"] for r in live] == [keep]
    assert {(r["Id"], r["IsDeleted"]) for r in everything} == {(keep, False), (gone, True)}


def test_query_returns_relationship_fields_nested_like_salesforce(sf: Salesforce, org: Org) -> None:
    account = org.store.insert("Account", {"Name": "Acme", "Domain__c": "acme.com"})
    org.store.insert("Contact", {"LastName": "Roe", "AccountId": account, "Email": "r@acme.com"})
    org.store.insert("Contact", {"LastName": "Solo"})
    records = sf.query(
        "SELECT LastName, Account.Domain__c, Owner.Name FROM Contact ORDER BY LastName"
    )["records"]
    assert records[0]["Account"]["Domain__c"] == "acme.com"
    assert records[0]["Account"]["attributes"]["type"] == "Account"
    assert records[0]["Owner"]["Name"] == "Closedloop Integration"
    assert records[1]["Account"] is None


def test_count_query_reports_total_size_only(sf: Salesforce, org: Org) -> None:
    for i in range(3):
        _lead(org, Email=f"c{i}@x.com", Status="Recycled" if i else "Open - Not Contacted")
    result = sf.query("SELECT COUNT() FROM Lead WHERE Status = 'Recycled'")
    assert result == {"totalSize": 2, "done": True, "records": []}


def test_collections_upsert_through_restful(sf: Salesforce, org: Org) -> None:
    first = sf.restful(
        "composite/sobjects/Task/Closedloop_Key__c",
        method="PATCH",
        json={"allOrNone": False, "records": _tasks(3)},
    )
    again = sf.restful(
        "composite/sobjects/Task/Closedloop_Key__c",
        method="PATCH",
        json={"allOrNone": False, "records": _tasks(4)},
    )
    assert [r["created"] for r in first] == [True, True, True]
    assert [r["created"] for r in again] == [False, False, False, True]
    assert [r["id"] for r in again[:3]] == [r["id"] for r in first]
    assert org.store.dump()["counts"]["Task"] == 4


def test_composite_with_five_collections_upserts_1000_records_in_one_counted_call(
    sf: Salesforce, org: Org
) -> None:
    org.state.reset_counters()
    subrequests = [
        {
            "method": "PATCH",
            "url": f"{BASE}/composite/sobjects/Task/Closedloop_Key__c",
            "referenceId": f"chunk{n}",
            "body": {"allOrNone": False, "records": _tasks(200, prefix=f"c{n}")},
        }
        for n in range(5)
    ]
    result = sf.restful(
        "composite", method="POST", json={"allOrNone": False, "compositeRequest": subrequests}
    )

    assert [r["httpStatusCode"] for r in result["compositeResponse"]] == [200] * 5
    assert org.store.dump()["counts"]["Task"] == 1000
    assert org.state.counts("salesforce") == {"composite": 1}
    assert sf.api_usage["api-usage"].used == 1


def test_composite_subrequests_can_reference_earlier_results(sf: Salesforce, org: Org) -> None:
    result = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Account",
                    "referenceId": "acct",
                    "body": {"Name": "Acme"},
                },
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Contact",
                    "referenceId": "person",
                    "body": {"LastName": "Roe", "AccountId": "@{acct.id}"},
                },
                {
                    "method": "GET",
                    "url": f"{BASE}/sobjects/Contact/@{{person.id}}?fields=AccountId",
                    "referenceId": "check",
                },
            ],
        },
    )
    responses = result["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [201, 201, 200]
    assert responses[2]["body"]["AccountId"] == responses[0]["body"]["id"]


def test_bulk2_upsert_and_query_with_simple_salesforce(sf: Salesforce, org: Org) -> None:
    records = [{"Closedloop_Key__c": f"bulk:{i}", "Subject": f"Touch {i}"} for i in range(25)]
    results = sf.bulk2.Task.upsert(records=records, external_id_field="Closedloop_Key__c", wait=0)
    assert results[0]["numberRecordsProcessed"] == 25
    assert results[0]["numberRecordsFailed"] == 0
    results = sf.bulk2.Task.upsert(
        records=records[:5], external_id_field="Closedloop_Key__c", wait=0
    )
    assert org.store.dump()["counts"]["Task"] == 25

    job_id = results[0]["job_id"]
    successes = sf.bulk2.Task.get_successful_records(job_id)
    assert successes.splitlines()[0].startswith("sf__Id,sf__Created")
    assert successes.count("false") == 5

    pages = list(
        sf.bulk2.Task.query("SELECT Closedloop_Key__c, Subject FROM Task", max_records=10, wait=0)
    )
    assert len(pages) == 3
    rows = [line for page in pages for line in page.splitlines()[1:]]
    assert len(rows) == 25
    assert pages[0].splitlines()[0] == '"Closedloop_Key__c","Subject"'


def test_bulk2_failed_rows_report_salesforce_errors(sf: Salesforce, org: Org) -> None:
    records = [{"LastName": "Ok", "Company": "Acme"}, {"LastName": "NoCompany", "Company": ""}]
    results = sf.bulk2.Lead.insert(records=records, wait=0)
    assert results[0]["numberRecordsFailed"] == 1
    failed = sf.bulk2.Lead.get_failed_records(results[0]["job_id"])
    assert "REQUIRED_FIELD_MISSING:Required fields are missing: [Company]" in failed


def test_bulk2_job_reports_in_progress_before_complete(org: Org) -> None:
    job = org.call(
        "POST", f"{BASE}/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Lead"}
    ).json()
    first = org.call("GET", f"{BASE}/jobs/query/{job['id']}").json()
    second = org.call("GET", f"{BASE}/jobs/query/{job['id']}").json()
    assert (first["state"], second["state"]) == ("InProgress", "JobComplete")


def test_describe_reports_lengths_picklists_and_external_ids(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert fields["Subject"]["length"] == 255
    assert fields["Closedloop_Key__c"]["externalId"] is True
    assert fields["Closedloop_Key__c"]["unique"] is True
    assert fields["Status"]["restrictedPicklist"] is True
    assert "Completed" in [p["value"] for p in fields["Status"]["picklistValues"]]
    assert fields["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert fields["IsClosed"]["createable"] is False
    names = [o["name"] for o in sf.describe()["sobjects"]]
    assert {"Lead", "Contact", "Task", "CampaignInfluence"} <= set(names)


def test_every_response_carries_exact_api_usage(org: Org) -> None:
    org.store.daily_limit = 500
    seen = []
    for _ in range(3):
        seen.append(org.call("GET", f"{BASE}/limits").headers["Sforce-Limit-Info"])
    limits = org.call("GET", f"{BASE}/limits").json()
    assert seen == ["api-usage=1/500", "api-usage=2/500", "api-usage=3/500"]
    assert limits["DailyApiRequests"] == {"Max": 500, "Remaining": 496}
    assert org.state.total_calls("salesforce") == 4


def test_incremental_pull_sees_only_records_modified_after_the_cursor(
    sf: Salesforce, org: Org
) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    org.store.clock.set(start)
    old = _lead(org, Email="old@x.com")
    changed = _lead(org, Email="changed@x.com")
    org.store.clock.advance(timedelta(minutes=5))
    sf.Lead.update(changed, {"Status": "Recycled"})
    rows = sf.query(
        "SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp > 2030-01-01T00:00:00Z"
    )["records"]
    assert [r["Id"] for r in rows] == [changed]
    assert rows[0]["SystemModstamp"] == "2030-01-01T00:05:00.000+0000"
    assert old != changed
    with pytest.raises(ValueError, match="only moves forward"):
        org.store.clock.set(start)


def test_load_world_projects_people_accounts_and_conversions() -> None:
    world = generate(7, size=80)
    store = SalesforceStore()
    store.load_world(world)
    dump = store.dump()

    leads = [p for p in world.people if p.crm_kind == "lead"]
    contacts = [p for p in world.people if p.crm_kind == "contact"]
    converted = [p for p in contacts if p.converted_at is not None]
    assert dump["counts"]["Account"] == len(world.accounts)
    assert dump["counts"]["Contact"] == len(contacts)
    assert dump["counts"]["Lead"] == len(leads) + len(converted)
    assert dump["counts"]["Opportunity"] == len(world.opportunities)
    assert dump["counts"]["User"] == len(world.owners) + 1
    assert dump["counts"]["CampaignMember"] > 0
    for person in converted:
        lead = store.get("Lead", store.world_ids[f"{person.id}#lead"])
        assert lead is not None
        assert lead["IsConverted"] is True
        assert lead["ConvertedContactId"] == store.world_ids[person.id]


def test_convert_lead_helper_links_lead_to_new_contact(org: Org) -> None:
    lead_id = _lead(org, Email="conv@acme.com")
    contact_id = org.store.convert_lead(lead_id)
    lead = org.store.get("Lead", lead_id)
    assert lead is not None
    assert (lead["IsConverted"], lead["ConvertedContactId"]) == (True, contact_id)


# ------------------------------------------------------------------------------- OAuth


def test_password_grant_mints_a_token_that_opens_the_api(org: Org) -> None:
    response = org.http.post(
        org.server.url + "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
            "username": credentials.SALESFORCE_USERNAME,
            "password": credentials.SALESFORCE_PASSWORD + credentials.SALESFORCE_SECURITY_TOKEN,
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == org.server.url
    assert org.call("GET", f"{BASE}/limits", token=body["access_token"]).status_code == 200


def test_wrong_password_is_invalid_grant(org: Org) -> None:
    response = org.http.post(
        org.server.url + "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
            "username": credentials.SALESFORCE_USERNAME,
            "password": credentials.SALESFORCE_PASSWORD,  # security token missing
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }


def test_client_credentials_grant_checks_the_secret(org: Org) -> None:
    url = org.server.url + "/services/oauth2/token"
    good = {
        "grant_type": "client_credentials",
        "client_id": credentials.SALESFORCE_CLIENT_ID,
        "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
    }
    assert org.http.post(url, data=good).status_code == 200
    bad = org.http.post(url, data={**good, "client_secret": "nope"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client"


@functools.cache
def _private_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@functools.cache
def _certificate_pem() -> str:
    """The self-signed certificate of ``_private_key_pem``, as uploaded to a connected app."""
    key = serialization.load_pem_private_key(_private_key_pem(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "closedloop")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _assertion(
    expires_in: int, *, aud: str = "https://login.salesforce.com", key: bytes | None = None
) -> str:
    claims = {
        "iss": credentials.SALESFORCE_CLIENT_ID,
        "sub": credentials.SALESFORCE_USERNAME,
        "aud": aud,
        "exp": int(time.time()) + expires_in,
    }
    return jwt.encode(claims, key or _private_key_pem(), algorithm="RS256")


def _jwt_login(org: Org, assertion: str) -> requests.Response:
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    url = org.server.url + "/services/oauth2/token"
    return org.http.post(url, data={"grant_type": grant, "assertion": assertion})


def test_jwt_bearer_grant_accepts_a_fresh_assertion_and_refuses_an_expired_one(org: Org) -> None:
    org.store.jwt_certificates.append(_certificate_pem())
    fresh = _jwt_login(org, _assertion(170))
    expired = _jwt_login(org, _assertion(-60))
    assert fresh.status_code == 200
    assert expired.status_code == 400
    assert expired.json() == {
        "error": "invalid_grant",
        "error_description": "expired authorization code",
    }


def test_a_jwt_audience_naming_the_instance_url_is_refused_as_audience_is_invalid(
    org: Org,
) -> None:
    """Salesforce takes the assertion at My Domain, but its aud must be the authorization
    server (login/test.salesforce.com or an Experience Cloud site), never the instance URL."""
    org.store.jwt_certificates.append(_certificate_pem())

    for aud in (org.server.url, "https://acme.my.salesforce.com"):
        refused = _jwt_login(org, _assertion(170, aud=aud))
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "invalid_grant",
            "error_description": "audience is invalid",
        }
    assert _jwt_login(org, _assertion(170, aud="https://test.salesforce.com")).status_code == 200
    site = "https://acme.my.site.com/partners"
    assert _jwt_login(org, _assertion(170, aud=site)).status_code == 400
    org.store.experience_sites.add(site)
    assert _jwt_login(org, _assertion(170, aud=site)).status_code == 200


def test_a_jwt_assertion_not_signed_by_the_connected_apps_certificate_is_refused(
    org: Org,
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    invalid = {"error": "invalid_grant", "error_description": "invalid assertion"}

    assert _jwt_login(org, _assertion(170)).json() == invalid  # no certificate uploaded yet
    org.store.jwt_certificates.append(_certificate_pem())
    assert _jwt_login(org, _assertion(170, key=other)).json() == invalid
    assert _jwt_login(org, _assertion(170)).status_code == 200


def test_an_org_that_blocks_the_username_password_flow_refuses_even_correct_credentials(
    org: Org,
) -> None:
    form = {
        "grant_type": "password",
        "client_id": credentials.SALESFORCE_CLIENT_ID,
        "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        "username": credentials.SALESFORCE_USERNAME,
        "password": credentials.SALESFORCE_PASSWORD + credentials.SALESFORCE_SECURITY_TOKEN,
    }
    url = org.server.url + "/services/oauth2/token"
    assert org.http.post(url, data=form).status_code == 200

    org.store.password_flow_allowed = False  # a new org: Allow OAuth Username-Password Flows off
    blocked = org.http.post(url, data=form)

    assert blocked.status_code == 400
    assert blocked.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }


# ------------------------------------------------------------------------------- strictness


def test_unknown_token_is_invalid_session_id(org: Org) -> None:
    response = org.call("GET", f"{BASE}/limits", token="00Dforged!token")
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert org.call("GET", f"{BASE}/limits", token=None).status_code == 401


def test_simple_salesforce_raises_expired_session_for_a_bad_token(org: Org) -> None:
    client = Salesforce(
        instance_url=org.server.url, session_id="bogus", session=org.http, version=VERSION
    )
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT Id FROM Lead")


def test_too_long_subject_is_string_too_long(org: Org) -> None:
    response = org.call("POST", f"{BASE}/sobjects/Task", json={"Subject": "x" * 256})
    error = _error(response)
    assert response.status_code == 400
    assert error["errorCode"] == "STRING_TOO_LONG"
    assert error["message"] == f"Subject: data value too large: {'x' * 256} (max length=255)"
    assert error["fields"] == ["Subject"]


def test_description_longer_than_32000_is_string_too_long(org: Org) -> None:
    response = org.call("POST", f"{BASE}/sobjects/Task", json={"Description": "d" * 32001})
    assert _error(response)["errorCode"] == "STRING_TOO_LONG"


def test_bad_restricted_picklist_value_is_refused(org: Org) -> None:
    lead = _lead(org)
    response = org.call("PATCH", f"{BASE}/sobjects/Lead/{lead}", json={"Status": "Hot Prospect"})
    error = _error(response)
    assert response.status_code == 400
    assert error["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error["message"] == "Status: bad value for restricted picklist field: Hot Prospect"


def test_bad_opportunity_stage_is_refused(org: Org) -> None:
    response = org.call(
        "POST",
        f"{BASE}/sobjects/Opportunity",
        json={"Name": "Deal", "StageName": "Won-ish", "CloseDate": "2030-01-01"},
    )
    assert _error(response)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_missing_last_name_is_required_field_missing(org: Org) -> None:
    response = org.call("POST", f"{BASE}/sobjects/Contact", json={"FirstName": "Ann"})
    error = _error(response)
    assert response.status_code == 400
    assert error == {
        "message": "Required fields are missing: [LastName]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["LastName"],
    }


def test_lead_needs_both_last_name_and_company(org: Org) -> None:
    error = _error(org.call("POST", f"{BASE}/sobjects/Lead", json={"Email": "a@b.com"}))
    assert error["message"] == "Required fields are missing: [LastName, Company]"


def test_unknown_field_on_create_is_invalid_field(org: Org) -> None:
    response = org.call(
        "POST", f"{BASE}/sobjects/Lead", json={"LastName": "X", "Company": "Y", "Score__c": 5}
    )
    assert response.status_code == 400
    assert _error(response) == {
        "message": "No such column 'Score__c' on sobject of type Lead",
        "errorCode": "INVALID_FIELD",
    }


def test_unknown_field_in_a_collection_fails_the_whole_request(org: Org) -> None:
    records = _tasks(3)
    records[1]["Bogus__c"] = "x"
    response = org.call(
        "PATCH", f"{BASE}/composite/sobjects/Task/Closedloop_Key__c", json={"records": records}
    )
    assert response.status_code == 400
    assert _error(response)["errorCode"] == "INVALID_FIELD"
    assert org.store.dump()["counts"]["Task"] == 0


def test_collection_of_201_records_is_exceeded_id_limit(org: Org) -> None:
    response = org.call(
        "PATCH", f"{BASE}/composite/sobjects/Task/Closedloop_Key__c", json={"records": _tasks(201)}
    )
    assert response.status_code == 400
    assert _error(response) == {
        "message": "record limit reached. cannot submit more than 200 records into this call",
        "errorCode": "EXCEEDED_ID_LIMIT",
    }


def test_composite_with_26_subrequests_is_refused(org: Org) -> None:
    subrequests = [
        {"method": "GET", "url": f"{BASE}/limits", "referenceId": f"r{i}"} for i in range(26)
    ]
    response = org.call("POST", f"{BASE}/composite", json={"compositeRequest": subrequests})
    body = response.json()["compositeResponse"][0]["body"][0]
    assert response.status_code == 400
    assert body["errorCode"] == "LIMIT_EXCEEDED"
    assert "more than 25 operations" in body["message"]


def test_composite_with_six_collections_is_refused(org: Org) -> None:
    subrequests = [
        {
            "method": "PATCH",
            "url": f"{BASE}/composite/sobjects/Task/Closedloop_Key__c",
            "referenceId": f"c{i}",
            "body": {"records": _tasks(1, prefix=f"c{i}")},
        }
        for i in range(6)
    ]
    response = org.call("POST", f"{BASE}/composite", json={"compositeRequest": subrequests})
    body = response.json()["compositeResponse"][0]["body"][0]
    assert body["errorCode"] == "LIMIT_EXCEEDED"
    assert "more than 5 sObject Collections or query operations" in body["message"]
    assert org.store.dump()["counts"]["Task"] == 0


def test_all_or_none_collection_rolls_back_every_record(org: Org) -> None:
    records = _tasks(3)
    records[2]["Subject"] = "s" * 300
    response = org.call(
        "POST", f"{BASE}/composite/sobjects", json={"allOrNone": True, "records": records}
    )
    results = response.json()
    assert response.status_code == 200
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert org.store.dump()["counts"]["Task"] == 0


def test_partial_collection_keeps_the_good_records(org: Org) -> None:
    records = _tasks(3)
    records[1]["Status"] = "Maybe"
    results = org.call(
        "POST", f"{BASE}/composite/sobjects", json={"allOrNone": False, "records": records}
    ).json()
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["fields"] == ["Status"]
    assert org.store.dump()["counts"]["Task"] == 2


def test_all_or_none_composite_rolls_back_and_halts_the_rest(org: Org) -> None:
    response = org.call(
        "POST",
        f"{BASE}/composite",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Account",
                    "referenceId": "a",
                    "body": {"Name": "Acme"},
                },
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Contact",
                    "referenceId": "b",
                    "body": {"FirstName": "No"},
                },
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Account",
                    "referenceId": "c",
                    "body": {"Name": "Late"},
                },
            ],
        },
    )
    codes = [
        (r["httpStatusCode"], r["body"][0]["errorCode"])
        for r in response.json()["compositeResponse"]
    ]
    assert codes == [
        (400, "PROCESSING_HALTED"),
        (400, "REQUIRED_FIELD_MISSING"),
        (400, "PROCESSING_HALTED"),
    ]
    assert org.store.dump()["counts"]["Account"] == 0


def test_duplicate_external_id_on_create_is_duplicate_value(org: Org) -> None:
    first = org.call("POST", f"{BASE}/sobjects/Task", json={"Closedloop_Key__c": "k:1"}).json()[
        "id"
    ]
    response = org.call("POST", f"{BASE}/sobjects/Task", json={"Closedloop_Key__c": "K:1"})
    error = _error(response)
    assert error["errorCode"] == "DUPLICATE_VALUE"
    assert (
        error["message"]
        == f"duplicate value found: Closedloop_Key__c duplicates value on record with id: {first}"
    )


def test_same_external_id_twice_in_one_upsert_is_refused_for_both(org: Org) -> None:
    records = _tasks(2)
    records[1]["Closedloop_Key__c"] = records[0]["Closedloop_Key__c"]
    results = org.call(
        "PATCH", f"{BASE}/composite/sobjects/Task/Closedloop_Key__c", json={"records": records}
    ).json()
    assert [r["errors"][0]["statusCode"] for r in results] == ["DUPLICATE_EXTERNAL_ID"] * 2


def test_malformed_who_id_is_malformed_id(org: Org) -> None:
    error = _error(org.call("POST", f"{BASE}/sobjects/Task", json={"WhoId": "not-an-id"}))
    assert error["errorCode"] == "MALFORMED_ID"
    assert error["message"] == "Name ID: id value of incorrect type: not-an-id"


def test_who_id_of_a_missing_lead_is_invalid_cross_reference_key(org: Org) -> None:
    missing = org.store.new_id("Lead")
    error = _error(org.call("POST", f"{BASE}/sobjects/Task", json={"WhoId": missing}))
    assert error["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_who_id_pointing_at_an_account_is_refused(org: Org) -> None:
    account = org.store.insert("Account", {"Name": "Acme"})
    error = _error(org.call("POST", f"{BASE}/sobjects/Task", json={"WhoId": account}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_read_only_field_on_update_is_invalid_field_for_insert_update(org: Org) -> None:
    lead = _lead(org)
    error = _error(org.call("PATCH", f"{BASE}/sobjects/Lead/{lead}", json={"IsConverted": True}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error["fields"] == ["IsConverted"]


def test_id_in_an_insert_is_refused(org: Org) -> None:
    error = _error(
        org.call(
            "POST",
            f"{BASE}/sobjects/Lead",
            json={"Id": _lead(org), "LastName": "X", "Company": "Y"},
        )
    )
    assert (error["errorCode"], error["message"]) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "cannot specify Id in an insert call",
    )


def test_invalid_email_is_refused(org: Org) -> None:
    error = _error(
        org.call(
            "POST", f"{BASE}/sobjects/Lead", json={"LastName": "X", "Company": "Y", "Email": "nope"}
        )
    )
    assert (error["errorCode"], error["message"]) == (
        "INVALID_EMAIL_ADDRESS",
        "Email: invalid email address: nope",
    )


def test_wrong_json_type_is_json_parser_error(org: Org) -> None:
    response = org.call(
        "POST",
        f"{BASE}/sobjects/Opportunity",
        json={"Name": "D", "StageName": "Prospecting", "CloseDate": "2030-01-01", "Amount": "lots"},
    )
    assert _error(response)["errorCode"] == "JSON_PARSER_ERROR"


def test_unknown_sobject_is_not_found_in_rest_and_invalid_type_in_soql(org: Org) -> None:
    rest = org.call("POST", f"{BASE}/sobjects/Widget__c", json={"Name": "x"})
    soql = org.call("GET", f"{BASE}/query", params={"q": "SELECT Id FROM Widget__c"})
    collection = org.call(
        "POST",
        f"{BASE}/composite/sobjects",
        json={"records": [{"attributes": {"type": "Widget__c"}}]},
    )
    assert (rest.status_code, _error(rest)["errorCode"]) == (404, "NOT_FOUND")
    assert _error(soql)["errorCode"] == "INVALID_TYPE"
    assert "sObject type 'Widget__c' is not supported" in _error(soql)["message"]
    assert _error(collection)["errorCode"] == "INVALID_TYPE"


def test_malformed_soql_is_malformed_query_with_position(org: Org) -> None:
    response = org.call("GET", f"{BASE}/query", params={"q": "SELECT Id FROM Lead WHERE"})
    error = _error(response)
    assert response.status_code == 400
    assert error["errorCode"] == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:26" in error["message"]


def test_simple_salesforce_raises_malformed_request_for_bad_soql(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Lead GROUP BY Id")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_unknown_field_in_soql_is_invalid_field_with_the_real_message(org: Org) -> None:
    error = _error(org.call("GET", f"{BASE}/query", params={"q": "SELECT Id, Bogus FROM Lead"}))
    assert error["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Bogus' on entity 'Lead'." in error["message"]
    assert "ERROR at Row:1:Column:12" in error["message"]


def test_mixing_and_or_without_parentheses_is_malformed(org: Org) -> None:
    q = "SELECT Id FROM Lead WHERE Email = 'a' AND Company = 'b' OR Title = 'c'"
    assert (
        _error(org.call("GET", f"{BASE}/query", params={"q": q}))["errorCode"] == "MALFORMED_QUERY"
    )


def test_offset_above_2000_is_refused(org: Org) -> None:
    error = _error(
        org.call("GET", f"{BASE}/query", params={"q": "SELECT Id FROM Lead LIMIT 10 OFFSET 2001"})
    )
    assert error == {
        "message": "Maximum SOQL offset allowed is 2000",
        "errorCode": "NUMBER_OUTSIDE_VALID_RANGE",
    }


def test_query_longer_than_100000_characters_is_refused(org: Org) -> None:
    in_list = ",".join(f"'{i:010d}@example.com'" for i in range(4200))
    q = "SELECT Id FROM Lead WHERE Email IN (" + in_list + ")"  # noqa: S608 - SOQL for the emulator
    assert len(q) > 100_000
    response = org.call(
        "POST",
        f"{BASE}/composite",
        json={
            "compositeRequest": [
                {
                    "method": "GET",
                    "url": f"{BASE}/query?q=" + requests.utils.quote(q),
                    "referenceId": "q",
                }
            ]
        },
    )
    body = response.json()["compositeResponse"][0]
    assert body["httpStatusCode"] == 400
    assert body["body"][0]["errorCode"] == "MALFORMED_QUERY"


def test_exhausted_daily_allowance_answers_request_limit_exceeded(org: Org) -> None:
    org.store.daily_limit = 2
    statuses = [org.call("GET", f"{BASE}/limits").status_code for _ in range(3)]
    last = org.call("GET", f"{BASE}/limits")
    assert statuses == [200, 200, 403]
    assert last.json() == [
        {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}
    ]
    assert last.headers["Sforce-Limit-Info"] == "api-usage=2/2"


def test_deleting_twice_is_entity_is_deleted(org: Org) -> None:
    lead = _lead(org)
    assert org.call("DELETE", f"{BASE}/sobjects/Lead/{lead}").status_code == 204
    again = org.call("DELETE", f"{BASE}/sobjects/Lead/{lead}")
    assert (again.status_code, _error(again)["errorCode"]) == (404, "ENTITY_IS_DELETED")


def test_upsert_on_a_field_that_is_not_an_external_id_is_not_found(org: Org) -> None:
    response = org.call(
        "PATCH", f"{BASE}/sobjects/Task/Subject/hello", json={"Status": "Completed"}
    )
    assert response.status_code == 404
    assert (
        _error(response)["message"]
        == "Provided external ID field does not exist or is not accessible: Subject"
    )


def test_api_versions_outside_v50_to_the_newest_release_are_not_found(org: Org) -> None:
    assert org.call("GET", "/services/data/v49.0/limits").status_code == 404
    assert org.call("GET", "/services/data/v62.0/limits").status_code == 200
    assert org.call("GET", "/services/data/v68.0/limits").status_code == 200
    assert org.call("GET", "/services/data/v69.0/limits").status_code == 404


def test_the_versions_resource_lists_each_release_up_to_winter_27_with_its_name(org: Org) -> None:
    listed = org.call("GET", "/services/data/").json()

    assert listed[0] == {"label": "Winter '21", "url": "/services/data/v50.0", "version": "50.0"}
    assert {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"} in listed
    assert listed[-1] == {"label": "Winter '27", "url": "/services/data/v68.0", "version": "68.0"}
    assert [v["version"] for v in listed] == [f"{n}.0" for n in range(50, 69)]


# ------------------------------------------------------------------------------- faults


def test_injected_429_and_403_answer_request_limit_exceeded(org: Org) -> None:
    org.state.faults.configure([FaultRule("salesforce", "429", 1.0)])
    response = org.call("GET", f"{BASE}/limits")
    assert response.status_code == 403
    assert _error(response)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "Sforce-Limit-Info" in response.headers


def test_injected_expired_token_revokes_a_minted_token_but_not_the_fixed_session(org: Org) -> None:
    minted = org.http.post(
        org.server.url + "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        },
    ).json()["access_token"]
    org.state.faults.configure([FaultRule("salesforce", "expired_token", 1.0)])
    assert org.call("GET", f"{BASE}/limits", token=minted).status_code == 401
    assert org.call("GET", f"{BASE}/limits").status_code == 401
    org.state.faults.configure([])
    assert (
        _error(org.call("GET", f"{BASE}/limits", token=minted))["errorCode"] == "INVALID_SESSION_ID"
    )
    assert org.call("GET", f"{BASE}/limits").status_code == 200


def test_injected_server_errors_and_timeouts_use_vendor_shapes(org: Org) -> None:
    org.state.faults.configure([FaultRule("salesforce", "503", 1.0)])
    assert _error(org.call("GET", f"{BASE}/limits"))["errorCode"] == "SERVER_UNAVAILABLE"
    org.state.faults.configure([FaultRule("salesforce", "timeout", 1.0)])
    assert org.call("GET", f"{BASE}/limits").status_code == 504
    assert org.state.counts("salesforce") == {"limits": 2}


def test_token_endpoint_ignores_faults_other_than_server_errors(org: Org) -> None:
    org.state.faults.configure([FaultRule("salesforce", "expired_token", 1.0)])
    data = {
        "grant_type": "client_credentials",
        "client_id": credentials.SALESFORCE_CLIENT_ID,
        "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
    }
    assert org.http.post(org.server.url + "/services/oauth2/token", data=data).status_code == 200
    org.state.faults.configure([FaultRule("salesforce", "500", 1.0)])
    assert org.http.post(org.server.url + "/services/oauth2/token", data=data).status_code == 500
    assert org.state.counts("salesforce") == {"oauth_token": 2}


# ------------------------------------------------------------------------------ row locks


def test_an_unable_to_lock_row_fault_refuses_single_records_inside_a_successful_collection(
    org: Org,
) -> None:
    org.state.faults.configure([FaultRule("salesforce", "unable_to_lock_row", 0.25)], seed=3)
    records = _tasks(200, prefix="lock")

    response = org.call(
        "PATCH",
        f"{BASE}/composite/sobjects/Task/Closedloop_Key__c",
        json={"allOrNone": False, "records": records},
    )

    assert response.status_code == 200
    results = response.json()
    locked = [r for r in results if not r["success"]]
    assert 25 <= len(locked) <= 75
    assert all(r["errors"] == [] for r in results if r["success"])
    assert {r["id"] for r in locked} == {None}
    assert locked[0]["errors"] == [
        {
            "statusCode": "UNABLE_TO_LOCK_ROW",
            "message": "unable to obtain exclusive access to this record or 200 records",
            "fields": [],
        }
    ]
    saved = {t["Closedloop_Key__c"] for t in org.store.dump()["records"]["Task"]}
    assert len(saved) == 200 - len(locked)
    assert org.state.counts("salesforce") == {"collections_upsert": 1}


def test_a_record_fault_leaves_the_call_level_fault_sequence_as_it_was(org: Org) -> None:
    def statuses(spec: list[FaultRule]) -> list[int]:
        org.state.faults.configure(spec, seed=9)
        return [org.call("GET", f"{BASE}/limits").status_code for _ in range(60)]

    plain = statuses([FaultRule("salesforce", "503", 0.2)])
    mixed = statuses(
        [FaultRule("salesforce", "503", 0.2), FaultRule("salesforce", "unable_to_lock_row", 0.5)]
    )

    assert 503 in plain
    assert mixed == plain


def test_a_save_touching_a_record_another_transaction_holds_fails_until_the_lock_is_released(
    org: Org,
) -> None:
    """Salesforce locks the parent a record refers to (a Task locks its Lead) and waits at most
    10 s for another transaction's lock before refusing that record."""
    busy, free = _lead(org), _lead(org)
    records = [
        {**_tasks(1, prefix="busy")[0], "WhoId": busy},
        {**_tasks(1, prefix="free")[0], "WhoId": free},
    ]
    url = f"{BASE}/composite/sobjects/Task/Closedloop_Key__c"
    org.store.hold_locks([busy[:15]])

    first = org.call("PATCH", url, json={"allOrNone": False, "records": records}).json()

    assert [r["success"] for r in first] == [False, True]
    assert first[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    org.store.release_locks()
    again = org.call("PATCH", url, json={"allOrNone": False, "records": records}).json()
    assert [r["success"] for r in again] == [True, True]
    assert [r["created"] for r in again] == [True, False]


def test_single_record_saves_touching_a_held_record_are_refused_until_the_lock_is_released(
    org: Org,
) -> None:
    """The sObject resource (one record a call) meets another transaction's locks as the
    collections do: HTTP 400 with UNABLE_TO_LOCK_ROW, nothing saved."""
    busy = _lead(org)
    org.store.hold_locks([busy])
    expected = [
        {
            "message": "unable to obtain exclusive access to this record",
            "errorCode": "UNABLE_TO_LOCK_ROW",
            "fields": [],
        }
    ]
    task = {"Subject": "Call", "WhoId": busy}

    refused = [
        org.call("PATCH", f"{BASE}/sobjects/Lead/{busy}", json={"Title": "CFO"}),
        org.call("POST", f"{BASE}/sobjects/Task", json=task),
        org.call("PATCH", f"{BASE}/sobjects/Task/Closedloop_Key__c/mk:1", json=task),
        org.call("DELETE", f"{BASE}/sobjects/Lead/{busy}"),
    ]

    assert [r.status_code for r in refused] == [400] * 4
    assert [r.json() for r in refused] == [expected] * 4
    assert org.store.get("Lead", busy)["Title"] is None  # type: ignore[index]
    assert org.store.dump()["counts"]["Task"] == 0
    org.store.release_locks()
    assert org.call("PATCH", f"{BASE}/sobjects/Lead/{busy}", json={"Title": "CFO"}).ok
    assert org.call("POST", f"{BASE}/sobjects/Task", json=task).status_code == 201


# ------------------------------------------------------------------------ converted leads


def test_a_converted_lead_refuses_updates_alone_and_in_collections(org: Org) -> None:
    converted, open_lead = _lead(org), _lead(org)
    contact = org.store.convert_lead(converted)
    refusal = {"errorCode": "CANNOT_UPDATE_CONVERTED_LEAD",
               "message": "cannot reference converted lead", "fields": []}  # fmt: skip

    single = org.call("PATCH", f"{BASE}/sobjects/Lead/{converted}", json={"Title": "CFO"})
    collection = org.call(
        "PATCH",
        f"{BASE}/composite/sobjects",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "Id": converted, "Title": "CFO"},
                {"attributes": {"type": "Lead"}, "Id": open_lead, "Title": "CFO"},
            ],
        },
    ).json()

    assert single.status_code == 400
    assert single.json() == [refusal]
    assert collection[0] == {
        "id": None,
        "success": False,
        "errors": [{"statusCode": refusal["errorCode"], "message": refusal["message"],
                    "fields": []}],
    }  # fmt: skip
    assert collection[1]["success"] is True
    assert org.store.get("Lead", converted)["Title"] is None  # type: ignore[index]
    assert org.store.get("Lead", converted)["ConvertedContactId"] == contact  # type: ignore[index]
    assert org.call("PATCH", f"{BASE}/sobjects/Contact/{contact}", json={"Title": "CFO"}).ok
