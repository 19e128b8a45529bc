"""Person-field sync rules, the unknown-person policy, and the lifecycle functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.base import Person, PersonKind, TouchKind
from sync.mapping import load_lifecycle
from sync.mapping.lifecycle import compile_lifecycle
from sync.mapping.model import Lifecycle, Stage
from tests.sync.mapping.helpers import BASE, mapping_from, touch

ROOT = Path(__file__).parents[3]

OLD = datetime(2024, 1, 1, tzinfo=UTC)
NEW = datetime(2024, 2, 1, tzinfo=UTC)

PEOPLE = (
    BASE
    + """people:
  unknown: create_lead
  create_defaults:
    Company: "[not provided]"
  fields:
    FirstName:
      source: person.first_name
      rule: prefer_crm_unless_blank
    LastName:
      source: person.last_name
      rule: always_overwrite
    Title:
      source: person.fields.title
      rule: two_way_latest
      direction: both
    LeadSource:
      source: person.lead_source
      rule: never
    Phone:
      source: person.fields.phone
      rule: always_overwrite
      direction: from_crm
"""
)


def source(**kw: object) -> Person:
    return Person("marketo", "m1", PersonKind.LEAD, "ann@example.com", **kw)  # type: ignore[arg-type]


def crm(**kw: object) -> Person:
    return Person("salesforce", "00Q1", PersonKind.LEAD, "ann@example.com", **kw)  # type: ignore[arg-type]


def test_prefer_crm_unless_blank_only_fills_blanks(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, PEOPLE)
    kept = mapping.plan_person(source(first_name="Annie"), crm(first_name="Ann"))
    assert "FirstName" not in kept.crm_updates
    filled = mapping.plan_person(source(first_name="Annie"), crm(first_name=None))
    assert filled.crm_updates["FirstName"] == "Annie"


def test_always_overwrite_replaces_a_different_value_but_never_with_a_blank(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, PEOPLE)
    plan = mapping.plan_person(source(last_name="Lee-Smith"), crm(last_name="Lee"))
    assert plan.action == "update"
    assert plan.crm_updates["LastName"] == "Lee-Smith"
    blank = mapping.plan_person(source(last_name=" "), crm(last_name="Lee"))
    assert "LastName" not in blank.crm_updates


def test_two_way_latest_lets_the_side_updated_last_win(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, PEOPLE)
    src_newer = mapping.plan_person(
        source(fields={"title": "CTO"}, updated_at=NEW), crm(fields={"Title": "VP"}, updated_at=OLD)
    )
    assert src_newer.crm_updates["Title"] == "CTO"
    crm_newer = mapping.plan_person(
        source(fields={"title": "CTO"}, updated_at=OLD), crm(fields={"Title": "VP"}, updated_at=NEW)
    )
    assert "Title" not in crm_newer.crm_updates
    assert crm_newer.source_updates["fields.title"] == "VP"
    tie = mapping.plan_person(
        source(fields={"title": "CTO"}, updated_at=OLD), crm(fields={"Title": "VP"}, updated_at=OLD)
    )
    assert "Title" not in tie.crm_updates
    assert "fields.title" not in tie.source_updates


def test_never_is_never_written_and_from_crm_updates_the_source(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, PEOPLE)
    plan = mapping.plan_person(
        source(lead_source="Web", fields={"phone": "1"}),
        crm(lead_source="Partner", fields={"Phone": "2"}),
    )
    assert "LeadSource" not in plan.crm_updates
    assert plan.source_updates == {"fields.phone": "2"}
    decision = next(d for d in plan.decisions if d.crm_field == "LeadSource")
    assert decision.action == "keep"
    assert "never" in decision.reason


def test_unknown_people_are_created_with_defaults_or_held(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, PEOPLE)
    plan = mapping.plan_person(source(first_name="Ann", last_name="Lee"), None)
    assert plan.action == "create"
    assert plan.target == "Lead"
    assert plan.crm_updates == {"Company": "[not provided]", "FirstName": "Ann", "LastName": "Lee"}
    held = mapping_from(tmp_path, PEOPLE.replace("unknown: create_lead", "unknown: hold"))
    hold_plan = held.plan_person(source(first_name="Ann"), None)
    assert hold_plan.action == "hold"
    assert hold_plan.crm_updates == {}


LIFECYCLE = (
    BASE
    + """lifecycle:
  status_field: Status
  stage_field: StageName
  reason_field: Disqualified_Reason__c
  stages:
    MQL: [Marketing Qualified]
    SAL: [Working - Contacted]
    Customer: [Closed Won]
    Recycled: [Recycled]
    Disqualified: [Closed - Not Converted]
  sla:
    MQL: 1d12h
  mql:
    score_at_least: 65
    any_of:
      - touched:
          kinds: [webinar_attended]
          within_days: 30
    combine: or
