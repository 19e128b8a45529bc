"""Identity: batched email lookups over Leads and Contacts, duplicates, creating people."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from connectors.base import Person, PersonKind
from connectors.errors import Transient
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.identity import Candidate, choose, in_list_queries, soql_string
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import data_calls, live

Make = Callable[..., SalesforceConnector]


def someone(email: str, **values: object) -> Person:
    return Person(source="marketo", external_id=email, kind=PersonKind.LEAD, email=email, **values)  # type: ignore[arg-type]


def test_in_lists_stay_under_the_statement_limit_and_hold_every_email_once() -> None:
    emails = [f"person{n}@example{n % 7}.com" for n in range(5_000)]
    emails.append("o'brien\\x@example.com")

    queries = in_list_queries("SELECT Id FROM Lead WHERE Email IN (", emails, 20_000)

    assert all(len(q) <= 20_000 for q in queries)
    assert len(queries) == 7
    assert sum(q.count("@") for q in queries) == len(emails)
    assert soql_string("o'brien\\x@example.com") in queries[-1]
    assert soql_string("o'brien\\x@example.com") == "'o\\'brien\\\\x@example.com'"


def test_resolving_10000_new_emails_and_creating_them_takes_at_most_30_calls(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    emails = [f"new.person{n}@company{n % 97}.example.com" for n in range(10_000)]
    connector = make_connector()

    assert connector.resolve_people(emails) == {}
    created = connector.create_people([someone(e) for e in emails])

    assert len(created) == 10_000
    assert connector.last_rejections == []
    assert data_calls(sandbox) <= 30
    again = connector.resolve_people([e.upper() for e in emails])
    assert set(again) == set(emails)
    assert {p.external_id for p in again.values()} == {p.external_id for p in created}


def test_a_converted_lead_resolves_to_its_contact(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    lead_id = store.insert(
        "Lead", {"LastName": "Lovelace", "Company": "Engines", "Email": "ada@engines.example"}
    )
    contact_id = store.convert_lead(lead_id)
    # The rep changed the contact's email afterwards: only the lead still has the old one.
    store.modify("Contact", contact_id, {"Email": "ada.lovelace@engines.example"})

    found = make_connector().resolve_people(["Ada@Engines.example"])

    person = found["ada@engines.example"]
    assert (person.kind, person.external_id) == (PersonKind.CONTACT, contact_id)


def test_a_contact_wins_over_a_lead_with_the_same_email_unless_the_rule_says_newest(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    store = sandbox.store("salesforce")
    contact_id = store.insert(
        "Contact",
        {
            "LastName": "Hopper",
            "Email": "grace@navy.example",
            "LastModifiedDate": "2026-01-01T00:00:00.000+0000",
        },
    )
    lead_id = store.insert(
        "Lead",
        {
            "LastName": "Hopper",
            "Company": "Navy",
            "Email": "GRACE@navy.example",
            "LastModifiedDate": "2026-03-01T00:00:00.000+0000",
        },
    )

    default = make_connector().resolve_people(["grace@navy.example"])
    newest = make_connector(duplicate_rule="newest").resolve_people(["grace@navy.example"])

    assert default["grace@navy.example"].external_id == contact_id
    assert newest["grace@navy.example"].external_id == lead_id


def test_among_two_leads_the_most_recently_modified_wins() -> None:
    def lead(record_id: str, month: int) -> Candidate:
        person = Person("crm", record_id, PersonKind.LEAD, "a@b.example")
        return Candidate("a@b.example", person, datetime(2026, month, 1, tzinfo=UTC))

    assert (
        choose([lead("00Q1", 2), lead("00Q2", 5), lead("00Q3", 1)], "contact_first").external_id
        == "00Q2"
    )


def test_created_leads_get_a_company_from_the_email_domain_or_the_default_for_free_mail(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    connector = make_connector()
    people = [
        someone("jo@acme-robotics.example"),
        someone("sam@gmail.com", fields={"Company": "[from the mapping]"}),
        someone("kim@yahoo.com"),
        someone("lee@whatever.example", company="Initech", last_name="Lee"),
    ]

    created = connector.create_people(people)

    rows = {r["Email"]: r for r in live(sandbox.store("salesforce"), "Lead")}
    assert [p.kind for p in created] == [PersonKind.LEAD] * 4
    assert rows["jo@acme-robotics.example"]["Company"] == "acme-robotics.example"
    assert rows["sam@gmail.com"]["Company"] == "[from the mapping]"
    assert rows["kim@yahoo.com"]["Company"] == "[not provided]"
    assert rows["lee@whatever.example"]["Company"] == "Initech"
    assert rows["lee@whatever.example"]["LastName"] == "Lee"


def test_a_person_salesforce_refuses_is_reported_and_the_others_are_created(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    connector = make_connector()
    people = [someone("ok@one.example"), someone("bad@two.example", fields={"Status": "Nope"})]

    created = connector.create_people(people)

    assert [p.email for p in created] == ["ok@one.example"]
    (rejected,) = connector.last_rejections
    assert rejected.key == "bad@two.example"
    assert rejected.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_people_can_be_created_as_contacts(sandbox: SandboxServer, make_connector: Make) -> None:
    created = make_connector(create_people_as="contact").create_people([someone("c@d.example")])

    assert created[0].kind is PersonKind.CONTACT
    assert created[0].external_id.startswith("003")


def test_people_whose_create_collection_fails_on_the_server_are_a_transient_error(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    """A create is never sent again blindly: the engine looks the people up first."""
    connector = make_connector()
    before = len(live(sandbox.store("salesforce"), "Lead"))
    sandbox.set_faults("salesforce:subrequest_500=1")

    with pytest.raises(Transient) as failed:
        connector.create_people([someone(f"new{n}@example.org") for n in range(3)])

    assert "UNKNOWN_EXCEPTION" in str(failed.value)
    assert len(live(sandbox.store("salesforce"), "Lead")) == before
    assert sandbox.state.counts("salesforce") == {"composite": 1}
