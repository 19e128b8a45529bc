"""The lag window's memory of versions already yielded."""

from __future__ import annotations

import pytest

from connectors import lagwindow
from connectors.lagwindow import SeenVersions, version_key

LAG = 60_000


def test_a_version_is_new_once_and_a_later_version_of_the_same_record_is_new_again() -> None:
    seen = SeenVersions([], None, LAG)
    assert seen.first_sight("a", 1_000)
    assert not seen.first_sight("a", 1_000)
    assert seen.first_sight("a", 2_000)


def test_the_cursor_keeps_only_versions_inside_the_lag_before_its_end() -> None:
    seen = SeenVersions([], None, LAG)
    for record, ms in (("old", 10_000), ("edge", 40_000), ("new", 100_000), ("after", 100_001)):
        seen.first_sight(record, ms)
    assert seen.keys_until(100_000) == {version_key("edge", 40_000), version_key("new", 100_000)}
    assert seen.start(100_000) == 40_000


def test_keys_from_a_cursor_carry_over_and_plain_ids_mean_the_cursor_time() -> None:
    seen = SeenVersions([version_key("a", 90_000), "b"], 95_000, LAG)
    assert not seen.first_sight("a", 90_000)
    assert not seen.first_sight("b", 95_000)
    assert seen.first_sight("b", 96_000)


def test_after_a_mass_update_the_newest_versions_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lagwindow, "MAX_KEYS", 3)
    seen = SeenVersions([], None, LAG)
    for n in range(10):
        seen.first_sight(f"r{n}", 50_000 + n)
    assert seen.keys_until(60_000) == {version_key(f"r{n}", 50_000 + n) for n in (7, 8, 9)}
