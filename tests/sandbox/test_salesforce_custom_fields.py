"""Custom fields in the Salesforce emulator: created through the Tooling API, as an admin does,
then seen by describe and written and read through the normal APIs."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.sandbox.test_salesforce import BASE, Org, org, running, sf  # noqa: F401 - fixtures

CAMPAIGN_NAME = {"type": "Text", "length": 255, "label": "Campaign Name"}


def _create(sf: Salesforce, full_name: str, metadata: dict[str, Any]) -> Any:  # noqa: F811 - not the fixture
    return sf.toolingexecute(
        "sobjects/CustomField", method="POST", data={"FullName": full_name, "Metadata": metadata}
    )


def _describe_field(sf: Salesforce, sobject: str, name: str) -> dict[str, Any] | None:  # noqa: F811
    fields = getattr(sf, sobject).describe()["fields"]
    return next((f for f in fields if f["name"] == name), None)


def test_a_task_field_created_on_activity_shows_in_task_describe_and_takes_values(
    sf: Salesforce,  # noqa: F811
) -> None:
    answer = _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)

    assert answer["success"] is True
    assert answer["id"].startswith("00N")
    described = _describe_field(sf, "Task", "Campaign_Name__c")
    assert described is not None
    assert (described["type"], described["length"], described["custom"]) == ("string", 255, True)
    assert (described["createable"], described["updateable"], described["nillable"]) == (
        True,
        True,
        True,
    )
    sf.Task.upsert("Closedloop_Key__c/mk:1", {"Subject": "Met", "Campaign_Name__c": "Expo 2026"})
    rows = sf.query("SELECT Campaign_Name__c FROM Task WHERE Closedloop_Key__c = 'mk:1'")
    assert [r["Campaign_Name__c"] for r in rows["records"]] == ["Expo 2026"]


def test_a_custom_field_keeps_its_length_and_type_rules(
    sf: Salesforce,  # noqa: F811
    org: Org,  # noqa: F811
) -> None:
    _create(sf, "Activity.Booth__c", {"type": "Text", "length": 5, "label": "Booth"})
    _create(sf, "Lead.Visits__c", {"type": "Number", "precision": 4, "scale": 0, "label": "V"})

    too_long = org.call(
        "PATCH", f"{BASE}/sobjects/Task/Closedloop_Key__c/mk:2", json={"Booth__c": "A-100-B"}
    )
    not_a_number = org.call(
        "POST", f"{BASE}/sobjects/Lead", json={"LastName": "Doe", "Company": "X", "Visits__c": "x"}
    )

    assert too_long.status_code == 400
    assert too_long.json()[0]["errorCode"] == "STRING_TOO_LONG"
    assert not_a_number.status_code == 400
    assert not_a_number.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    visits = _describe_field(sf, "Lead", "Visits__c")
    assert visits is not None
    assert visits["type"] == "double"


def test_a_field_name_taken_on_the_object_is_a_duplicate_developer_name(
    sf: Salesforce,  # noqa: F811
) -> None:
    _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)

    with pytest.raises(SalesforceMalformedRequest) as refused:
        _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)

    assert refused.value.content[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"


@pytest.mark.parametrize(
    ("full_name", "metadata", "code"),
    [
        ("Task.Campaign_Name__c", CAMPAIGN_NAME, "FIELD_INTEGRITY_EXCEPTION"),
        ("Activity.Campaign_Name", CAMPAIGN_NAME, "FIELD_INTEGRITY_EXCEPTION"),
        (
            "Activity.Campaign_Name__c",
            {"type": "Text", "label": "No length"},
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        ("Activity.Campaign_Name__c", {"type": "Text", "length": 255}, "REQUIRED_FIELD_MISSING"),
        ("Nothing.Campaign_Name__c", CAMPAIGN_NAME, "INVALID_TYPE"),
    ],
    ids=["on-task", "no-__c", "text-without-length", "no-label", "unknown-object"],
)
def test_a_custom_field_the_org_would_refuse_is_refused(
    sf: Salesforce,  # noqa: F811
    full_name: str,
    metadata: dict[str, Any],
    code: str,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        _create(sf, full_name, metadata)

    assert refused.value.content[0]["errorCode"] == code
    assert _describe_field(sf, "Task", "Campaign_Name__c") is None


def test_resetting_the_org_drops_its_custom_fields(
    sf: Salesforce,  # noqa: F811
    org: Org,  # noqa: F811
) -> None:
    _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)

    org.state.reset()

    assert _describe_field(sf, "Task", "Campaign_Name__c") is None
