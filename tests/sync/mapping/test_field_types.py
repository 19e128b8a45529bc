"""Values against the CRM field they go into: refused at validate time where known, per touch
(a map-stage MappingError naming the field) where computed; fields nobody may write refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import TouchKind
from connectors.errors import MappingError
from sync.mapping.catalogue import FieldCatalogue, FieldInfo, offline_catalogue
from sync.mapping.validate import load_lifecycle, load_mapping, needed_objects, validate_file
from tests.sync.mapping.helpers import BASE, touch

# An org whose admin added a number, a checkbox and a restricted picklist to Task.
CUSTOM = FieldCatalogue.from_rows(
    "salesforce",
    {
        "Task": [
            *(
                info.to_row()
                for info in (offline_catalogue().fields("salesforce", "Task") or {}).values()
            ),
            FieldInfo("Booth__c", "double").to_row(),
            FieldInfo("Met__c", "boolean").to_row(),
            FieldInfo("Tier__c", "picklist", 255, ("Gold", "Silver"), restricted=True).to_row(),
        ]
    },
    "against a test org",
)
CUSTOM = offline_catalogue().merged(CUSTOM)


def _issues(tmp_path: Path, extra: str, catalogue: FieldCatalogue = CUSTOM) -> list[str]:
    path = tmp_path / "mapping.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return [f"{i.line}: {i.key_path}: {i.message}" for i in validate_file(path, catalogue).issues]


def _load(tmp_path: Path, extra: str, catalogue: FieldCatalogue = CUSTOM) -> object:
    path = tmp_path / "mapping.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_mapping(path, catalogue)


def test_the_base_mapping_is_valid_against_the_test_org(tmp_path: Path) -> None:
    assert _issues(tmp_path, "") == []


def test_a_date_field_refuses_text_and_epoch_milliseconds_but_takes_a_day(
    tmp_path: Path,
) -> None:
    computed = (
        "    ActivityDate:\n      source: touch.occurred_at\n      transforms: [{datetime: date}]\n"
    )
    literal = BASE.replace(computed, "    ActivityDate: next tuesday\n")
    epoch = BASE.replace("[{datetime: date}]", "[{datetime: epoch_ms}]")
    day = BASE.replace(computed, "    ActivityDate: 2024-05-06\n")
    paths = {}
    for name, text in (("literal", literal), ("epoch", epoch), ("day", day)):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(text, encoding="utf-8")

    [literal_issue] = validate_file(paths["literal"], CUSTOM).issues
    [epoch_issue] = validate_file(paths["epoch"], CUSTOM).issues

    assert (literal_issue.line, literal_issue.key_path) == (16, "touches.fields.ActivityDate")
    assert (
        "value 'next tuesday' is not a date: ActivityDate is a date field" in literal_issue.message
    )
    assert epoch_issue.key_path == "touches.fields.ActivityDate.source"
    assert epoch_issue.message.startswith(
        "touch.occurred_at after its transforms gives values like 1715000400000, which is not "
        "a date"
    )
    assert validate_file(paths["day"], CUSTOM).ok


def test_number_boolean_and_restricted_picklist_literals_are_checked(tmp_path: Path) -> None:
    issues = _issues(tmp_path, "    Booth__c: A12\n    Met__c: maybe\n    Tier__c: Bronze\n")
    fine = _issues(tmp_path, "    Booth__c: 12\n    Met__c: true\n    Tier__c: Gold\n")

    assert issues == [
        "19: touches.fields.Booth__c: value 'A12' is not a number: Booth__c is a double field "
        "(a number)",
        "20: touches.fields.Met__c: value 'maybe' is not a boolean: Met__c is a boolean field "
        "(true or false)",
        "21: touches.fields.Tier__c: value 'Bronze' is not a value of Tier__c (values: Gold, "
        "Silver)",
    ]
    assert fine == []


def test_computed_values_the_field_cannot_take_reject_the_touch_naming_the_field(
    tmp_path: Path,
) -> None:
    mapping = _load(
        tmp_path,
        "    Booth__c: {source: touch.attributes.booth}\n"
        "    Tier__c: {source: touch.attributes.tier}\n",
    )
    good = touch(TouchKind.FORM_FILL, attributes={"booth": "12", "tier": "Gold"})
    bad_number = touch(TouchKind.FORM_FILL, "2", attributes={"booth": "A12", "tier": "Gold"})
    bad_tier = touch(TouchKind.FORM_FILL, "3", attributes={"booth": 7, "tier": "Bronze"})

    rendered = mapping.render(good)  # type: ignore[attr-defined]
    with pytest.raises(MappingError) as number:
        mapping.render(bad_number)  # type: ignore[attr-defined]
    with pytest.raises(MappingError) as tier:
        mapping.render(bad_tier)  # type: ignore[attr-defined]

    assert rendered.payload["Booth__c"] == "12"
    assert str(number.value) == (
        "touch marketo:2: field Booth__c: 'A12' is not a number: Booth__c is a double field "
        "(a number)"
    )
    assert str(tier.value) == "touch marketo:3: field Tier__c: 'Bronze' is not a value of Tier__c"


def test_an_unrestricted_picklist_takes_a_computed_value_outside_its_list(tmp_path: Path) -> None:
    mapping = _load(tmp_path, "    Type: {source: touch.channel}\n")

    rendered = mapping.render(touch(TouchKind.FORM_FILL, channel="Trade show"))  # type: ignore[attr-defined]

    assert rendered.payload["Type"] == "Trade show"


def test_an_explicit_truncate_longer_than_the_field_is_refused(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        "    Description:\n      source: touch.asset\n      transforms: [{truncate: 40000}]\n"
        "    Type:\n      source: touch.channel\n      transforms: [{truncate: 300}]\n",
    )

    assert any(
        "touches.fields.Type.transforms[0].truncate: 300 is longer than Type holds (255" in i
        for i in issues
    ), issues
    assert any("40000 is longer than Description holds (32000" in i for i in issues), issues


def test_a_field_the_integration_user_cannot_write_is_refused(tmp_path: Path) -> None:
    issues = _issues(tmp_path, "    IsClosed: true\n")

    assert issues == [
        "19: touches.fields.IsClosed: Task.IsClosed cannot be created and updated by the "
        "integration user (read-only or no edit access; checked against a test org): remove it "
        "here, or grant edit access to it"
    ]


def test_hubspot_dates_take_midnight_utc_and_datetimes_epoch_milliseconds(tmp_path: Path) -> None:
    catalogue = FieldCatalogue.from_rows(
        "hubspot",
        {
            "note": [
                FieldInfo("hs_timestamp", "datetime", required=True).to_row(),
                FieldInfo("closedloop_touch_key", "string", 255).to_row(),
                FieldInfo("follow_up", "date").to_row(),
            ]
        },
        "against a test portal",
    )
    text = (
        "schema_version: 1\nname: t\nsource: marketo\ncrm: hubspot\ntouches:\n  target: note\n"
        "  key_field: closedloop_touch_key\n  fields:\n"
        "    hs_timestamp: {source: touch.occurred_at, transforms: [{datetime: epoch_ms}]}\n"
        "    follow_up: 1714953600001\n"
    )
    path = tmp_path / "hubspot.yaml"
    path.write_text(text, encoding="utf-8")

    [issue] = validate_file(path, catalogue).issues

    assert issue.key_path == "touches.fields.follow_up"
    assert "is not midnight UTC" in issue.message


def test_a_missing_closedloop_property_points_at_check_hubspot_fix(tmp_path: Path) -> None:
    empty_note = FieldCatalogue.from_rows(
        "hubspot",
        {"note": [FieldInfo("hs_timestamp", "datetime", required=True).to_row()]},
        "against a test portal",
    )
    path = tmp_path / "hubspot.yaml"
    path.write_text(
        "schema_version: 1\nname: t\nsource: marketo\ncrm: hubspot\ntouches:\n  target: note\n"
        "  key_field: closedloop_touch_key\n  fields:\n"
        "    hs_timestamp: {source: touch.occurred_at, transforms: [{datetime: epoch_ms}]}\n",
        encoding="utf-8",
    )

    [issue] = validate_file(path, empty_note).issues

    assert issue.message.endswith(
        "`closedloop check hubspot --fix` creates closedloop's own properties"
    )


def test_the_objects_a_mapping_needs_are_its_targets_people_and_deals(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "mappings"
    report = validate_file(root / "marketo-salesforce.yaml", offline_catalogue())
    hubspot = validate_file(root / "marketo-hubspot.yaml", offline_catalogue())

    assert report.model is not None
    assert hubspot.model is not None
    assert needed_objects(report.model) == ["Task", "Lead", "Contact", "Opportunity"]
    assert needed_objects(hubspot.model) == ["note", "task", "contact", "deal"]


def test_a_lifecycle_is_read_without_any_crm_schema() -> None:
    root = Path(__file__).resolve().parents[3] / "mappings"

    lifecycle = load_lifecycle(root / "marketo-salesforce.yaml")

    assert lifecycle.status_field == "Status"


def test_a_hubspot_multiple_checkbox_takes_several_options_joined_by_semicolons(
    tmp_path: Path,
) -> None:
    catalogue = FieldCatalogue.from_rows(
        "hubspot",
        {
            "note": [
                FieldInfo("hs_timestamp", "datetime", required=True).to_row(),
                FieldInfo("closedloop_touch_key", "string", 255).to_row(),
                FieldInfo(
                    "topics", "enumeration", None, ("pricing", "demo"), restricted=True,
                    field_type="checkbox",
                ).to_row(),
            ]
        },
        "against a test portal",
    )  # fmt: skip
    path = tmp_path / "hubspot.yaml"
    path.write_text(
        "schema_version: 1\nname: t\nsource: marketo\ncrm: hubspot\ntouches:\n  target: note\n"
        "  key_field: closedloop_touch_key\n  fields:\n"
        "    hs_timestamp: {source: touch.occurred_at, transforms: [{datetime: epoch_ms}]}\n"
        "    topics: {source: touch.attributes.topics}\n",
        encoding="utf-8",
    )
    mapping = load_mapping(path, catalogue)

    both = mapping.render(touch(TouchKind.FORM_FILL, attributes={"topics": "pricing;demo"}))
    with pytest.raises(MappingError, match="'webinar' is not a value of topics"):
        mapping.render(touch(TouchKind.FORM_FILL, "2", attributes={"topics": "demo;webinar"}))

    assert both is not None
    assert both.payload["topics"] == "pricing;demo"
