"""The ``writeback:`` sub-sections: off unless present, mistakes reported at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import ConfigError
from sync.config import load_config


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "closedloop.yaml"
    path.write_text("version: 1\n" + text, encoding="utf-8")
    return load_config(path)


def test_write_back_is_off_without_its_sections(tmp_path: Path) -> None:
    config = _load(tmp_path, "attribution: {lookback_days: 90}\n")
    assert config.attribution.writeback is None  # type: ignore[attr-defined]
    assert config.analytics.writeback is None  # type: ignore[attr-defined]


def test_an_empty_section_turns_write_back_on_with_the_default_names(tmp_path: Path) -> None:
    config = _load(tmp_path, "attribution: {writeback: {}}\nanalytics: {writeback: {}}\n")
    attribution = config.attribution.writeback  # type: ignore[attr-defined]
    sla = config.analytics.writeback  # type: ignore[attr-defined]
    assert (attribution.model, attribution.summary_property) == (
        "w_shaped",
        "closedloop_attribution",
    )
    assert (sla.field, sla.property, sla.window) == (
        "SLA_Breached__c",
        "closedloop_sla_breached",
        "30d",
    )


def test_every_mistake_is_reported_with_its_line_and_key_path(tmp_path: Path) -> None:
    text = """attribution:
  writeback:
    model: w_shapd
    influence_model_id: abc
    summary_property: Deal-Summary
analytics:
  writeback:
    field: SLA_Breached
    window: soon
    colour: red
"""
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    found = {(i.line, i.key_path): i.message for i in raised.value.issues}
    assert set(found) == {
        (4, "attribution.writeback.model"),
        (5, "attribution.writeback.influence_model_id"),
        (6, "attribution.writeback.summary_property"),
        (9, "analytics.writeback.field"),
        (10, "analytics.writeback.window"),
        (11, "analytics.writeback.colour"),
    }
    assert "CampaignInfluenceModel" in found[(5, "attribution.writeback.influence_model_id")]
    assert "SLA_Breached__c" in found[(9, "analytics.writeback.field")]
