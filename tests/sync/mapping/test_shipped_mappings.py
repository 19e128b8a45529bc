"""The shipped mappings: valid, schema-linked, and rendering sample touches exactly as recorded.

Golden files under golden/ hold the full preview (payloads, person plans, filtered and digested
touches) of each shipped mapping over the deterministic samples. After an intended change,
regenerate them with ``CLOSEDLOOP_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sync.mapping.catalogue import offline_catalogue
from sync.mapping.model import SCHEMA_FILE_NAME, json_schema_text
from sync.mapping.preview import build_preview, sample_cases
from sync.mapping.validate import load_mapping, validate_file

ROOT = Path(__file__).resolve().parents[3]
MAPPINGS = ROOT / "mappings"
GOLDEN = Path(__file__).parent / "golden"
SHIPPED = [
    "marketo-salesforce", "marketo-hubspot", "hubspot-salesforce", "files-salesforce",
    "files-hubspot",
]  # fmt: skip


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mapping_is_valid_and_starts_with_the_schema_modeline(name: str) -> None:
    path = MAPPINGS / f"{name}.yaml"
    report = validate_file(path, offline_catalogue())
    assert report.ok, [str(i) for i in report.issues]
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=./{SCHEMA_FILE_NAME}"


def test_committed_json_schema_equals_the_generated_one() -> None:
    committed = (MAPPINGS / SCHEMA_FILE_NAME).read_text(encoding="utf-8")
    assert committed == json_schema_text(), "run `closedloop mappings schema`"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mapping_renders_samples_as_recorded_in_its_golden_file(name: str) -> None:
    mapping = load_mapping(MAPPINGS / f"{name}.yaml", offline_catalogue())
    preview = build_preview(mapping, sample_cases(mapping, 30))
    text = json.dumps(preview.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("CLOSEDLOOP_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing {golden.name}: run with CLOSEDLOOP_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_rendered_payload_carries_the_touch_key_and_fits_the_crm_lengths(name: str) -> None:
    catalogue = offline_catalogue()
    mapping = load_mapping(MAPPINGS / f"{name}.yaml", offline_catalogue())
    preview = build_preview(mapping, sample_cases(mapping, 60))
    upserts = [t for t in preview.touches if t["outcome"] == "upsert"]
    assert upserts
    for item in upserts:
        payload = item["payload"]
        assert payload[mapping.key_field] == item["key"]
        for field, value in payload.items():
            info = catalogue.field(mapping.crm, item["target"], field)
            assert info is not None, f"{item['target']} has no field {field}"
            if info.length and isinstance(value, str):
                assert len(value) <= info.length
            if info.picklist and isinstance(value, str):
                assert value in info.picklist, (field, value)
