"""Campaign Influence write-back: rows per opportunity add up to 100%, re-runs only read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.influence import (
    InfluenceRow,
    InfluenceWriter,
    check_influence,
    plan_influence,
)
from sandbox.server import SandboxServer
from tests.connectors.salesforce.conftest import live

Make = Callable[..., SalesforceConnector]
MODEL = "03V8c000000001AEAQ"
OTHER_MODEL = "03V8c000000002AEAQ"


def _org(sandbox: SandboxServer) -> tuple[list[str], list[str], list[str]]:
    store = sandbox.store("salesforce")
    opportunities = sorted(r["Id"] for r in live(store, "Opportunity"))
    campaigns = sorted(r["Id"] for r in live(store, "Campaign"))
    contacts = sorted(r["Id"] for r in live(store, "Contact"))
    return opportunities, campaigns, contacts


def _rows(
    opportunities: list[str], campaigns: list[str], contacts: list[str]
) -> list[InfluenceRow]:
    """Three rows per opportunity: 50%, 33.33% and 16.67%."""
    rows = []
    for n, opp in enumerate(opportunities):
        shares = (Decimal("50.00"), Decimal("33.33"), Decimal("16.67"))
        for k, share in enumerate(shares):
            campaign = campaigns[(n + k) % len(campaigns)]
            rows.append(InfluenceRow(opp, campaign, contacts[(n + k) % len(contacts)], share))
    return rows


def _influence_in_org(
    sandbox: SandboxServer, model: str = MODEL
) -> dict[str, list[dict[str, Any]]]:
    by_opportunity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in live(sandbox.store("salesforce"), "CampaignInfluence"):
        if row["ModelId"] == model:
            by_opportunity[row["OpportunityId"]].append(row)
    return by_opportunity


def test_influence_rows_are_created_summing_to_100_and_a_second_run_only_reads(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    opportunities, campaigns, contacts = _org(sandbox)
    wanted = _rows(opportunities[:10], campaigns, contacts)
    writer = InfluenceWriter(make_connector().client, MODEL)

    first = writer.sync(opportunities[:10], wanted)

    assert first.written == {"create": 30, "update": 0, "delete": 0}
    assert not first.rejected
    in_org = _influence_in_org(sandbox)
    assert sorted(in_org) == opportunities[:10]
    for rows in in_org.values():
        assert sum(Decimal(str(r["Influence"])) for r in rows) == Decimal("100.00")
    stamps = {r["Id"]: r["SystemModstamp"] for rows in in_org.values() for r in rows}

    sandbox.state.reset_counters()
    again = writer.sync(opportunities[:10], wanted)

    assert again.plan.changes == 0
    assert again.plan.unchanged == 30
    assert again.write_calls == 0
    assert again.read_calls == 1
    assert sandbox.state.counts("salesforce") == {"composite": 1}
    after = {
        r["Id"]: r["SystemModstamp"] for rows in _influence_in_org(sandbox).values() for r in rows
    }
    assert after == stamps


def test_a_changed_run_updates_changed_shares_deletes_dropped_rows_and_leaves_others_alone(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    opportunities, campaigns, contacts = _org(sandbox)
    wanted = _rows(opportunities[:4], campaigns, contacts)
    writer = InfluenceWriter(make_connector().client, MODEL)
    writer.sync(opportunities[:4], wanted)
    other = InfluenceWriter(writer.client, OTHER_MODEL)
    other.sync(
        opportunities[:1], [InfluenceRow(opportunities[0], campaigns[0], None, Decimal(100))]
    )
    first, second = opportunities[0], opportunities[1]
    # The first deal now goes to one campaign in full; the second was not credited at all.
    changed = [r for r in wanted if r.opportunity_id not in (first, second)]
    keep = next(r for r in wanted if r.opportunity_id == first)
    changed.append(InfluenceRow(first, keep.campaign_id, keep.contact_id, Decimal("100.00")))

    result = writer.sync(opportunities[:4], changed)

    assert result.written == {"create": 0, "update": 1, "delete": 5}
    in_org = _influence_in_org(sandbox)
    assert [Decimal(str(r["Influence"])) for r in in_org[first]] == [Decimal("100.00")]
    assert second not in in_org
    assert len(in_org[opportunities[2]]) == 3
    assert len(_influence_in_org(sandbox, OTHER_MODEL)[first]) == 1  # another model's rows stay


def test_writing_3000_rows_for_1000_opportunities_takes_a_bounded_number_of_calls(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    opportunities, campaigns, contacts = _org(sandbox)
    # The org has few opportunities; rows of many campaigns and contacts per deal fill the load.
    wanted = []
    for n in range(3_000):
        opp = opportunities[n % len(opportunities)]
        contact = contacts[n % len(contacts)]
        wanted.append(InfluenceRow(opp, campaigns[n % len(campaigns)], contact, Decimal("1.00")))
    unique = list({r.key: r for r in wanted}.values())
    writer = InfluenceWriter(make_connector().client, MODEL)

    result = writer.sync(opportunities, unique)

    assert result.written["create"] == len(unique)
    assert result.write_calls <= -(-len(unique) // 1_000)  # five collections of 200 per call
    assert result.read_calls == 1
    sandbox.state.reset_counters()
    assert writer.sync(opportunities, unique).plan.changes == 0
    assert sum(sandbox.state.counts("salesforce").values()) <= 2  # reads only


def test_a_row_salesforce_refuses_comes_back_with_its_message_and_the_rest_is_written(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    opportunities, campaigns, contacts = _org(sandbox)
    good = InfluenceRow(opportunities[0], campaigns[0], contacts[0], Decimal("60.00"))
    bad = InfluenceRow(opportunities[0], contacts[1], None, Decimal("40.00"))  # not a campaign
    writer = InfluenceWriter(make_connector().client, MODEL)

    result = writer.sync([opportunities[0]], [good, bad])

    assert result.written["create"] == 1
    assert [(r.key, r.code) for r in result.rejected] == [(bad.key, "FIELD_INTEGRITY_EXCEPTION")]
    assert "Campaign ID" in str(result.rejected[0])


def test_the_plan_deletes_duplicates_of_one_row_and_keeps_the_first() -> None:
    row = InfluenceRow("006A", "701A", None, Decimal("100.00"))
    same = {"OpportunityId": "006A", "CampaignId": "701A", "ContactId": None}
    existing = [{"Id": "0wI2", **same, "Influence": 100}, {"Id": "0wI1", **same, "Influence": 90}]

    plan = plan_influence([row], existing)

    assert plan.update == [("0wI1", row)]
    assert plan.delete == [("0wI2", row.key)]
    assert plan.create == []


def test_check_reports_a_missing_model_id_with_what_to_set_up(
    sandbox_readonly: SandboxServer, make_connector: Make
) -> None:
    client = make_connector().client
    missing = check_influence(client, None)
    assert not missing.ok
    assert "CampaignInfluenceModel" in missing.remedy
    assert check_influence(client, MODEL).ok


def test_rows_refused_for_a_row_lock_are_created_again_and_exist_once(
    sandbox: SandboxServer, make_connector: Make
) -> None:
    opportunities, campaigns, contacts = _org(sandbox)
    wanted = _rows(opportunities[:20], campaigns, contacts)
    writer = InfluenceWriter(make_connector(lock_retry_backoff_s=0).client, MODEL)
    sandbox.set_faults("salesforce:unable_to_lock_row=0.2", seed=2)

    result = writer.sync(opportunities[:20], wanted)

    assert (result.written["create"], result.rejected, result.deferred) == (len(wanted), [], [])
    in_org = _influence_in_org(sandbox)
    assert sum(len(rows) for rows in in_org.values()) == len(wanted)
    sandbox.set_faults(None)
    assert writer.sync(opportunities[:20], wanted).plan.changes == 0
