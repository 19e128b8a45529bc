"""Reading a Salesforce org's own schema: describe through Composite, as vendor-neutral rows."""

from __future__ import annotations

from collections.abc import Callable

from connectors.salesforce.connector import SalesforceConnector
from sandbox.server import SandboxServer

Make = Callable[..., SalesforceConnector]


def test_four_objects_are_described_in_one_counted_api_call(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    described = make_connector().describe_fields(["Task", "Lead", "Contact", "Opportunity"])

    assert sorted(described) == ["Contact", "Lead", "Opportunity", "Task"]
    assert sandbox_readonly.state.counts("salesforce") == {"composite": 1}


def test_rows_carry_types_lengths_active_restricted_values_and_write_access(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    described = make_connector().describe_fields(["Task", "Lead"])
    task = {row["name"]: row for row in described["Task"] or []}
    lead = {row["name"]: row for row in described["Lead"] or []}

    status = task["Status"]
    assert (status["type"], status["restricted"]) == ("picklist", True)
    assert "Completed" in status["picklist"]
    assert (task["ActivityDate"]["type"], task["ActivityDate"]["length"]) == ("date", None)
    assert task["Subject"]["length"] == 255
    assert (task["IsClosed"]["createable"], task["IsClosed"]["updateable"]) == (False, False)
    assert lead["LastName"]["required"] is True
    # Not nillable but defaulted on create: an insert may leave it out.
    assert lead["Status"]["required"] is False
    assert task["Closedloop_Key__c"]["custom"] is True


def test_an_object_the_org_lacks_is_reported_as_absent(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    described = make_connector().describe_fields(["Task", "Campaign_Touch__c"])

    assert described["Campaign_Touch__c"] is None
    assert described["Task"]


def test_a_custom_field_an_admin_just_created_is_in_the_next_describe(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    store.add_custom_field(
        "Activity.Campaign_Name__c", {"type": "Text", "length": 80, "label": "Campaign Name"}
    )
    store.grant_field_access("Task", "Campaign_Name__c")

    rows = make_connector().describe_fields(["Task"])["Task"] or []

    [row] = [r for r in rows if r["name"] == "Campaign_Name__c"]
    assert (row["type"], row["length"], row["custom"], row["createable"]) == (
        "string", 80, True, True,
    )  # fmt: skip
