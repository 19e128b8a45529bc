"""Campaign member sync: one member per Campaign and person, statuses that only rise, refusals
per item with Salesforce's message, and the calls it costs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from connectors.base import MemberItem
from connectors.salesforce.connector import SalesforceConnector
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import known_people, live

Make = Callable[..., SalesforceConnector]
NO_SUCH_ID = "701000000009999"  # a well-formed Campaign Id no Campaign has
ORDER = ("Sent", "Opened", "Clicked", "Registered", "Attended", "Responded")


def new_campaigns(sandbox: SandboxServer, *names: str) -> list[str]:
    """Create Campaigns no seeded member belongs to; their ids."""
    store = sandbox.store("salesforce")
    with store.lock:
        return [store.create("Campaign", {"Name": name}) for name in names]


def members_of(sandbox: SandboxServer, campaign_ids: Sequence[str]) -> list[dict[str, Any]]:
    wanted = {c[:15] for c in campaign_ids}
    rows = live(sandbox.store("salesforce"), "CampaignMember")
    return [r for r in rows if str(r["CampaignId"])[:15] in wanted]


def api_calls(sandbox: SandboxServer) -> Counter[str]:
    counts = sandbox.state.counts("salesforce")
    return Counter({k: v for k, v in counts.items() if k != "oauth_token"})


def test_1000_touches_in_five_campaigns_make_1000_members_once_across_three_replays(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    names = [f"Spring Webinar {n}" for n in range(5)]
    campaign_ids = new_campaigns(sandbox, *names)
    known = known_people(sandbox.store("salesforce"))
    people = known[:100] + known[-100:]  # Leads first, then Contacts
    assert {p["Id"][:3] for p in people} == {"00Q", "003"}, "the test needs Leads and Contacts"
    items = [
        MemberItem(f"marketo:{n}", names[n % 5], people[n // 5]["Id"], "Opened")
        for n in range(1_000)
    ]
    connector = make_connector()
    cache: dict[str, str] = {}

    runs = []
    for _ in range(3):
        before = api_calls(sandbox)
        runs.append((connector.sync_campaign_members(items, ORDER, cache), before))

    first, second, third = (results for results, _ in runs)
    assert all(r.ok for r in first + second + third)
    assert Counter(r.action for r in first) == {"created": 1_000}
    assert Counter(r.action for r in third) == {"unchanged": 1_000}
    assert [r.member_id for r in first] == [r.member_id for r in third]
    rows = members_of(sandbox, campaign_ids)
    assert len(rows) == 1_000
    assert {r["Status"] for r in rows} == {"Opened"}
    assert len({(r["CampaignId"], r.get("LeadId") or r.get("ContactId")) for r in rows}) == 1_000
    # First sync: one Composite reads the five Campaigns and the 200 people's memberships, one
    # carries the five collections of 200 creates. A replay only reads (names now cached).
    assert api_calls(sandbox) - runs[0][1] == {"composite": 4}
    assert runs[1][1] - runs[0][1] == {"composite": 2}


def test_a_status_rises_with_a_stronger_touch_and_never_falls_back(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    (campaign,) = new_campaigns(sandbox, "Pricing Webinar")
    lead = known_people(sandbox.store("salesforce"))[0]["Id"]
    connector = make_connector()

    def sync(status: str, key: str) -> str | None:
        (result,) = connector.sync_campaign_members(
            [MemberItem(key, "pricing webinar", lead, status)], ORDER
        )
        assert result.ok, result
        (row,) = members_of(sandbox, [campaign])
        assert row["Id"] == result.member_id
        return result.action

    assert sync("Opened", "m:1") == "created"
    assert sync("Sent", "m:2") == "unchanged"
    assert sync("Responded", "m:3") == "updated"
    assert sync("Clicked", "m:4") == "unchanged"
    (row,) = members_of(sandbox, [campaign])
    assert row["Status"] == "Responded"
    assert row["HasResponded"] is True


def test_touches_of_one_person_in_one_campaign_make_one_member_with_the_highest_status(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    (campaign,) = new_campaigns(sandbox, "Roadshow Berlin")
    contact = next(p for p in known_people(sandbox.store("salesforce")) if p["Id"][:3] == "003")
    items = [
        MemberItem(f"m:{n}", campaign[:15], contact["Id"], status, by_id=True)
        for n, status in enumerate(["Sent", "Attended", "Registered"])
    ]

    results = make_connector().sync_campaign_members(items, ORDER)

    assert [r.ok for r in results] == [True] * 3
    assert len({r.member_id for r in results}) == 1
    (row,) = members_of(sandbox, [campaign])
    assert (row["ContactId"], row["Status"]) == (contact["Id"], "Attended")


def test_a_member_a_rep_set_to_a_status_outside_the_order_is_left_alone(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    (campaign,) = new_campaigns(sandbox, "Partner Event")
    lead = known_people(sandbox.store("salesforce"))[0]["Id"]
    store = sandbox.store("salesforce")
    with store.lock:
        store.create("CampaignMember", {"CampaignId": campaign, "LeadId": lead, "Status": "Opened"})

    (result,) = make_connector().sync_campaign_members(
        [MemberItem("m:1", "Partner Event", lead, "Responded")], ("Sent", "Responded")
    )

    assert (result.ok, result.action) == (True, "unchanged")
    assert members_of(sandbox, [campaign])[0]["Status"] == "Opened"


def test_an_unknown_or_ambiguous_campaign_is_refused_per_item_while_the_rest_land(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    campaign_ids = new_campaigns(sandbox, "Launch Webinar", "Twin", "Twin")
    people = known_people(sandbox.store("salesforce"))[:4]
    items = [
        MemberItem("m:0", "Launch Webinar", people[0]["Id"], "Registered"),
        MemberItem("m:1", "No Such Campaign", people[1]["Id"], "Registered"),
        MemberItem("m:2", NO_SUCH_ID, people[2]["Id"], "Registered", by_id=True),
        MemberItem("m:3", "Twin", people[3]["Id"], "Sent"),
        MemberItem("m:4", "launch webinar", people[3]["Id"], "Attended"),
    ]

    results = make_connector().sync_campaign_members(items, ORDER)

    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == [i.key for i in items]
    assert (by_key["m:0"].ok, by_key["m:4"].ok) == (True, True)
    assert by_key["m:1"].error_code == "UNKNOWN_CAMPAIGN"
    assert "No Such Campaign" in (by_key["m:1"].error_message or "")
    # Salesforce's own refusal, passed through: the Campaign Id points at no Campaign.
    assert by_key["m:2"].error_code == "INVALID_CROSS_REFERENCE_KEY"
    assert by_key["m:2"].error_message == "invalid cross reference id"
    assert by_key["m:3"].error_code == "AMBIGUOUS_CAMPAIGN"
    assert "campaign_members.campaigns" in (by_key["m:3"].error_message or "")
    rows = members_of(sandbox, campaign_ids)
    assert sorted(r["Status"] for r in rows) == ["Attended", "Registered"]


def test_a_member_added_between_the_read_and_the_create_is_settled_not_duplicated(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    (campaign,) = new_campaigns(sandbox, "Race Webinar")
    people = known_people(sandbox.store("salesforce"))[:3]
    store = sandbox.store("salesforce")
    connector = make_connector()
    composite = connector.client.composite

    def rep_adds_a_member_first(subrequests: Any, **kwargs: Any) -> Any:
        if any(s["method"] == "POST" for s in subrequests):  # the create, after our read
            person = people[0]["Id"]
            field = "ContactId" if person[:3] == "003" else "LeadId"
            with store.lock:
                store.create("CampaignMember", {"CampaignId": campaign, field: person})
        return composite(subrequests, **kwargs)

    connector.client.composite = rep_adds_a_member_first  # type: ignore[method-assign]
    items = [MemberItem(f"m:{n}", "Race Webinar", p["Id"], "Clicked") for n, p in enumerate(people)]

    results = connector.sync_campaign_members(items, ORDER)

    assert all(r.ok for r in results), results
    rows = members_of(sandbox, [campaign])
    assert len(rows) == 3
    assert {r["Status"] for r in rows} == {"Clicked"}
    assert results[0].action == "updated"


def test_the_check_covers_writing_campaign_members_only_when_they_are_synced(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    connector = make_connector()

    plain = {r.name: r for r in connector.check()}
    members = {r.name: r for r in connector.check(campaign_members=True)}

    assert plain["object access"].ok
    assert plain["object access"].detail.endswith("write Task, Lead")
    assert members["object access"].detail.endswith("write Task, Lead, CampaignMember")


def test_members_whose_collection_the_server_keeps_failing_come_back_retryable(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    [campaign] = new_campaigns(sandbox, "Server Trouble Webinar")
    people = known_people(sandbox.store("salesforce"))[:3]
    items = [MemberItem(f"marketo:{n}", campaign, p["Id"], "Sent", by_id=True)
             for n, p in enumerate(people)]  # fmt: skip
    connector = make_connector(lock_retry_backoff_s=0)
    sandbox.set_faults("salesforce:subrequest_500=1")

    failing = connector.sync_campaign_members(items, ORDER)
    sandbox.set_faults("")
    later = connector.sync_campaign_members(items, ORDER)

    assert [(r.ok, r.retryable, r.error_code) for r in failing] == [
        (False, True, "UNKNOWN_EXCEPTION")
    ] * 3
    assert [(r.ok, r.action) for r in later] == [(True, "created")] * 3
    assert len(members_of(sandbox, [campaign])) == 3
