"""Change pulls: incremental on SystemModstamp, deletions, boundary keys, Bulk API 2.0."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import Cursor, Opportunity, Person, PersonKind
from connectors.errors import AuthError, ConfigError
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.streams import CampaignMembership, parse_sf_datetime
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import live, password_auth

Make = Callable[..., SalesforceConnector]


def drain(
    connector: SalesforceConnector, stream: str, cursor: Cursor, until: datetime
) -> tuple[list[Any], Cursor]:
    records: list[Any] = []
    for page in connector.pull_changes(stream, cursor, until):
        records.extend(page.records)
        cursor = page.cursor
    return records, cursor


def now(sandbox: SandboxServer) -> datetime:
    moment: datetime = sandbox.store("salesforce").clock.now()
    return moment


def test_people_pull_yields_every_lead_and_contact_then_nothing_from_its_final_cursor(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector()
    until = now(sandbox)

    people, cursor = drain(connector, "people", Cursor(), until)
    again, _ = drain(connector, "people", cursor, until)

    expected = {r["Id"] for r in live(store, "Lead")} | {r["Id"] for r in live(store, "Contact")}
    assert {p.external_id for p in people} == expected
    assert len(people) == len(expected)
    assert all(isinstance(p, Person) and p.updated_at and p.updated_at.tzinfo for p in people)
    assert again == []


def test_a_status_change_and_a_deletion_show_up_in_the_next_pull(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector(lead_reason_fields=("Disqualified_Reason__c",))
    _, cursor = drain(connector, "people", Cursor(), now(sandbox))
    lead = next(r for r in live(store, "Lead") if not r["IsConverted"])
    contact = live(store, "Contact")[0]
    store.clock.advance(timedelta(seconds=5))
    store.modify("Lead", lead["Id"], {"Status": "Disqualified", "Disqualified_Reason__c": "Budget"})
    store.delete(contact["Id"])

    changed, _ = drain(connector, "people", cursor, now(sandbox))

    by_id = {p.external_id: p for p in changed}
    assert set(by_id) == {lead["Id"], contact["Id"]}
    assert by_id[lead["Id"]].status == "Disqualified"
    assert by_id[lead["Id"]].fields["Disqualified_Reason__c"] == "Budget"
    assert by_id[contact["Id"]].deleted
    assert by_id[contact["Id"]].kind is PersonKind.CONTACT


def test_changes_after_the_runs_start_wait_for_the_next_run(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector()
    started = now(sandbox)
    store.clock.advance(timedelta(seconds=5))
    lead = live(store, "Lead")[0]
    store.modify("Lead", lead["Id"], {"Status": "Recycled"})

    first, cursor = drain(connector, "leads", Cursor(), started)
    later, _ = drain(connector, "leads", cursor, now(sandbox))

    assert lead["Id"] not in {p.external_id for p in first}
    reached = parse_sf_datetime(cursor.value)
    assert reached is not None
    assert reached <= started
    assert [p.external_id for p in later] == [lead["Id"]]


def test_records_sharing_the_cursor_stamp_are_not_yielded_twice_after_a_page_break(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector()
    _, cursor = drain(connector, "leads", Cursor(), now(sandbox))
    store.clock.advance(timedelta(seconds=5))  # frozen: every insert below shares one stamp
    new_ids = {
        store.insert("Lead", {"LastName": f"Batch {n}", "Company": "Bulk Import"})
        for n in range(2_500)
    }

    pages = list(connector.pull_changes("leads", cursor, now(sandbox)))
    # The engine committed only the first page before a crash: pull again from its cursor.
    rest, _ = drain(connector, "leads", pages[0].cursor, now(sandbox))

    assert [len(p.records) for p in pages] == [2_000, 500]
    first_ids = {p.external_id for p in pages[0].records}
    assert first_ids <= {key.partition("@")[0] for key in pages[0].cursor.boundary_keys}
    assert {p.external_id for p in rest} == new_ids - first_ids


def test_a_change_committed_after_the_pull_but_stamped_before_the_cursor_is_read_next_time(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    connector = make_connector()
    store.clock.advance(timedelta(seconds=5))
    late = store.insert("Lead", {"LastName": "Late", "Company": "Acme"})
    store.clock.advance(timedelta(seconds=5))
    early = store.insert("Lead", {"LastName": "Early", "Company": "Acme"})
    # The late lead's transaction (stamped 5 s before the early one) has not committed when
    # the pull reads: it is not visible yet, and the cursor moves past its stamp.
    with store.lock:
        hidden = store.records["Lead"].pop(late)
    first, cursor = drain(connector, "leads", Cursor(), now(sandbox))
    with store.lock:
        store.records["Lead"][late] = hidden
    again, cursor = drain(connector, "leads", cursor, now(sandbox))
    third, _ = drain(connector, "leads", cursor, now(sandbox))

    assert early in {p.external_id for p in first}
    assert [p.external_id for p in again] == [late]
    assert third == []


def test_a_large_pull_uses_a_bulk_query_job_and_yields_the_same_records(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    until = now(sandbox_readonly)
    rest, rest_cursor = drain(make_connector(), "opportunities", Cursor(), until)
    sandbox_readonly.state.reset_counters()

    bulk, bulk_cursor = drain(make_connector(bulk_threshold=10), "opportunities", Cursor(), until)

    counts = sandbox_readonly.state.counts("salesforce")
    assert counts.get("bulk2_query_create") == 1
    assert sorted(bulk, key=lambda o: o.external_id) == sorted(rest, key=lambda o: o.external_id)
    assert bulk_cursor == rest_cursor
    again, _ = drain(make_connector(bulk_threshold=10), "opportunities", bulk_cursor, until)
    assert again == []


def test_a_bulk_query_whose_session_expired_logs_in_again_once_and_runs_the_job(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    store = sandbox_readonly.store("salesforce")
    soql = "SELECT Id FROM Opportunity"
    client = make_connector(auth=password_auth(sandbox_readonly)).client
    store.tokens[client.sf.session_id]["revoked"] = True

    rows = [row for page in client.bulk_query("Opportunity", soql, include_deleted=False)
            for row in page]  # fmt: skip

    assert client.logins == 2
    assert sorted(r["Id"] for r in rows) == sorted(r["Id"] for r in live(store, "Opportunity"))


def test_a_bulk_query_whose_session_expired_without_a_way_to_log_in_is_an_auth_error(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    sandbox_readonly.set_faults("salesforce:expired_token=1")
    client = make_connector().client  # session auth: nothing to log in again with

    with pytest.raises(AuthError, match="INVALID_SESSION_ID"):
        list(client.bulk_query("Opportunity", "SELECT Id FROM Opportunity", include_deleted=False))

    assert client.logins == 1


def test_opportunities_carry_stage_amount_outcome_and_dates(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    store = sandbox_readonly.store("salesforce")
    row = next(r for r in live(store, "Opportunity") if r["IsWon"])

    opportunities, _ = drain(make_connector(), "opportunities", Cursor(), now(sandbox_readonly))

    opp = next(o for o in opportunities if o.external_id == row["Id"])
    assert isinstance(opp, Opportunity)
    assert (opp.stage, opp.is_closed, opp.is_won) == ("Closed Won", True, True)
    assert opp.amount == Decimal(str(row["Amount"]))
    assert opp.close_date is not None
    assert opp.close_date.date().isoformat() == row["CloseDate"]
    assert opp.account_id == row["AccountId"]


@pytest.mark.parametrize(
    ("stream", "sobject"),
    [
        ("accounts", "Account"),
        ("contact_roles", "OpportunityContactRole"),
        ("campaigns", "Campaign"),
        ("campaign_members", "CampaignMember"),
    ],
)
def test_every_stream_yields_each_record_of_its_object(
    sandbox_readonly: SandboxServer, make_connector: Make, stream: str, sobject: str
) -> None:
    records, _ = drain(make_connector(), stream, Cursor(), now(sandbox_readonly))

    assert {r.external_id for r in records} == {
        r["Id"] for r in live(sandbox_readonly.store("salesforce"), sobject)
    }
    if stream == "campaign_members":
        assert all(isinstance(r, CampaignMembership) and r.person_id for r in records)


def test_an_unknown_stream_is_a_config_error_listing_the_known_ones(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    with pytest.raises(ConfigError) as caught:
        list(make_connector().pull_changes("deals", Cursor(), datetime.now().astimezone()))

    assert "opportunities" in str(caught.value)
