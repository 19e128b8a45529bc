"""SLA breach flags on Leads and Contacts: set, re-timed, cleared, and the fields checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.salesforce.collections import Write, write_records
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.flags import FlagWriter, check_flag_fields
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import live

Make = Callable[..., SalesforceConnector]
FLAG, AT = "SLA_Breached__c", "SLA_Breached_At__c"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def flag_fields(sandbox_session: SandboxServer) -> Iterator[None]:
    """An org whose admin created the checkbox and the Date/Time field on Lead and Contact
    (what `closedloop check salesforce` asks for; here through the Tooling API's CustomField
    create) and gave the integration user edit access to them (field-level security); the
    sandbox's stock schema has neither. Dropped again afterwards."""
    store = sandbox_session.store("salesforce")
    for sobject in ("Lead", "Contact"):
        store.add_custom_field(
            f"{sobject}.{FLAG}",
            {"type": "Checkbox", "label": "SLA Breached", "defaultValue": "false"},
        )
        store.add_custom_field(f"{sobject}.{AT}", {"type": "DateTime", "label": "SLA Breached At"})
        for name in (FLAG, AT):
            store.grant_field_access(sobject, name)
    yield
    store.reset_schema()


def _people(sandbox: SandboxServer) -> tuple[list[str], list[str]]:
    store = sandbox.store("salesforce")
    leads = sorted(r["Id"] for r in live(store, "Lead") if not r.get("IsConverted"))
    contacts = sorted(r["Id"] for r in live(store, "Contact"))
    return leads, contacts


def _flagged(sandbox: SandboxServer) -> dict[str, str | None]:
    store = sandbox.store("salesforce")
    rows = live(store, "Lead") + live(store, "Contact")
    return {r["Id"]: r.get(AT) for r in rows if r.get(FLAG)}


