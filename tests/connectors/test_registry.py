"""Connector discovery through entry points, with a plugin installed from its own package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors import registry
from connectors.base import Cursor, Person, PersonKind, RenderedTouch
from connectors.errors import ConfigError
from connectors.testing import KitSpec, connector_battery

BIN = Path(sys.executable).parent
SETTINGS = {
    "token": "let-me-in",
    "emails": ["ada@example.com", "grace@example.org"],
    "start": "2026-01-01T09:00:00+00:00",
}


@pytest.fixture(scope="module")
def plugin_dir(echo_plugin_dir: Path) -> Path:
    """The echo plugin installed with pip into a folder of its own (not into the venv)."""
    return echo_plugin_dir


@pytest.fixture
def plugin_on_path(plugin_dir: Path) -> Iterator[None]:
    """Make the installed plugin importable in this process, as if it were in site-packages."""
    sys.path.insert(0, str(plugin_dir))
    registry._entry_points.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(plugin_dir))
        sys.modules.pop("closedloop_echo", None)
        registry._entry_points.cache_clear()


def _cli(plugin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugin_dir)}
    return subprocess.run(
        [str(BIN / "closedloop"), *args], capture_output=True, text=True, env=env, check=False
    )


def test_plugin_from_a_separate_package_is_listed_by_the_cli(plugin_dir: Path) -> None:
    result = _cli(plugin_dir, "connectors", "list")
    assert result.returncode == 0, result.stderr
    assert "echo" in result.stdout
    assert "one touch per configured email" in result.stdout


def test_plugin_runs_its_check_through_the_cli(plugin_dir: Path) -> None:
    result = _cli(plugin_dir, "connectors", "check", "echo", "--settings", json.dumps(SETTINGS))
    assert result.returncode == 0, result.stderr
    assert "token" in result.stdout


def test_plugin_check_failure_exits_non_zero_with_the_remedy(plugin_dir: Path) -> None:
    bad = {**SETTINGS, "token": "wrong"}
    result = _cli(plugin_dir, "connectors", "check", "echo", "--settings", json.dumps(bad))
    assert result.returncode == 1
    assert "set token to the value on the echo page" in result.stdout
    assert "wrong" not in result.stdout + result.stderr


def test_plugin_pulls_touches_when_built_from_the_registry(plugin_on_path: None) -> None:
    info = registry.get_connector("echo")
    source = info.build("badges", SETTINGS)
    pages = list(source.pull_touches(Cursor(), datetime(2027, 1, 1, tzinfo=UTC)))
    assert [t.email for p in pages for t in p.records] == SETTINGS["emails"]
    assert [t.key for p in pages for t in p.records] == ["badges:echo-0", "badges:echo-1"]


def test_unknown_connector_type_lists_the_known_ones(plugin_on_path: None) -> None:
    with pytest.raises(ConfigError) as caught:
        registry.get_connector("salesfarce")
    message = str(caught.value)
    assert "unknown connector type 'salesfarce'" in message
    assert "echo" in message
    for name in registry.connector_names():
        assert name in message


def test_unknown_connector_type_on_the_cli_exits_2_and_lists_known_types(plugin_dir: Path) -> None:
    result = _cli(plugin_dir, "connectors", "check", "nope", "--settings", "{}")
    assert result.returncode == 2
    assert "known types:" in result.stderr
    assert "echo" in result.stderr


def test_a_plugin_sink_declares_its_roles_and_catalogue(plugin_on_path: None) -> None:
    assert "echo" in registry.sink_names()
    sink = registry.sink_info("echo")
    assert sink.person_objects == ("person",)
    assert {"activity", "person"} <= set(sink.fields)
    assert registry.sink_info("marketo") == registry.SinkInfo()  # a source only: no sink


@pytest.fixture
def kit(plugin_on_path: None, tmp_path: Path) -> KitSpec:
    info = registry.get_connector("echo")
    settings = {**SETTINGS, "store": str(tmp_path / "echo")}
    crm = info.build("badges", settings)
    emails = list(SETTINGS["emails"])
    people = crm.create_people([Person("test", "", PersonKind.CONTACT, e) for e in emails])

    def touches() -> list[RenderedTouch]:
        return [
            RenderedTouch(
                f"badges:echo-{i}",
                "activity",
                {"touch_key": f"badges:echo-{i}", "subject": "Form fill", "person": p.external_id},
                person_id=p.external_id,
            )
            for i, p in enumerate(people)
        ]

    def count_written(keys: Sequence[str]) -> dict[str, int]:
        records = json.loads((tmp_path / "echo" / "records.json").read_text(encoding="utf-8"))
        return {key: sum(1 for k in records if k == key) for key in keys}

    return KitSpec(
        make=lambda: info.build("badges", settings),
        make_unauthorised=lambda: info.build("badges", {**settings, "token": "nope"}),
        until=datetime(2027, 1, 1, tzinfo=UTC),
        touches_to_push=touches,
        count_written=count_written,
        known_emails=emails,
    )


TestEchoPluginBattery = connector_battery()
