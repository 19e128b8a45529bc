"""Change pulls: windows under the search cap, cursors capped at ``until``, no duplicates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from connectors.base import Account, ContactRole, Cursor, Opportunity, Person, StatusChange
from connectors.errors import ConfigError
from connectors.hubspot import changes
from connectors.hubspot.changes import Owner
from connectors.hubspot.connector import HubSpotConnector
from connectors.lagwindow import version_key
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer

Connect = Callable[..., HubSpotConnector]


def _create_contacts(store: HubSpotStore, at: datetime, emails: list[str]) -> list[str]:
    store.clock.set(at)
    with store.lock:
        _, body = store.data.batch_create(
            "contacts", {"inputs": [{"properties": {"email": e}} for e in emails]}
        )
    return [r["id"] for r in body["results"]]


def _pull(connector: HubSpotConnector, stream: str, cursor: Cursor, until: datetime) -> tuple[
    list[object], Cursor
]:  # fmt: skip
    records: list[object] = []
    last = cursor
    for page in connector.pull_changes(stream, cursor, until):
        records.extend(page.records)
        last = page.cursor
    return records, last


def _world_now(server: SandboxServer) -> datetime:
    assert server.world is not None
    return server.world.now


def test_a_large_change_set_is_read_in_windows_under_the_cap(
    portal: SandboxServer, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real cap is 10,000 (see benchmarks/bench_hubspot.py); a small one exercises the splits.
    monkeypatch.setattr(changes, "SEARCH_RESULT_CAP", 50)
    monkeypatch.setattr(changes, "_WINDOW_TARGET", 25)
    monkeypatch.setattr(changes, "SEARCH_PAGE", 20)
    store: HubSpotStore = portal.store("hubspot")
    start = _world_now(portal) + timedelta(days=1)
    created: list[str] = []
    for minute in range(150):
        at = start + timedelta(minutes=minute)
        created += _create_contacts(store, at, [f"p{minute}-{i}@example.com" for i in range(2)])
    # 120 contacts changed in the same millisecond: the window must split on hs_object_id.
    crowded = start + timedelta(hours=4)
    for part in range(2):
        emails = [f"same{part}-{i}@example.com" for i in range(60)]
        created += _create_contacts(store, crowded, emails)
    connector = connect()
    since = Cursor(changes.format_cursor_time(int(start.timestamp() * 1000) - 1))
    until = start + timedelta(hours=5)
    records, cursor = _pull(connector, "people", since, until)
    ids = Counter(p.external_id for p in records if isinstance(p, Person))
    assert ids == dict.fromkeys(created, 1)
    stats = connector.changes.last_stats
    assert stats is not None
    assert 0 < stats.largest_window <= 50
    assert stats.oversized_probes > 0
    assert cursor.value == changes.format_cursor_time(int(until.timestamp() * 1000))


def test_the_next_pull_reads_only_what_changed_and_drops_boundary_duplicates(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    first_until = _world_now(portal) + timedelta(days=1)
    [at_boundary] = _create_contacts(store, first_until, ["edge@example.com"])
    connector = connect()
    records, cursor = _pull(connector, "people", Cursor(), first_until)
    assert at_boundary in {p.external_id for p in records if isinstance(p, Person)}
    assert version_key(at_boundary, int(first_until.timestamp() * 1000)) in cursor.boundary_keys

    later = first_until + timedelta(hours=1)
    [fresh] = _create_contacts(store, later, ["fresh@example.com"])
    edited = next(p for p in records if isinstance(p, Person) and p.external_id != at_boundary)
    with store.lock:
        store.data.update_one(
            "contacts", edited.external_id, None, {"properties": {"firstname": "X"}}
        )
    again, _ = _pull(connector, "people", cursor, later + timedelta(minutes=1))
    assert sorted(p.external_id for p in again if isinstance(p, Person)) == sorted(
        [fresh, edited.external_id]
    )


def test_contacts_changed_since_the_cursor_are_pulled_by_their_lastmodifieddate(
    portal: SandboxServer, connect: Connect
) -> None:
    # HubSpot's search finds contacts' changes on lastmodifieddate, not hs_lastmodifieddate.
    store: HubSpotStore = portal.store("hubspot")
    since = _world_now(portal) + timedelta(days=1)
    [created] = _create_contacts(store, since + timedelta(minutes=5), ["new-lead@example.com"])
    edited_at = since + timedelta(minutes=10)
    edited = next(iter(store.contact_ids.values()))
    store.clock.set(edited_at)
    with store.lock:
        store.data.update_one(
            "contacts", edited, None, {"properties": {"hs_lead_status": "UNQUALIFIED"}}
        )
    connector = connect()
    cursor = Cursor(changes.format_cursor_time(int(since.timestamp() * 1000)))
    until = since + timedelta(hours=1)
    records, _ = _pull(connector, "people", cursor, until)
    people = {p.external_id: p for p in records if isinstance(p, Person)}
    assert set(people) == {created, edited}
    assert people[edited].updated_at == edited_at
    assert people[edited].status == "UNQUALIFIED"
    history, _ = _pull(connector, "people_history", cursor, until)
    found = [c for c in history if isinstance(c, StatusChange)]
    assert {c.object_id for c in found} == {edited}
    assert ("UNQUALIFIED", edited_at) in {(c.new_value, c.changed_at) for c in found}


def test_a_change_that_becomes_visible_late_is_read_by_the_next_pull_once(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    until = _world_now(portal) + timedelta(days=1)
    [late] = _create_contacts(store, until - timedelta(seconds=30), ["late@example.com"])
    _create_contacts(store, until - timedelta(seconds=5), ["early@example.com"])
    connector = connect()
    # The search index has not caught up with the late contact when the first pull runs.
    with store.lock:
        hidden = store.data.objects["contacts"].pop(late)
    _, cursor = _pull(connector, "people", Cursor(), until)
    with store.lock:
        store.data.objects["contacts"][late] = hidden
    again, cursor = _pull(connector, "people", cursor, until + timedelta(minutes=1))
    assert [p.external_id for p in again if isinstance(p, Person)] == [late]
    third, _ = _pull(connector, "people", cursor, until + timedelta(minutes=2))
    assert third == []


def test_changes_after_until_wait_for_the_next_pull(
    portal: SandboxServer, connect: Connect
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    until = _world_now(portal) + timedelta(days=1)
    [late] = _create_contacts(store, until + timedelta(seconds=1), ["late@example.com"])
    records, cursor = _pull(connect(), "people", Cursor(), until)
    assert late not in {p.external_id for p in records if isinstance(p, Person)}
    assert cursor.value == changes.format_cursor_time(int(until.timestamp() * 1000))


def test_deals_companies_roles_and_owners_are_pulled(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    store: HubSpotStore = portal_readonly.store("hubspot")
    until = _world_now(portal_readonly)
    connector = reader()
    deals, _ = _pull(connector, "opportunities", Cursor(), until)
    opportunities = [d for d in deals if isinstance(d, Opportunity)]
    assert {o.external_id for o in opportunities} == set(store.deal_ids.values())
    assert all(o.account_id in set(store.company_ids.values()) for o in opportunities)
    assert all(isinstance(o.amount, Decimal) for o in opportunities)
    assert any(o.is_won for o in opportunities)
    accounts, _ = _pull(connector, "accounts", Cursor(), until)
    assert {a.external_id for a in accounts if isinstance(a, Account)} == set(
        store.company_ids.values()
    )
    roles, _ = _pull(connector, "contact_roles", Cursor(), until)
    contacts = set(store.contact_ids.values())
    assert roles
    assert all(isinstance(r, ContactRole) and r.person_id in contacts for r in roles)
    owners, _ = _pull(connector, "owners", Cursor(), until)
    assert {o.external_id for o in owners if isinstance(o, Owner)} == set(store.owner_ids.values())


def test_a_deal_with_more_contacts_than_one_association_page_yields_every_contact_role(
    portal: SandboxServer, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: HubSpotStore = portal.store("hubspot")
    monkeypatch.setattr(store.data, "association_page", 2)  # HubSpot pages rows at 500 or more
    since = _world_now(portal) + timedelta(days=1)
    contacts = _create_contacts(store, since, [f"buyer{i}@example.com" for i in range(5)])
    store.clock.set(since + timedelta(minutes=1))
    with store.lock:
        _, made = store.data.batch_create(
            "deals",
            {"inputs": [{"properties": {"dealname": "Big", "dealstage": "qualifiedtobuy"}}]},
        )
        deal = made["results"][0]["id"]
        for contact in contacts:
            store.data.associate("deals", deal, "contacts", contact, 3)
    cursor = Cursor(changes.format_cursor_time(int(since.timestamp() * 1000)))
    roles, _ = _pull(connect(), "contact_roles", cursor, since + timedelta(hours=1))
    assert sorted(r.person_id for r in roles if isinstance(r, ContactRole)) == sorted(contacts)


def test_an_unknown_stream_names_the_known_ones(
    portal_readonly: SandboxServer, reader: Connect
) -> None:
    with pytest.raises(ConfigError, match="people, accounts"):
        reader().pull_changes("tickets", Cursor(), _world_now(portal_readonly))
