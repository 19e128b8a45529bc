"""Write-back to HubSpot properties: created by check --fix, written once, cleared when stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from connectors.hubspot.check import check_properties, writeback_properties
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writeback import PropertyWriter
from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer

Connect = Callable[..., HubSpotConnector]
SUMMARY, TOP = "closedloop_attribution", "closedloop_top_campaign"
FLAG, AT = "closedloop_sla_breached", "closedloop_sla_breached_at"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
WANTED = writeback_properties(summary=SUMMARY, top_campaign=TOP, flag=FLAG, flag_time=AT)


def _ids(server: SandboxServer, object_type: str, count: int) -> list[str]:
    store: HubSpotStore = server.store("hubspot")
    with store.lock:
        return sorted(store.data.objects[object_type], key=int)[:count]


def _values(server: SandboxServer, object_type: str, name: str) -> dict[str, str]:
    store: HubSpotStore = server.store("hubspot")
    with store.lock:
        return {
            r.id: r.properties[name]
            for r in store.data.objects[object_type].values()
            if r.properties.get(name) not in (None, "")
        }


def test_check_fix_creates_the_writeback_properties_with_their_types(
    portal: SandboxServer, connect: Connect
) -> None:
    client = connect().client

    missing = check_properties(client, WANTED)
    assert [r.ok for r in missing] == [False, False]
    assert "closedloop_attribution" in missing[0].detail

    fixed = check_properties(client, WANTED, fix=True)
    assert all(r.ok for r in fixed), fixed
    store: HubSpotStore = portal.store("hubspot")
    flag = store.data.properties["contacts"][FLAG]
    assert flag["fieldType"] == "booleancheckbox"
    assert store.data.properties["contacts"][AT]["type"] == "datetime"
    assert all(r.ok for r in check_properties(client, WANTED))


def test_a_property_of_the_wrong_type_is_reported(portal: SandboxServer, connect: Connect) -> None:
    store: HubSpotStore = portal.store("hubspot")
    with store.lock:
        store.data.create_property(
            "contacts",
            {"name": FLAG, "label": "x", "type": "string", "fieldType": "text", "groupName": "g"},
        )
    results = check_properties(connect().client, {"contacts": WANTED["contacts"]}, fix=True)
    # --fix created the missing time property but cannot change the flag's type.
    assert [r.name for r in results if not r.ok] == ["hubspot.property_types.contacts"]
    assert f"{FLAG} is of type string, not a single checkbox" in results[-1].detail


def test_deal_values_are_written_once_and_a_second_run_only_reads(
    portal: SandboxServer, connect: Connect
) -> None:
    client = connect().client
    check_properties(client, WANTED, fix=True)
    deals = _ids(portal, "deals", 55)  # every deal of the demo portal
    wanted = {
        d: {SUMMARY: f"Webinar {n % 90 + 10}% · Ads", TOP: "Webinar"} for n, d in enumerate(deals)
    }
    writer = PropertyWriter(client, "deals")

    first = writer.sync_values(wanted)

    assert (first.written, first.write_calls, first.rejected) == (55, 1, [])
    assert _values(portal, "deals", SUMMARY) == {d: v[SUMMARY] for d, v in wanted.items()}
    calls = client.calls
    again = writer.sync_values(wanted)
    assert (again.unchanged, again.updates, again.write_calls) == (55, {}, 0)
    assert client.calls - calls == again.read_calls == 1  # one batch read

    wanted[deals[0]] = {SUMMARY: "", TOP: ""}  # the deal lost its credit: cleared
    third = writer.sync_values(wanted)
    assert list(third.updates) == [deals[0]]
    assert deals[0] not in _values(portal, "deals", SUMMARY)


def test_a_deal_hubspot_no_longer_has_is_refused_with_its_message(
    portal: SandboxServer, connect: Connect
) -> None:
    client = connect().client
    check_properties(client, WANTED, fix=True)
    deal = _ids(portal, "deals", 1)[0]

    result = PropertyWriter(client, "deals").sync_values(
        {deal: {SUMMARY: "Webinar 100%"}, "999999999": {SUMMARY: "Ads 100%"}}
    )

    assert result.written == 1
    assert [(r.key, r.code) for r in result.rejected] == [("999999999", "OBJECT_NOT_FOUND")]


def test_flags_are_set_then_retimed_and_cleared_and_unchanged_ones_are_not_written(
    portal: SandboxServer, connect: Connect
) -> None:
    client = connect().client
    check_properties(client, WANTED, fix=True)
    contacts = _ids(portal, "contacts", 251)
    writer = PropertyWriter(client, "contacts")

    first = writer.sync_flag(dict.fromkeys(contacts[:250], T0), FLAG, AT)
    assert first.counts == {"flagged": 250, "retimed": 0, "cleared": 0}
    assert first.write_calls == 3  # 100 per batch update
    assert sorted(_values(portal, "contacts", FLAG)) == sorted(contacts[:250])
    calls = client.calls
    again = writer.sync_flag(dict.fromkeys(contacts[:250], T0), FLAG, AT)
    assert (again.unchanged, again.write_calls) == (250, 0)
    assert client.calls - calls == 2  # two search pages of 200

    later = dict.fromkeys(contacts[1:250], T0) | {
        contacts[2]: T0 + timedelta(hours=2),
        contacts[250]: T0,
    }
    third = writer.sync_flag(later, FLAG, AT)

    assert third.counts == {"flagged": 1, "retimed": 1, "cleared": 1}
    assert _values(portal, "contacts", FLAG)[contacts[0]] == "false"
    flagged = {c for c, v in _values(portal, "contacts", FLAG).items() if v == "true"}
    assert flagged == set(contacts[1:])
    assert _values(portal, "contacts", AT)[contacts[2]].startswith("2026-05-04T11:00:00")
    assert contacts[0] not in _values(portal, "contacts", AT)
