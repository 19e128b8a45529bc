"""Mapping file versions: detect a file's ``schema_version`` and upgrade older shapes.

Version 0 was the first, flat shape (no ``schema_version`` key)::

    crm: salesforce
    object: Task
    key_field: Closedloop_Key__c
    fields:                       # one list for every kind
      - crm_field: Subject
        template: "{{ touch.kind }}: {{ touch.asset }}"
        max_length: 255
      - crm_field: Type
        from: channel             # a touch field name
        map: {email: Email}
    skip_kinds: [email_sent]
    person_fields:
      - crm_field: FirstName
        from: first_name
        overwrite: true           # true = always_overwrite, false = prefer_crm_unless_blank
    create_unknown: true          # true = create_lead, false = hold

Loading never migrates silently: a version-0 file is an error that names the command
``closedloop mappings migrate FILE --write``, so an admin sees (and commits) the new shape.
"""

from __future__ import annotations

from typing import Any

import yaml

from sync.mapping.model import CURRENT_SCHEMA_VERSION, SCHEMA_FILE_NAME

__all__ = ["detect_version", "dump_mapping", "migrate", "migrate_v0"]


def detect_version(data: Any) -> int | None:
    """The schema version a parsed file is written in, or None when it cannot be told."""
    if not isinstance(data, dict):
        return None
    version = data.get("schema_version", data.get("version"))
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if version is None and isinstance(data.get("fields"), list):
        return 0
    return None


def migrate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Upgrade ``data`` to the current version; returns it with notes on what changed."""
    version = detect_version(data)
    notes: list[str] = []
    if version == 0:
        data, notes = migrate_v0(data)
        version = 1
    if version != CURRENT_SCHEMA_VERSION:
        raise ValueError(f"cannot migrate schema_version {version!r}")
    return data, notes


def migrate_v0(old: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Version 0 (flat field list) -> version 1 (touches / people / filters sections)."""
    notes: list[str] = []
    crm = old.get("crm", "salesforce")
    new: dict[str, Any] = {
        "schema_version": 1,
        "name": old.get("name", "migrated"),
        "description": old.get("description", "migrated from schema version 0"),
        "source": old.get("source", "marketo"),
        "crm": crm,
    }
    if "timezone" in old:
        new["timezone"] = old["timezone"]
    touches: dict[str, Any] = {
        "target": old.get("object", "Task" if crm == "salesforce" else "note"),
        "key_field": old.get(
            "key_field", "Closedloop_Key__c" if crm == "salesforce" else "closedloop_touch_key"
        ),
    }
    if crm == "salesforce":
        touches["person_field"] = old.get("who_field", "WhoId")
    fields: dict[str, Any] = {}
    for item in old.get("fields") or []:
        if not isinstance(item, dict) or "crm_field" not in item:
            notes.append(f"dropped a fields entry without crm_field: {item!r}")
            continue
        fields[str(item["crm_field"])] = _field_v0(item, notes)
    touches["fields"] = fields
    new["touches"] = touches
    people: dict[str, Any] = {
        "unknown": ("create_lead" if crm == "salesforce" else "create_contact")
        if old.get("create_unknown")
        else "hold"
    }
    person_fields: dict[str, Any] = {}
    for item in old.get("person_fields") or []:
        if not isinstance(item, dict) or "crm_field" not in item:
            notes.append(f"dropped a person_fields entry without crm_field: {item!r}")
            continue
        person_fields[str(item["crm_field"])] = {
            "source": f"person.{item.get('from', 'email')}",
            "direction": "to_crm",
            "rule": "always_overwrite" if item.get("overwrite") else "prefer_crm_unless_blank",
        }
    if person_fields:
        people["fields"] = person_fields
    new["people"] = people
    skip = old.get("skip_kinds") or []
    if skip:
        new["filters"] = {"kinds": {"exclude": list(skip)}}
    notes.append("schema_version 0 -> 1: fields moved to touches.fields, person_fields to "
                 "people.fields, skip_kinds to filters.kinds.exclude")  # fmt: skip
    return new, notes


def _field_v0(item: dict[str, Any], notes: list[str]) -> Any:
    rule: dict[str, Any] = {}
    if "value" in item:
        rule["value"] = item["value"]
    elif "from" in item:
        rule["source"] = f"touch.{item['from']}"
    elif "template" in item:
        rule["template"] = item["template"]
    else:
        notes.append(f"{item['crm_field']}: no value, from or template; set to a blank value")
        rule["value"] = ""
    transforms: list[Any] = []
    if item.get("lowercase"):
        transforms.append("lower")
    if "map" in item:
        step: dict[str, Any] = {"map": item["map"]}
        if "map_default" in item:
            step["default"] = item["map_default"]
        transforms.append(step)
    if "date_format" in item:
        transforms.append({"datetime": item["date_format"]})
    if "max_length" in item:
        transforms.append({"truncate": item["max_length"]})
    if transforms:
        rule["transforms"] = transforms
    if item.get("required"):
        rule["required"] = True
    if "default" in item:
        rule["default"] = item["default"]
    return rule


def dump_mapping(data: dict[str, Any]) -> str:
    """YAML text of a mapping, with the editor modeline first."""
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return f"# yaml-language-server: $schema=./{SCHEMA_FILE_NAME}\n{body}"
