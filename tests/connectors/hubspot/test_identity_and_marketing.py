"""Contacts by e-mail, upserts with lifecycle values, and HubSpot marketing events as touches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.base import Cursor, Person, PersonKind, TouchKind
from connectors.hubspot.connector import HubSpotConnector
from connectors.testing import drain_touches
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer
from sync.cli.config_cmd import SANDBOX_HUBSPOT
from sync.mapping import load_lifecycle
from sync.recycle import HubSpotNurture
from tests.connectors.hubspot.conftest import known_contacts

Connect = Callable[..., HubSpotConnector]
MAPPING = Path(__file__).parents[3] / "mappings" / "marketo-hubspot.yaml"


def _contact(store: HubSpotStore, email: str) -> dict[str, str]:
    with store.lock:
        matches = [
            r.properties for r in store.data.objects["contacts"].values()
            if r.properties.get("email") == email
        ]  # fmt: skip
    assert len(matches) == 1, f"{len(matches)} contacts with {email}"
    return matches[0]


def test_unknown_emails_are_omitted_and_known_ones_carry_their_company(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    store: HubSpotStore = portal_readonly.store("hubspot")
    emails = [e for e, _ in known_contacts(portal_readonly, 30)]
    found = reader().resolve_people([*emails, "nobody@nowhere.example"])
    assert set(found) == set(emails)
    assert all(p.kind is PersonKind.CONTACT for p in found.values())
    companies = set(store.company_ids.values())
    assert any(p.account_id in companies for p in found.values())


def test_a_primary_company_beyond_the_first_association_page_is_the_persons_account(
    portal: SandboxServer, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    monkeypatch.setattr(store.data, "association_page", 1)  # HubSpot pages rows at 500 or more
    with store.lock:
        _, made = store.data.batch_create(
            "companies", {"inputs": [{"properties": {"name": f"Co {i}"}} for i in range(3)]}
        )
        _, people = store.data.batch_create(
            "contacts", {"inputs": [{"properties": {"email": "many-hats@example.com"}}]}
        )
        contact = people["results"][0]["id"]
        companies = [r["id"] for r in made["results"]]
        for company in companies:
            store.data.associate("contacts", contact, "companies", company, 279)
        store.data.associate("contacts", contact, "companies", companies[-1], 1)  # primary
    found = connect().resolve_people(["many-hats@example.com"])
    assert found["many-hats@example.com"].account_id == companies[-1]


def test_people_are_created_once_with_the_mappings_lifecycle_values(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    connector = connect()
    connector.use_lifecycle(load_lifecycle(MAPPING))
    person = Person(
        "marketo", "42", PersonKind.LEAD, "New.Person@Example.com", first_name="Nia",
        status="MQL", fields={"closedloop_lead_source": "Webinar"},
    )  # fmt: skip
    [created] = connector.create_people([person])
    assert created.email == "new.person@example.com"
    props = _contact(store, "new.person@example.com")
    assert props["hs_lead_status"] == "OPEN"
    assert props["lifecyclestage"] == "marketingqualifiedlead"
    assert props["closedloop_lead_source"] == "Webinar"
    [again] = connector.create_people([person])
    assert again.external_id == created.external_id
    _contact(store, "new.person@example.com")


def test_email_events_and_form_fills_become_touches_with_their_details(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    assert portal_readonly.world is not None
    touches, _ = drain_touches(reader(), Cursor(), portal_readonly.world.now)
    kinds = {t.kind for t in touches}
    assert {TouchKind.EMAIL_OPEN, TouchKind.EMAIL_CLICK, TouchKind.FORM_FILL} <= kinds
    assert TouchKind.EMAIL_UNSUBSCRIBE not in kinds  # not among the default event types
    form = next(t for t in touches if t.kind is TouchKind.FORM_FILL)
    assert form.email
    assert form.asset
    assert form.key.startswith("hubspot:form:")
    # The form's contact fields travel with the touch, for the mapping's people fields.
    person = form.attributes["person"]
    assert person["first_name"]
    assert person["updated_at"] == form.occurred_at.isoformat()
    click = next(t for t in touches if t.kind is TouchKind.EMAIL_CLICK)
    assert click.asset
    assert click.campaign
    assert click.channel == "email"


def test_a_pull_stopped_midway_resumes_without_loss_or_repeats(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    assert portal_readonly.world is not None
    until = portal_readonly.world.now
    connector = reader(email_event_types=["OPEN"])
    everything, _ = drain_touches(connector, Cursor(), until)
    pages = connector.pull_touches(Cursor(), until)
    first = next(pages)
    second = next(pages)
    pages.close()
    rest, _ = drain_touches(connector, second.cursor, until)
    resumed = [*first.records, *second.records, *rest]
    assert [t.key for t in resumed] == [t.key for t in everything]
    assert {t.kind for t in everything} == {TouchKind.EMAIL_OPEN, TouchKind.FORM_FILL}


def test_recycled_people_land_on_a_hubspot_nurture_list_once(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    connector = connect()
    created = connector.client.sdk.crm.lists.lists_api.create(
        {"name": "Nurture", "objectTypeId": "0-1", "processingType": "MANUAL"}
    )
    list_id = str(created.list.list_id)
    emails = [e for e, _ in known_contacts(portal, 3)]
    nurture = HubSpotNurture(connector, list_id)

    first = nurture.add([*emails, "nobody@nowhere.example"])
    again = nurture.add(emails[:1])

    assert sorted(first.added) == sorted(emails)
    assert first.rejected == {
        "nobody@nowhere.example": ("not_found", "no HubSpot contact has this e-mail")
    }
    assert again.added == emails[:1]
    assert again.rejected == {}
    with store.lock:
        members = set(store.data.memberships[list_id])
    assert members == {str(connector.resolve_people(emails)[e].external_id) for e in emails}


def test_ids_hubspot_does_not_know_come_back_as_skipped(
    portal: SandboxServer, connect: Connect
) -> None:
    connector = connect()
    created = connector.client.sdk.crm.lists.lists_api.create(
        {"name": "Nurture 2", "objectTypeId": "0-1", "processingType": "MANUAL"}
    )
    [(email, _)] = known_contacts(portal, 1)
    known = str(connector.resolve_people([email])[email].external_id)
    change = connector.add_to_list(str(created.list.list_id), [known, known, "999999999"])
    assert change.changed == [known]
    assert [(r.key, r.code) for r in change.skipped] == [("999999999", "missing")]


def test_a_shared_stage_is_written_as_the_mappings_first_lifecycle_stage_value(
    portal: SandboxServer, connect: Connect, tmp_path: Path
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    text = MAPPING.read_text(encoding="utf-8")
    mapping = tmp_path / "subscribers.yaml"
    mapping.write_text(
        text.replace("Inquiry: [lead, subscriber]", "Inquiry: [subscriber]"), encoding="utf-8"
    )
    connector = connect()
    connector.use_lifecycle(load_lifecycle(mapping))
    person = Person("marketo", "43", PersonKind.LEAD, "sub@example.com", status="Inquiry")

    connector.create_people([person])

    props = _contact(store, "sub@example.com")
    assert props["hs_lead_status"] == "NEW"
    assert props["lifecyclestage"] == "subscriber"


def test_a_first_pull_with_the_starter_configs_lookback_reads_every_event_late_in_its_day(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    # The world ends at midnight (UTC); a pull measured from the wall clock may start as late as
    # the last second of that day and must still reach back to the world's first event.
    assert portal_readonly.world is not None
    starter = SANDBOX_HUBSPOT  # the commented-out HubSpot connection of the starter config
    last_second = portal_readonly.world.now + timedelta(days=1, seconds=-1)
    lookback = starter["initial_lookback_days"]
    touches, _ = drain_touches(reader(initial_lookback_days=lookback), Cursor(), last_second)
    everything, _ = drain_touches(reader(initial_lookback_days=400), Cursor(), last_second)
    assert [t.key for t in touches] == [t.key for t in everything]
    assert min(t.occurred_at for t in touches) < last_second - timedelta(days=180)
