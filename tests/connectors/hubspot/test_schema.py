"""Reading a HubSpot portal's own properties as vendor-neutral rows, one call per object type."""

from __future__ import annotations

from collections.abc import Callable

from connectors.hubspot.connector import HubSpotConnector
from sandbox.server import SandboxServer

Connect = Callable[..., HubSpotConnector]


def test_each_object_type_is_one_properties_call(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    connector = reader()

    described = connector.describe_fields(["note", "contact"])

    assert sorted(described) == ["contact", "note"]
    assert portal_readonly.state.counts("hubspot") == {"properties.list": 2}


def test_rows_say_what_may_be_written_and_which_values_are_allowed(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    described = reader().describe_fields(["note", "task", "contact"])
    note = {row["name"]: row for row in described["note"] or []}
    task = {row["name"]: row for row in described["task"] or []}
    contact = {row["name"]: row for row in described["contact"] or []}

    assert note["hs_timestamp"]["required"] is True
    assert (note["hs_note_body"]["type"], note["hs_note_body"]["length"]) == ("string", 65_536)
    assert contact["hs_object_id"]["createable"] is False
    status = task["hs_task_status"]
    assert (status["restricted"], "COMPLETED" in status["picklist"]) == (True, True)
    assert note["closedloop_touch_key"]["custom"] is True
    assert contact["email"]["custom"] is False


def test_an_object_type_closedloop_does_not_know_is_absent(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    assert reader().describe_fields(["ticket"]) == {"ticket": None}


def test_a_property_created_in_the_portal_is_in_the_next_read(
    portal: SandboxServer, connect: Connect
) -> None:
    store = portal.store("hubspot")
    with store.lock:
        store.data.create_property(
            "notes",
            {"name": "booth", "label": "Booth", "type": "number", "fieldType": "number",
             "groupName": "noteinformation"},
        )  # fmt: skip

    rows = connect().describe_fields(["note"])["note"] or []

    [row] = [r for r in rows if r["name"] == "booth"]
    assert (row["type"], row["custom"], row["createable"]) == ("number", True, True)
