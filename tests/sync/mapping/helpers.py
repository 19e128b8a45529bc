"""Small builders shared by the mapping tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import Touch, TouchKind
from sync.mapping.catalogue import offline_catalogue
from sync.mapping.compile import CompiledMapping
from sync.mapping.validate import load_mapping

BASE = """schema_version: 1
name: test
source: marketo
crm: salesforce
timezone: America/New_York
touches:
  target: Task
  key_field: Closedloop_Key__c
  person_field: WhoId
  account_field: WhatId
  fields:
    Subject:
      template: "{{ touch.kind | humanize }}: {{ touch.asset | default('-') }}"
      required: true
    Status: Completed
    ActivityDate:
      source: touch.occurred_at
      transforms: [{datetime: date}]
"""


def mapping_from(tmp_path: Path, text: str) -> CompiledMapping:
    """Write ``text`` to a file and load it the way the engine does."""
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path, offline_catalogue())


def touch(kind: TouchKind = TouchKind.EMAIL_OPEN, source_id: str = "1", **kw: Any) -> Touch:
    """A touch at a fixed time; keyword arguments override any field."""
    values: dict[str, Any] = {
        "source": "marketo", "source_id": source_id, "kind": kind,
        "occurred_at": datetime(2024, 5, 3, 14, 0, tzinfo=UTC), "email": "ann@example.com",
    }  # fmt: skip
    values.update(kw)
    return Touch(**values)
