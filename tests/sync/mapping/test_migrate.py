"""Schema versions: a version-0 file migrates to a valid current file."""

from __future__ import annotations

from pathlib import Path

import yaml

from sync.mapping.catalogue import offline_catalogue
from sync.mapping.migrate import detect_version, dump_mapping, migrate
from sync.mapping.validate import validate_file

V0 = """crm: salesforce
name: old
object: Task
key_field: Closedloop_Key__c
fields:
  - crm_field: Subject
    template: "{{ touch.kind }}: {{ touch.asset }}"
    max_length: 255
    required: true
  - crm_field: Type
    from: channel
    lowercase: true
    map: {email: Email}
    map_default: Other
  - crm_field: ActivityDate
    from: occurred_at
    date_format: date
  - crm_field: Status
    value: Completed
skip_kinds: [email_sent]
person_fields:
  - crm_field: FirstName
    from: first_name
    overwrite: false
  - crm_field: LastName
    from: last_name
    overwrite: true
create_unknown: false
"""


def test_a_flat_fields_list_without_version_is_version_zero() -> None:
    assert detect_version(yaml.safe_load(V0)) == 0
    assert detect_version({"schema_version": 1}) == 1
    assert detect_version("nonsense") is None


def test_version_zero_migrates_to_a_file_that_validates(tmp_path: Path) -> None:
    data, notes = migrate(yaml.safe_load(V0))
    assert notes
    path = tmp_path / "migrated.yaml"
    path.write_text(dump_mapping(data), encoding="utf-8")
    report = validate_file(path, offline_catalogue())
    assert report.ok, [str(i) for i in report.issues]
    model = report.model
    assert model is not None
    assert model.touches.fields["Type"].transforms[0] == "lower"
    assert model.people.fields["FirstName"].rule == "prefer_crm_unless_blank"
    assert model.people.fields["LastName"].rule == "always_overwrite"
    assert model.people.unknown == "hold"
    assert [k.value for k in model.filters.kinds.exclude] == ["email_sent"]


def test_migrated_text_starts_with_the_schema_modeline() -> None:
    data, _ = migrate(yaml.safe_load(V0))
    assert dump_mapping(data).startswith("# yaml-language-server: $schema=")


def test_loading_a_version_zero_file_asks_for_the_migrate_command(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(V0, encoding="utf-8")
    report = validate_file(path, offline_catalogue())
    assert not report.ok
    assert "closedloop mappings migrate" in report.issues[0].message
