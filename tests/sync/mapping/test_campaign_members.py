"""The ``campaign_members`` section: the shipped examples work once uncommented, and a compiled
section names the Campaign and member status each touch earns."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import TouchKind
from sync.mapping.members import CampaignRef
from tests.sync.mapping.helpers import BASE, mapping_from

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
SECTION = """campaign_members:
  enabled: true
  match: {match}
  campaigns:
    "Expo 2026": 7015g000000Xyz3AAC
  status_order: [Sent, Opened, Responded]
  statuses:
    email_sent: sent
    email_open: Opened
    form_fill: Responded
"""


def _uncommented_example(text: str) -> str:
    lines = text.splitlines()
    start = lines.index("# campaign_members:")
    return "\n".join(line[2:] for line in lines[start:]) + "\n"


@pytest.mark.parametrize("name", ["marketo-salesforce", "files-salesforce", "hubspot-salesforce"])
def test_the_commented_example_of_a_shipped_mapping_is_valid_once_uncommented(
    tmp_path: Path, name: str
) -> None:
    text = (MAPPINGS / f"{name}.yaml").read_text(encoding="utf-8")
    assert "campaign_members" not in text.replace("# campaign_members", "")

    shipped = mapping_from(tmp_path, text)
    enabled = mapping_from(tmp_path, text + _uncommented_example(text))

    assert shipped.campaign_members is None, "shipped mappings leave it off"
    plan = enabled.campaign_members
    assert plan is not None
    assert plan.status_for(TouchKind.FORM_FILL) == "Responded"
    assert plan.status_order[-1] == "Responded"


def test_by_name_a_listed_campaign_goes_by_its_id_and_any_other_by_its_name(
    tmp_path: Path,
) -> None:
    plan = mapping_from(tmp_path, BASE + SECTION.format(match="name")).campaign_members
    assert plan is not None

    assert plan.campaign_for(" expo 2026 ") == CampaignRef("7015g000000Xyz3AAC", by_id=True)
    assert plan.campaign_for("Spring Webinar") == CampaignRef("Spring Webinar", by_id=False)
    assert plan.campaign_for(None) is None
    assert plan.campaign_for("  ") is None


def test_by_map_only_listed_campaigns_add_members_and_statuses_take_the_orders_spelling(
    tmp_path: Path,
) -> None:
    plan = mapping_from(tmp_path, BASE + SECTION.format(match="map")).campaign_members
    assert plan is not None

    assert plan.campaign_for("Spring Webinar") is None
    assert plan.campaign_for("Expo 2026") == CampaignRef("7015g000000Xyz3AAC", by_id=True)
    assert plan.status_for(TouchKind.EMAIL_SENT) == "Sent"
    assert plan.status_for(TouchKind.PAGE_VIEW) is None


def test_a_section_left_disabled_compiles_to_no_member_sync(tmp_path: Path) -> None:
    text = BASE + SECTION.format(match="name").replace("enabled: true", "enabled: false")

    assert mapping_from(tmp_path, text).campaign_members is None