"""
)


def test_stage_for_maps_crm_values_ignoring_case_and_unknowns_to_none(tmp_path: Path) -> None:
    life = mapping_from(tmp_path, LIFECYCLE).lifecycle
    assert life.stage_for("Marketing Qualified") is Stage.MQL
    assert life.stage_for("working - contacted") is Stage.SAL
    assert life.stage_for("Closed Won") is Stage.CUSTOMER
    assert life.stage_for("Something Else") is None
    assert life.stage_for(None) is None
    assert life.is_recycled("recycled")
    assert life.is_disqualified("Closed - Not Converted")
    assert life.reason_field == "Disqualified_Reason__c"


def test_one_reason_field_gives_the_reason_of_both_decisions(tmp_path: Path) -> None:
    life = mapping_from(tmp_path, LIFECYCLE).lifecycle
    assert life.reason_field_names == ("Disqualified_Reason__c",)
    assert life.reason_outcomes("Disqualified_Reason__c") == (Stage.DISQUALIFIED, Stage.RECYCLED)


def test_reason_fields_name_one_field_per_decision_and_reason_field_fills_the_other(
    tmp_path: Path,
) -> None:
    both = LIFECYCLE.replace(
        "  reason_field: Disqualified_Reason__c\n",
        "  reason_fields:\n    Disqualified: Disqualified_Reason__c\n"
        "    Recycled: Recycle_Reason__c\n",
    )
    life = mapping_from(tmp_path, both).lifecycle
    assert life.reason_field_names == ("Disqualified_Reason__c", "Recycle_Reason__c")
    assert life.reason_outcomes("Disqualified_Reason__c") == (Stage.DISQUALIFIED,)
    assert life.reason_outcomes("Recycle_Reason__c") == (Stage.RECYCLED,)
    # A field the mapping does not name (a connection's lead_reason_fields) explains both.
    assert life.reason_outcomes("Other_Reason__c") == (Stage.DISQUALIFIED, Stage.RECYCLED)

    mixed = LIFECYCLE.replace(
        "  reason_field: Disqualified_Reason__c\n",
        "  reason_field: Disqualified_Reason__c\n  reason_fields: {Recycled: Recycle_Reason__c}\n",
    )
    life = mapping_from(tmp_path, mixed).lifecycle
    assert dict(life.reason_fields) == {
        Stage.DISQUALIFIED: "Disqualified_Reason__c", Stage.RECYCLED: "Recycle_Reason__c",
    }  # fmt: skip


def test_the_shipped_mappings_name_a_reason_field_per_decision() -> None:
    for name, fields in (
        ("marketo-salesforce", ("Disqualified_Reason__c", "Recycle_Reason__c")),
        ("marketo-hubspot", ("closedloop_disqualified_reason", "closedloop_recycle_reason")),
    ):
        life = load_lifecycle(ROOT / "mappings" / f"{name}.yaml")
        assert life.reason_field_names == fields


def test_a_hubspot_lifecycle_stage_and_lead_status_each_mean_stages_through_their_own_values() -> (
    None
):
    life = load_lifecycle(ROOT / "mappings" / "marketo-hubspot.yaml")
    assert life.stage_for("marketingqualifiedlead", "lifecycle_stage") is Stage.MQL
    assert life.stage_for("marketingqualifiedlead", "lifecyclestage") is Stage.MQL
    assert life.stage_for("Customer", "lifecycle_stage") is Stage.CUSTOMER
    assert life.stage_for("OPEN", "lifecycle_stage") is None
    assert life.stage_for("OPEN", "status") is Stage.MQL
    assert life.stage_for("marketingqualifiedlead", "status") is None
    assert life.stage_for("closedwon", "stage") is Stage.CUSTOMER
    assert life.crm_values(Stage.MQL) == ("OPEN",)
    assert life.lifecycle_values(Stage.INQUIRY) == ("lead", "subscriber")


def test_without_a_lifecycle_field_the_lifecycle_stage_reads_through_stages() -> None:
    # Files written before lifecycle_field named lifecyclestage as their status_field.
    life = compile_lifecycle(
        Lifecycle(status_field="lifecyclestage", stages={Stage.MQL: ["marketingqualifiedlead"]})
    )
    assert life.stage_for("marketingqualifiedlead", "lifecycle_stage") is Stage.MQL
    assert life.lifecycle_values(Stage.MQL) == ()


def test_sla_targets_are_durations_per_stage(tmp_path: Path) -> None:
    life = mapping_from(tmp_path, LIFECYCLE).lifecycle
    assert life.sla_target(Stage.MQL) == timedelta(hours=36)
    assert life.sla_target(Stage.SQL) is None


def test_mql_by_score_or_by_recent_webinar_attendance(tmp_path: Path) -> None:
    life = mapping_from(tmp_path, LIFECYCLE).lifecycle
    now = datetime(2024, 6, 1, tzinfo=UTC)
    webinar = touch(TouchKind.WEBINAR_ATTENDED, occurred_at=now - timedelta(days=3))
    stale = touch(TouchKind.WEBINAR_ATTENDED, occurred_at=now - timedelta(days=60))
    assert life.is_mql(crm(score=70), [], now)
    assert not life.is_mql(crm(score=10), [], now)
    assert life.is_mql(crm(score=10), [webinar], now)
    assert not life.is_mql(crm(score=10), [stale], now)
    assert not life.is_mql(crm(), [touch(TouchKind.EMAIL_OPEN)], now)


def test_mql_with_and_needs_both_score_and_rules(tmp_path: Path) -> None:
    life = mapping_from(tmp_path, LIFECYCLE.replace("combine: or", "combine: and")).lifecycle
    webinar = touch(TouchKind.WEBINAR_ATTENDED)
    assert not life.is_mql(crm(score=70), [])
    assert life.is_mql(crm(score=70), [webinar])
