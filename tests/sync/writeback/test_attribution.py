"""`closedloop attribution writeback`: what a Salesforce or HubSpot user sees after it runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from sqlmodel import select
from typer.testing import CliRunner

from sync.attribution.ledger import run_attribution
from sync.cli import attribution_cmd, check_cmd
from sync.ledger import DeadLetterRow, ledger_session
from sync.ledger.models import (
    AttributionCreditRow,
    CampaignRow,
    ContactRoleRow,
    OpportunityRow,
    PersonRow,
    TouchRow,
)
from sync.pipelines.runner import run_pipeline
from sync.writeback.attribution import Share, deal_summaries, influence_rows, summary_text
from tests.sync.writeback.conftest import MODEL_ID, Workspace

Make = Callable[..., Workspace]


def _touches(ws: Workspace, crm: str, campaigns: list[str], *, start: int = 0) -> int:
    """A form fill per contact role, days before its deal opened, cycling through
    ``campaigns``; returns how many opportunities got touches."""
    with ledger_session(ws.engine) as session:
        people = {
            p.external_id: p for p in session.exec(select(PersonRow).where(PersonRow.crm == crm))
        }
        opps = {
            o.external_id: o
            for o in session.exec(select(OpportunityRow).where(OpportunityRow.crm == crm))
        }
        roles = session.exec(select(ContactRoleRow).where(ContactRoleRow.crm == crm)).all()
        touched = set()
        for n, role in enumerate(sorted(roles, key=lambda r: r.external_id)):
            person, opp = (
                people.get(role.person_external_id),
                opps.get(role.opportunity_external_id),
            )
            if person is None or not person.email or opp is None or opp.created_at is None:
                continue
            for k in range(2):
                session.add(
                    TouchRow(
                        key=f"test:{crm}:{start + n}:{k}",
                        source="test",
                        source_id=f"{crm}:{start + n}:{k}",
                        kind="form_fill",
                        occurred_at=opp.created_at - timedelta(days=3 + k),
                        email=person.email,
                        campaign=campaigns[(n + k) % len(campaigns)],
                    )
                )
            touched.add(opp.external_id)
    return len(touched)


def _attribute(ws: Workspace, crm: str) -> int:
    """Run the linear model; returns how many opportunities it credited."""
    with ledger_session(ws.engine) as session:
        run = run_attribution(session, crm, ["linear"], force=True)
        credited = session.exec(
            select(AttributionCreditRow.opportunity_external_id)
            .where(AttributionCreditRow.run_id == run.run_id)
            .distinct()
        ).all()
    return len(credited)


def _influence(ws: Workspace) -> dict[str, list[Decimal]]:
    store = ws.sandbox.store("salesforce")
    out: dict[str, list[Decimal]] = defaultdict(list)
    for row in store.records["CampaignInfluence"].values():
        if not row["IsDeleted"] and row["ModelId"] == MODEL_ID:
            out[row["OpportunityId"]].append(Decimal(str(row["Influence"])))
    return out


def _writeback(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(
        attribution_cmd.app, ["writeback", *args, "--config", str(ws.config.path)]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_salesforce_deals_get_influence_rows_adding_up_to_100_and_a_rerun_changes_nothing(
    workspace: Make,
) -> None:
    ws = workspace()
    assert run_pipeline(ws.config, "salesforce-reconcile", ws.engine).ok
    with ledger_session(ws.engine) as session:
        campaigns = session.exec(select(CampaignRow).where(CampaignRow.crm == "salesforce")).all()
    # Touches name campaigns by CRM id and by name; both resolve to the Salesforce campaign.
    names = [campaigns[0].external_id, campaigns[1].name, campaigns[2].external_id]
    _touches(ws, "salesforce", names)
    credited = _attribute(ws, "salesforce")

    output = _writeback(ws, "--crm", "salesforce")

    influence = _influence(ws)
    assert len(influence) == credited > 5
    assert all(sum(shares) == Decimal("100.00") for shares in influence.values())
    assert "salesforce: Campaign Influence: changed" in output

    again = _writeback(ws, "--crm", "salesforce")
    assert "changed 0 record(s)" in again
    assert "0 write API call(s)" in again
    assert _influence(ws) == influence

    # New touches of another campaign change every touched deal's shares.
    _touches(ws, "salesforce", [campaigns[3].external_id], start=10_000)
    _attribute(ws, "salesforce")
    third = _writeback(ws, "--crm", "salesforce")
    assert "updated" in third
    assert "changed 0 record(s)" not in third
    after = _influence(ws)
    assert all(sum(shares) == Decimal("100.00") for shares in after.values())
    assert after != influence


def test_dry_run_says_what_would_change_and_writes_nothing(workspace: Make) -> None:
    ws = workspace()
    run_pipeline(ws.config, "salesforce-reconcile", ws.engine)
    with ledger_session(ws.engine) as session:
        campaign = session.exec(select(CampaignRow).where(CampaignRow.crm == "salesforce")).first()
    assert campaign is not None
    _touches(ws, "salesforce", [campaign.external_id])
    _attribute(ws, "salesforce")

    output = _writeback(ws, "--crm", "salesforce", "--dry-run")

    assert "would change" in output
    assert _influence(ws) == {}


def test_hubspot_deals_get_a_summary_and_their_top_campaign(workspace: Make) -> None:
    ws = workspace()
    assert run_pipeline(ws.config, "hubspot-reconcile", ws.engine).ok
    fixed = CliRunner().invoke(check_cmd.app, ["hubspot", "--fix", "--config", str(ws.config.path)])
    assert "hubspot.writeback.deals" in fixed.output
    _touches(ws, "hubspot", ["Webinar Q2", "Paid search", "Spring Expo"])
    credited = _attribute(ws, "hubspot")

    _writeback(ws, "--crm", "hubspot")

    store = ws.sandbox.store("hubspot")
    with store.lock:
        deals = [r.properties for r in store.data.objects["deals"].values()]
    summaries = [d["closedloop_attribution"] for d in deals if d.get("closedloop_attribution")]
    assert len(summaries) == credited > 5
    assert all(s.endswith("%") and " · " in s for s in summaries)
    tops = {d["closedloop_top_campaign"] for d in deals if d.get("closedloop_top_campaign")}
    assert tops <= {"Webinar Q2", "Paid search", "Spring Expo"}
    assert "0 write API call(s)" in _writeback(ws, "--crm", "hubspot")


def test_write_back_that_is_not_configured_stops_with_what_to_add(workspace: Make) -> None:
    ws = workspace(attribution={"writeback": {"enabled": False}})
    result = CliRunner().invoke(attribution_cmd.app, ["writeback", "--config", str(ws.config.path)])
    assert result.exit_code != 0
    assert "attribution.writeback" in str(result.exception)


def test_salesforce_without_an_influence_model_stops_with_how_to_find_its_id(
    workspace: Make,
) -> None:
    ws = workspace(attribution={"writeback": {"model": "linear"}})
    result = CliRunner().invoke(
        attribution_cmd.app, ["writeback", "--crm", "salesforce", "--config", str(ws.config.path)]
    )
    assert result.exit_code != 0
    assert "CampaignInfluenceModel" in str(result.exception)


def test_rows_salesforce_refuses_become_dead_letters_with_its_message(workspace: Make) -> None:
    ws = workspace()
    run_pipeline(ws.config, "salesforce-reconcile", ws.engine)
    with ledger_session(ws.engine) as session:
        campaign = session.exec(select(CampaignRow).where(CampaignRow.crm == "salesforce")).first()
        assert campaign is not None
        # The campaign was deleted in Salesforce after the last reconcile.
        store = ws.sandbox.store("salesforce")
        with store.lock:
            store.delete(campaign.external_id)
        name = campaign.external_id
    _touches(ws, "salesforce", [name])
    _attribute(ws, "salesforce")

    output = _writeback(ws, "--crm", "salesforce")

    assert "refused" in output
    with ledger_session(ws.engine) as session:
        letters = session.exec(select(DeadLetterRow)).all()
    assert letters
    assert {d.pipeline for d in letters} == {"attribution-writeback"}
    assert all(name in (d.record_key or "") for d in letters)


def test_influence_percentages_use_the_largest_remainder_and_leave_out_unknown_campaigns() -> None:
    third = 333_333
    shares = [
        Share("006A", "701A", True, "003A", third),
        Share("006A", "701B", True, "003A", third),
        Share("006A", "701C", True, None, 1_000_000 - 2 * third),
        Share("006B", "701A", True, None, 500_000),
        Share("006B", "program-9", False, None, 500_000),
    ]

    rows, left_out = influence_rows(shares)

    by_opp: dict[str, list[Decimal]] = defaultdict(list)
    for row in rows:
        by_opp[row.opportunity_id].append(row.influence)
    assert sorted(by_opp["006A"]) == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    assert by_opp["006B"] == [Decimal("50.00")]
    assert left_out == {"006B": 500_000}


def test_a_summary_keeps_the_largest_campaigns_within_the_limit_and_counts_the_rest() -> None:
    parts = [("Webinar Q2", 40, 4), ("Paid search", 35, 3), ("Spring Expo", 20, 2), ("Ebook", 5, 1)]
    assert (
        summary_text(parts, 255) == "Webinar Q2 40% · Paid search 35% · Spring Expo 20% · Ebook 5%"
    )
    cut = summary_text(parts, 45)
    assert cut == "Webinar Q2 40% · Paid search 35% · +2 more"
    assert len(summary_text([("A very long campaign name indeed", 100, 1)], 20)) <= 20


def test_a_deal_without_credit_gets_empty_values_so_old_text_is_cleared() -> None:
    summaries = deal_summaries(
        ["d1", "d2"], [Share("d1", "c1", True, None, 1_000_000)], {"c1": "Webinar"}, 255
    )
    assert summaries["d1"].text == "Webinar 100%"
    assert summaries["d1"].top_campaign == "Webinar"
    assert summaries["d2"].text == ""
    assert summaries["d2"].top_campaign == ""
