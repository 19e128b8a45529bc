"""Custom fields in the Salesforce emulator: created through the Tooling API, as an admin does,
hidden from the integration user until field-level security grants them (a permission set
assigned to him with FieldPermissions), then seen by describe and written and read through the
normal APIs."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandbox import credentials
from tests.sandbox.test_salesforce import BASE, Org, org, running, sf  # noqa: F401 - fixtures

CAMPAIGN_NAME = {"type": "Text", "length": 255, "label": "Campaign Name"}


def _create(sf: Salesforce, full_name: str, metadata: dict[str, Any]) -> Any:  # noqa: F811 - not the fixture
    return sf.toolingexecute(
        "sobjects/CustomField", method="POST", data={"FullName": full_name, "Metadata": metadata}
    )


def _describe_field(sf: Salesforce, sobject: str, name: str) -> dict[str, Any] | None:  # noqa: F811
    fields = getattr(sf, sobject).describe()["fields"]
    return next((f for f in fields if f["name"] == name), None)


def _grant(sf: Salesforce, *fields: str, edit: bool = True) -> str:  # noqa: F811 - not the fixture
    """What an admin does after adding fields: a permission set with Read (and Edit) on them,
    assigned to the integration user; returns the permission set's id."""
    users = sf.query_all("SELECT Id, Username FROM User")["records"]
    [user] = [u["Id"] for u in users if u["Username"] == credentials.SALESFORCE_USERNAME]
    permission_set = sf.PermissionSet.create(
        {"Name": "Closedloop_Integration", "Label": "Closedloop Integration"}
    )["id"]
    sf.PermissionSetAssignment.create({"AssigneeId": user, "PermissionSetId": permission_set})
    for full_name in fields:
        sf.FieldPermissions.create(
            {
                "ParentId": permission_set,
                "SobjectType": full_name.split(".")[0],
                "Field": full_name,
                "PermissionsRead": True,
                "PermissionsEdit": edit,
            }
        )
    return str(permission_set)


def test_a_task_field_created_on_activity_shows_in_task_describe_and_takes_values(
    sf: Salesforce,  # noqa: F811
) -> None:
    answer = _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)
    _grant(sf, "Task.Campaign_Name__c")

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
    _grant(sf, "Task.Booth__c", "Lead.Visits__c")

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
    _grant(sf, "Task.Campaign_Name__c")
    assert _describe_field(sf, "Task", "Campaign_Name__c") is not None

    org.state.reset()

    assert _describe_field(sf, "Task", "Campaign_Name__c") is None


# --------------------------------------------------------------------- field-level security


def test_a_new_field_is_hidden_from_the_integration_user_until_a_permission_set_grants_it(
    sf: Salesforce,  # noqa: F811
    org: Org,  # noqa: F811
) -> None:
    """Fields deployed through the Tooling or Metadata API get no field-level security."""
    _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)
    upsert = f"{BASE}/sobjects/Task/Closedloop_Key__c/mk:1"
    query = "SELECT Id, Campaign_Name__c FROM Task"

    hidden_write = org.call("PATCH", upsert, json={"Subject": "Met", "Campaign_Name__c": "Expo"})
    hidden_read = org.call("GET", f"{BASE}/query", params={"q": query})

    assert _describe_field(sf, "Task", "Campaign_Name__c") is None
    assert hidden_write.status_code == 400
    assert hidden_write.json()[0] == {
        "message": "No such column 'Campaign_Name__c' on sobject of type Task",
        "errorCode": "INVALID_FIELD",
    }
    assert hidden_read.status_code == 400
    assert hidden_read.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Campaign_Name__c' on entity 'Task'" in hidden_read.json()[0]["message"]
    assert org.store.dump()["counts"]["Task"] == 0

    _grant(sf, "Task.Campaign_Name__c")

    assert org.call("PATCH", upsert, json={"Subject": "Met", "Campaign_Name__c": "Expo"}).ok
    rows = org.call("GET", f"{BASE}/query", params={"q": query}).json()["records"]
    assert [r["Campaign_Name__c"] for r in rows] == ["Expo"]


def test_read_access_without_edit_shows_the_field_read_only(
    sf: Salesforce,  # noqa: F811
    org: Org,  # noqa: F811
) -> None:
    _create(sf, "Lead.Visits__c", {"type": "Number", "precision": 4, "scale": 0, "label": "V"})
    _grant(sf, "Lead.Visits__c", edit=False)
    lead = org.store.insert("Lead", {"LastName": "Doe", "Company": "Acme"})

    refused = org.call("PATCH", f"{BASE}/sobjects/Lead/{lead}", json={"Visits__c": 3})

    described = _describe_field(sf, "Lead", "Visits__c")
    assert described is not None
    assert (described["createable"], described["updateable"]) == (False, False)
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert "Unable to create/update fields: Visits__c" in refused.json()[0]["message"]
    read = sf.query("SELECT Id, Visits__c FROM Lead")["records"]
    assert [(r["Id"], r["Visits__c"]) for r in read] == [(lead, None)]


def test_a_permission_set_nobody_assigned_to_the_integration_user_grants_nothing(
    sf: Salesforce,  # noqa: F811
) -> None:
    _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)
    permission_set = sf.PermissionSet.create({"Name": "Marketing", "Label": "Marketing"})["id"]
    sf.FieldPermissions.create(
        {"ParentId": permission_set, "SobjectType": "Task", "Field": "Task.Campaign_Name__c",
         "PermissionsRead": True, "PermissionsEdit": True}
    )  # fmt: skip

    assert _describe_field(sf, "Task", "Campaign_Name__c") is None


@pytest.mark.parametrize(
    ("sobject", "field"),
    [("Task", "Task.No_Such__c"), ("Task", "Lead.Campaign_Name__c"), ("Nothing", "Nothing.X__c")],
    ids=["unknown-field", "other-object", "unknown-object"],
)
def test_field_permissions_must_name_a_field_of_their_object(
    sf: Salesforce,  # noqa: F811
    sobject: str,
    field: str,
) -> None:
    _create(sf, "Activity.Campaign_Name__c", CAMPAIGN_NAME)
    permission_set = sf.PermissionSet.create({"Name": "Marketing", "Label": "Marketing"})["id"]

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.FieldPermissions.create(
            {"ParentId": permission_set, "SobjectType": sobject, "Field": field,
             "PermissionsRead": True}
        )  # fmt: skip

    assert refused.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