def test_check_names_the_exact_field_to_create_on_each_object(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    results = check_flag_fields(make_connector().client, FLAG, AT)

    assert [r.ok for r in results] == [False, False]
    lead = results[0]
    assert lead.detail == f"Lead has no field {FLAG}; Lead has no field {AT}"
    assert f"Create a Checkbox (default unchecked) field {FLAG} on Lead" in lead.remedy
    assert f"Create a Date/Time field {AT} on Lead" in lead.remedy
    assert f"field {FLAG} on Contact" in results[1].remedy


def test_check_passes_once_the_fields_exist(
    sandbox_readonly: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    results = check_flag_fields(make_connector().client, FLAG, AT)
    assert all(r.ok for r in results), results


def test_breaches_are_flagged_then_a_second_run_only_reads_then_stale_flags_clear(
    sandbox: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    leads, contacts = _people(sandbox)
    writer = FlagWriter(make_connector().client, FLAG, AT)
    wanted = {("Lead", i): T0 for i in leads[:3]} | {("Contact", contacts[0]): T0}

    first = writer.sync(wanted)

    assert (len(first.plan.set), first.written, first.rejected) == (4, 4, [])
    assert sorted(_flagged(sandbox)) == sorted([*leads[:3], contacts[0]])
    sandbox.state.reset_counters()
    again = writer.sync(wanted)
    assert (again.plan.changes, again.write_calls) == (0, 0)
    assert sandbox.state.counts("salesforce") == {"composite": 1}  # Leads and Contacts read

    # One lead was answered in time after a new hand-off; a contact breached an hour later.
    later = {("Lead", i): T0 for i in leads[1:3]} | {
        ("Contact", contacts[0]): T0 + timedelta(hours=1)
    }
    third = writer.sync(later)

    assert (third.plan.clear, len(third.plan.retime)) == ([("Lead", leads[0])], 1)
    flagged = _flagged(sandbox)
    assert sorted(flagged) == sorted([*leads[1:3], contacts[0]])
    assert flagged[contacts[0]].startswith("2026-05-04T10:00:00")  # type: ignore[union-attr]
    assert sandbox.store("salesforce").records["Lead"][leads[0]].get(AT) is None


def test_a_flag_salesforce_refuses_is_reported_with_its_message(
    sandbox: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    leads, _ = _people(sandbox)
    writer = FlagWriter(make_connector().client, FLAG, AT)

    result = writer.sync({("Lead", leads[0]): T0, ("Lead", "00Q000000000000AAA"): T0})

    assert result.written == 1
    assert [r.key for r in result.rejected] == ["00Q000000000000AAA"]
    assert result.rejected[0].code == "INVALID_CROSS_REFERENCE_KEY"


def test_a_flag_on_a_lead_another_process_keeps_locked_is_deferred_then_written_next_run(
    sandbox: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    leads, _ = _people(sandbox)
    store = sandbox.store("salesforce")
    writer = FlagWriter(make_connector(lock_retry_backoff_s=0).client, FLAG, AT)
    wanted = {("Lead", i): T0 for i in leads[:3]}
    store.hold_locks([leads[1]])

    first = writer.sync(wanted)

    assert (first.written, first.rejected) == (2, [])
    assert [(r.key, r.code) for r in first.deferred] == [(leads[1], "UNABLE_TO_LOCK_ROW")]
    assert "unable to obtain exclusive access to this record" in str(first.deferred[0])
    assert sorted(_flagged(sandbox)) == [leads[0], leads[2]]
    store.release_locks()

    second = writer.sync(wanted)

    assert (second.written, second.rejected, second.deferred) == (1, [], [])
    assert sorted(_flagged(sandbox)) == sorted(leads[:3])


def test_a_lead_converted_since_the_caller_looked_is_flagged_on_its_contact(
    sandbox: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    """The caller's view says Lead (its last pull predates the conversion); Salesforce would
    refuse the update, and the person is the Contact now."""
    leads, _ = _people(sandbox)
    store = sandbox.store("salesforce")
    contact = store.convert_lead(leads[0])
    writer = FlagWriter(make_connector().client, FLAG, AT)
    wanted = {("Lead", leads[0]): T0, ("Lead", leads[1]): T0}
    sandbox.state.reset_counters()

    first = writer.sync(wanted)

    assert (first.written, first.rejected, first.deferred) == (2, [], [])
    assert sorted(_flagged(sandbox)) == sorted([contact, leads[1]])
    assert store.records["Lead"][leads[0]].get(FLAG) is not True
    assert first.read_calls == 1  # the conversions are read with the flags
    again = writer.sync(wanted)
    assert (again.plan.changes, again.plan.unchanged) == (0, 2)


def test_an_update_of_a_converted_lead_is_refused_with_salesforces_code_not_raised(
    sandbox: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    """A Lead converted between a write-back's read and its write: the refusal is one record's
    dead letter with Salesforce's code; the other records are written."""
    leads, _ = _people(sandbox)
    sandbox.store("salesforce").convert_lead(leads[0])
    writes = [Write("update", "Lead", i, {"Id": i, FLAG: True}) for i in leads[:2]]

    outcome = write_records(make_connector().client, writes)

    assert outcome.written["update"] == 1
    assert [(r.key, r.code) for r in outcome.rejected] == [
        (leads[0], "CANNOT_UPDATE_CONVERTED_LEAD")
    ]
    assert str(outcome.rejected[0]) == (
        f"Salesforce refused to update Lead {leads[0]}: cannot reference converted lead"
    )
    assert outcome.deferred == []


def test_flags_whose_collection_the_server_keeps_failing_are_deferred_then_written_next_run(
    sandbox: SandboxServer, make_connector: Make, flag_fields: None
) -> None:
    """A 5xx subrequest inside the Composite answer: nothing says the flags are wrong."""
    leads, _ = _people(sandbox)
    writer = FlagWriter(make_connector(lock_retry_backoff_s=0).client, FLAG, AT)
    wanted = {("Lead", i): T0 for i in leads[:2]}
    sandbox.set_faults("salesforce:subrequest_500=1")

    first = writer.sync(wanted)
    sandbox.set_faults("")
    second = writer.sync(wanted)

    assert (first.written, first.rejected) == (0, [])
    assert [(r.key, r.code) for r in first.deferred] == [
        (i, "UNKNOWN_EXCEPTION") for i in leads[:2]
    ]
    assert (second.written, second.rejected, second.deferred) == (2, [], [])
    assert sorted(_flagged(sandbox)) == sorted(leads[:2])
