"""Every broken mapping under broken/ is rejected with the intended error at the right place."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.mapping.catalogue import offline_catalogue
from sync.mapping.validate import validate_file

BROKEN = Path(__file__).parent / "broken"

# file stem -> (line, key path, fragment of the message)
EXPECTED: dict[str, tuple[int, str, str]] = {
    "campaign_member_bad_campaign_id": (
        17, "campaign_members.campaigns.1043", "not a Salesforce Campaign Id"
    ),
    "campaign_member_map_without_campaigns": (14, "campaign_members.match", "needs campaigns"),
    "campaign_member_section_on_hubspot": (14, "campaign_members", "a Salesforce feature"),
    "campaign_member_status_not_in_order": (
        17, "campaign_members.statuses.form_fill", "did you mean 'Responded'?"
    ),
    "campaign_member_status_twice": (
        14, "campaign_members.status_order[2]", "already at position 1"
    ),
    "condition_with_two_tests": (15, "filters.rules.conditions[0]", "exactly one of score_at"),
    "create_lead_without_company": (13, "people.unknown", "creating a Lead needs Company"),
    "digest_on_excluded_kind": (15, "touches.kinds.page_view.digest", "exclude drops it"),
    "duplicate_key": (12, "touches.fields.Status", "duplicate key (first defined at line 11)"),
    "empty_mql_definition": (17, "lifecycle.mql", "define score_at_least, any_of or all_of"),
    "field_condition_without_op": (15, "filters.rules.conditions[0]", "needs op"),
    "field_with_two_origins": (13, "touches.fields.Priority", "found value, template"),
    "field_without_origin": (13, "touches.fields.Priority", "exactly one of value, source"),
    "hubspot_create_lead": (14, "people.unknown", "HubSpot has no Lead object"),
    "hubspot_behavioral_event_bad_token_template": (
        17, "touches.kinds.page_view.fields.page", "did you mean 'asset'?"
    ),
    "hubspot_timeline_event_without_template": (
        15, "touches.kinds.webinar_attended.event", "needs template_id"
    ),
    "hubspot_lifecycle_stage_misspelled": (
        20, "lifecycle.lifecycle_stages.Customer[0]", "did you mean 'customer'?"
    ),
    "hubspot_lifecycle_stages_without_field": (
        17, "lifecycle.lifecycle_stages", "needs lifecycle_field"
    ),
    "hubspot_task_without_timestamp": (17, "touches.kinds.form_fill.fields", "hs_timestamp"),
    "in_operator_without_list": (15, "filters.rules.conditions[0]", "op in needs a list"),
    "lifecycle_value_in_two_stages": (17, "lifecycle.stages.SQL[0]", "already means MQL"),
    "lifecycle_value_not_in_picklist": (
        16, "lifecycle.stages.SAL[1]", "did you mean 'Sales Qualified'?"
    ),
    "lifecycle_field_on_salesforce": (16, "lifecycle.lifecycle_field", "no lifecycle stage"),
    "mapped_value_not_in_picklist": (
        16, "touches.fields.Type.transforms[0].map.email", "did you mean 'Email'?"
    ),
    "missing_schema_version": (1, "schema_version", "required key is missing"),
    "misspelled_touches_key": (7, "touches.key_feild", "did you mean 'key_field'?"),
    "negative_truncate_length": (
        15, "touches.fields.Description.transforms[0].truncate", "positive length"
    ),
    "newer_schema_version": (1, "schema_version", "newer than this closedloop reads"),
    "person_source_not_a_person_path": (
        15, "people.fields.Email.source", "did you mean 'person.email'?"
    ),
    "picklist_value_misspelled": (11, "touches.fields.Status", "did you mean 'Completed'?"),
    "reason_field_misspelled": (
        16, "lifecycle.reason_fields.Recycled", "did you mean 'Recycle_Reason__c'?"
    ),
    "reason_fields_for_a_stage_sales_does_not_decide": (
        16, "lifecycle.reason_fields.SAL", "explains Disqualified or Recycled, not SAL"
    ),
    "sla_duration_unreadable": (18, "lifecycle.sla.MQL", "not a duration"),
    "template_syntax_error": (10, "touches.fields.Subject", "template syntax error"),
    "truncate_crm_without_length": (
        15, "touches.fields.ActivityDate.transforms[0].truncate", "length of this field is unknown"
    ),
    "two_transforms_in_one_item": (
        15, "touches.fields.Type.transforms[0]", "one transform per list item"
    ),
    "two_way_rule_one_direction": (15, "people.fields.Title", "needs direction: both"),
    "unknown_crm": (4, "crm", "got 'salesforse'"),
    "unknown_crm_field": (10, "touches.fields.Subjet", "did you mean 'Subject'?"),
    "unknown_datetime_format": (
        15, "touches.fields.ActivityDate.transforms[0].datetime", "did you mean 'date'?"
    ),
    "unknown_digest_window": (15, "touches.kinds.page_view.digest.window", "got 'week'"),
    "unknown_hubspot_engagement": (6, "touches.target", "did you mean 'note'?"),
    "unknown_kind_in_filter": (14, "filters.kinds.exclude[1]", "did you mean 'email_sent'?"),
    "unknown_lifecycle_stage": (17, "lifecycle.stages.MQLs", "did you mean 'MQL'?"),
    "unknown_person_crm_field": (14, "people.fields.FirstNme", "did you mean 'FirstName'?"),
    "unknown_salesforce_object": (6, "touches.target", "did you mean 'Task'?"),
    "unknown_source_field": (
        13, "touches.fields.Closedloop_Campaign__c.source", "did you mean 'campaign'?"
    ),
    "unknown_status_field": (13, "lifecycle.status_field", "did you mean 'Status'?"),
    "unknown_sync_rule": (16, "people.fields.FirstName.rule", "got 'prefer_crm'"),
    "unknown_template_filter": (10, "touches.fields.Subject", "did you mean 'lower'?"),
    "opt_out_subscription_not_an_id": (16, "opt_out.subscription", "nor a HubSpot subscription"),
    "opt_out_subscription_on_salesforce": (
        14, "opt_out.subscription", "Salesforce has one email opt-out"
    ),
    "owner_on_hold": (14, "people.owner", "with unknown: hold it creates none"),
    "owner_queue_for_contacts": (15, "people.owner.queue", "queues can own Leads but not Contacts"),
    "owner_queue_on_hubspot": (16, "people.owner", "sets the owner with hubspot_owner_id"),
    "owner_two_kinds": (15, "people.owner", "exactly one of assignment_rule, user, queue"),
    "owner_user_not_a_user_id": (15, "people.owner.user", "not a Salesforce user Id"),
    "unknown_template_variable": (10, "touches.fields.Subject", "did you mean 'touch'?"),
    "unknown_timezone": (5, "timezone", "did you mean 'America/New_York'?"),
    "unknown_top_level_key": (3, "sourse", "did you mean 'source'?"),
    "unknown_touch_field_in_template": (10, "touches.fields.Subject", "did you mean 'asset'?"),
    "unknown_touch_kind": (14, "touches.kinds.page_veiw", "did you mean 'page_view'?"),
    "unknown_transform_mapping": (
        15, "touches.fields.Description.transforms[0]", "did you mean 'truncate'?"
    ),
    "unknown_transform_name": (14, "touches.fields.Type.transforms[1]", "did you mean 'lower'?"),
    "version_zero_file": (1, "", "closedloop mappings migrate"),
    "yaml_syntax_error": (13, "", "YAML syntax error"),
}  # fmt: skip


def test_there_are_at_least_thirty_broken_files_and_each_has_an_expectation() -> None:
    stems = {p.stem for p in BROKEN.glob("*.yaml")}
    assert len(stems) >= 30
    assert stems == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_broken_mapping_reports_the_intended_error_at_its_line_and_key_path(stem: str) -> None:
    line, key_path, fragment = EXPECTED[stem]
    report = validate_file(BROKEN / f"{stem}.yaml", offline_catalogue())
    assert not report.ok
    assert report.model is None
    found = [(i.line, i.key_path, i.message) for i in report.issues]
    assert any(
        i.line == line and i.key_path == key_path and fragment in i.message for i in report.issues
    ), found
    assert all(i.file.endswith(f"{stem}.yaml") for i in report.issues)
