"""Names derived from the ledger: CRM campaign sync first, then the name; settings win."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert

from sync.ledger import open_ledger
from sync.ledger.models import CampaignRow, CrmUserRow, SourceProgramRow, TouchRow
from sync.names import derive_names

WHEN = datetime(2026, 5, 1, tzinfo=UTC)


def _ledger(tmp_path: Path) -> Engine:
    engine = open_ledger(f"sqlite:///{tmp_path / 'names.db'}")
    campaigns = [
        ("701A", "Spring Expo 2026"),  # the synced program is called differently in Marketo
        ("701B", "Google Ads: Brand"),
        ("701C", "Webinar: Attribution 101"),
    ]
    programs = [
        ("2001", "SE26 - Expo", "701A", "Spring Expo 2026"),
        ("2002", "Google Ads: Brand", None, None),
        ("2003", "Partner Newsletter", None, None),  # no CRM campaign of any kind
        ("2004", "Webinar: Attribution 101", None, None),
    ]
    touches = ["2001", "2001", "2002", "2003", "2004", "Webinar: Attribution 101", "Fair"]
    with engine.begin() as conn:
        conn.execute(
            insert(CampaignRow.__table__),  # type: ignore[attr-defined]
            [{"crm": "salesforce", "external_id": i, "name": n} for i, n in campaigns],
        )
        conn.execute(
            insert(SourceProgramRow.__table__),  # type: ignore[attr-defined]
            [
                {"source": "marketo", "external_id": i, "name": n, "crm_campaign_id": c,
                 "crm_campaign_name": cn}
                for i, n, c, cn in programs
            ],
        )  # fmt: skip
        conn.execute(
            insert(TouchRow.__table__),  # type: ignore[attr-defined]
            [
                {"key": f"marketo:{n}", "source": "marketo", "source_id": str(n),
                 "kind": "email_click", "occurred_at": WHEN, "campaign": campaign}
                for n, campaign in enumerate(touches)
            ],
        )  # fmt: skip
        conn.execute(
            insert(CrmUserRow.__table__),  # type: ignore[attr-defined]
            [
                {"crm": "salesforce", "external_id": "005A", "name": "Dana Ross"},
                {"crm": "salesforce", "external_id": "005B", "name": "Tom Becker"},
                {"crm": "hubspot", "external_id": "77", "name": "Hub Owner"},
            ],
        )
    return engine


def test_programs_reach_crm_campaigns_by_sync_then_by_name_and_the_rest_is_listed(
    tmp_path: Path,
) -> None:
    engine = _ledger(tmp_path)
    names = derive_names(
        engine, crms=["salesforce"], aliases={"2004": "Spring Expo 2026"}, rep_names={}
    )
    assert names.campaign_aliases == {"2001": "701A", "2002": "701B"}
    how = {m.reference: m.how for m in names.matches}
    # 2004's name matches a campaign, but the setting says otherwise and wins.
    assert how == {"2001": "crm sync", "2002": "name", "2003": "unmapped", "2004": "setting",
                   "Fair": "unmapped"}  # fmt: skip
    quality = names.quality()
    assert [m["program"] for m in quality["matched_by_name"]] == ["2002"]
    assert quality["matched_by_crm_sync"] == 1
    items = {item["fix"] for item in quality["items"]}
    assert "analytics.campaign_aliases: {2003: <CRM campaign name or id>}" in items
    assert "analytics.campaign_aliases: {Fair: <CRM campaign name or id>}" in items
    assert any("Partner Newsletter" in item["what"] for item in quality["items"])


def test_reps_are_named_by_the_crms_users_and_the_setting_wins(tmp_path: Path) -> None:
    engine = _ledger(tmp_path)
    names = derive_names(
        engine,
        crms=["salesforce"],
        aliases={},
        rep_names={"005B": "Tom B."},
        owner_ids=["005A", "005B", "005Z", "005Z", None],
    )
    assert names.rep_names == {"005A": "Dana Ross", "005B": "Tom B."}  # not HubSpot's owner
    assert names.unnamed_reps == [("005Z", 2)]
    fixes = [item["fix"] for item in names.quality()["items"] if item["kind"] == "rep"]
    assert fixes == ["analytics.rep_names: {005Z: <the rep's name>}"]
