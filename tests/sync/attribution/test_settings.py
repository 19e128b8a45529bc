"""The ``attribution:`` section of closedloop.yaml, and the identity graph's edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import ConfigError
from sync.attribution import AttributionPerson, IdentityGraph, PositionWeights
from sync.attribution.models import DEFAULT_COUNTED_KINDS
from sync.config import load_config


def test_a_config_without_the_section_uses_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text("version: 1\n")
    params = load_config(path).attribution.params()
    assert params.lookback_days == 365
    assert params.half_life_days == 7
    assert params.counted_kinds == DEFAULT_COUNTED_KINDS
    assert params.custom is None


def test_the_section_sets_lookback_kinds_half_life_and_custom_weights(tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\n"
        "attribution:\n"
        "  lookback_days: 90\n"
        "  counted_kinds: [form_fill, webinar_attended]\n"
        "  half_life_days: 3.5\n"
        "  custom: {first_touch: 22.5, lead_creation: 22.5, closed_won: 45, others: 10}\n"
    )
    config = load_config(path)
    params = config.attribution.params()
    assert params.lookback_days == 90
    assert params.counted_kinds == {"form_fill", "webinar_attended"}
    assert params.half_life_days == 3.5
    assert params.custom == PositionWeights(
        first_touch=225_000, lead_creation=225_000, closed_won=450_000, others=100_000
    )
    assert config.display()["attribution"]["lookback_days"] == 90


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  counted_kinds: [form_fill, carrier_pigeon]\n", "unknown touch kind(s) carrier_pigeon"),
        ("  custom: {first_touch: 50, others: 40}\n", "must add up to 100; they add up to 90"),
        ("  lookback_days: 0\n", "greater than 0"),
        ("  half_life: 7\n", "half_life"),
    ],
)
def test_mistakes_in_the_section_are_reported_with_their_line(
    tmp_path: Path, section: str, message: str
) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text("version: 1\nattribution:\n" + section)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = "\n".join(str(issue) for issue in raised.value.issues)
    assert message in text
    assert ":3" in text


def test_a_cycle_of_merges_in_bad_data_does_not_hang() -> None:
    graph = IdentityGraph(
        [AttributionPerson("a", merged_into="b"), AttributionPerson("b", merged_into="a")]
    )
    assert graph.canonical("a") in {"a", "b"}
    assert graph.canonical("b") in {"a", "b"}


def test_a_current_address_beats_a_former_one_and_a_contact_beats_a_lead() -> None:
    graph = IdentityGraph(
        [
            AttributionPerson("old", emails=("new@x.example", "shared@x.example")),
            AttributionPerson("cur", emails=("shared@x.example",)),
            AttributionPerson("lead", is_lead=True, emails=("both@x.example",)),
            AttributionPerson("contact", emails=("both@x.example",)),
        ]
    )
    assert graph.person_for_email("Shared@X.example") == "cur"
    assert graph.person_for_email("both@x.example") == "contact"
    assert graph.person_for_email("nobody@x.example") is None
