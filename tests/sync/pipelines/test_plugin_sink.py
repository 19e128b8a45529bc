"""A plugin CRM as a mapping target, end to end through the ``closedloop`` command.

The echo plugin (``tests/plugins/echo``) is installed from its own package into a folder of its
own and put on ``PYTHONPATH``, as an admin would install it next to closedloop. Its connection
is the sink of a badge-scan pipeline; its mapping says ``crm: echo`` and is checked against the
catalogue the plugin declares. The echo sink keeps every record each push call carried in
``received.jsonl``, so the tests count how often closedloop sent each touch.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.server import SandboxServer
from sync.cli.demo_cmd import BADGE_CAMPAIGN, write_sandbox_config

BIN = Path(sys.executable).parent
BADGES = "badge_scans"
REFUSED = "refused@example.com"
EMAILS = ["ada@example.com", "grace@example.org", REFUSED]

MAPPING = """\
schema_version: 1
name: badges-to-echo
source: files
crm: echo
touches:
  target: activity
  key_field: touch_key
  person_field: person
  fields:
    subject: "{{ touch.kind }} at {{ touch.campaign }}"
    kind: {source: touch.kind}
    occurred_at: {source: touch.occurred_at, transforms: [{datetime: iso}]}
    campaign: {source: touch.campaign}
people:
  unknown: create_contact
  create_defaults:
    stage: new
"""


class Folder:
    """A config folder whose one pipeline writes badge scans to an echo connection."""

    def __init__(self, path: Path, plugin_dir: Path) -> None:
        self.path = path
        self.plugin_dir = plugin_dir

    @property
    def config(self) -> Path:
        return self.path / "closedloop.yaml"

    def run(self, *args: str, plugin: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if plugin:
            env["PYTHONPATH"] = str(self.plugin_dir)
        return subprocess.run(
            [str(BIN / "closedloop"), *args, "--config", str(self.config)],
            capture_output=True, text=True, env=env, cwd=self.path, check=False,
        )  # fmt: skip

    def write_mapping(self, text: str, name: str = "badges-echo.yaml") -> Path:
        path = self.path / "mappings" / name
        path.write_text(text, encoding="utf-8")
        return path

    def set_echo(self, **settings: Any) -> None:
        data = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        data["connections"]["echo"].update(settings)
        self.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def received(self) -> Counter[str]:
        """How many times the echo sink was sent each touch key."""
        path = self.path / "echo-store" / "received.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return Counter(json.loads(line)["key"] for line in lines)

    def records(self) -> dict[str, Any]:
        """The echo sink's records by touch key."""
        path = self.path / "echo-store" / "records.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def people(self) -> dict[str, Any]:
        path = self.path / "echo-store" / "people.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@pytest.fixture
def folder(tmp_path: Path, sandbox_readonly: SandboxServer, echo_plugin_dir: Path) -> Folder:
    path = tmp_path / "cfg"
    path.mkdir()
    write_sandbox_config(
        path,
        sandbox_readonly,
        pipelines={
            "badges-to-echo": {
                "kind": "touches",
                "source": BADGES,
                "sink": "echo",
                "mapping": "mappings/badges-echo.yaml",
            }
        },
        connections={
            "echo": {
                "type": "echo",
                "token": "let-me-in",
                "store": "echo-store",
                "refuse": [REFUSED],
            },
        },
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
    )
    made = Folder(path, echo_plugin_dir)
    made.write_mapping(MAPPING)
    scans = path / "scans.csv"
    with scans.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Badge", "Email", "Scanned"])
        for n, email in enumerate(EMAILS):
            writer.writerow([f"B{n}", email, f"2026-03-0{n + 1}T10:00:00Z"])
    imported = made.run("import", str(scans), "--source", BADGES)
    assert imported.returncode == 0, imported.stderr
    return made


def test_a_mapping_into_a_plugin_crm_is_checked_against_its_declared_catalogue(
    folder: Folder,
) -> None:
    good = folder.run("mappings", "validate", "mappings/badges-echo.yaml")
    assert good.returncode == 0, good.stderr
    assert "OK mappings/badges-echo.yaml" in good.stdout
    assert "against the catalogue the echo connector declares" in good.stdout
    checked = folder.run("config", "check")
    assert checked.returncode == 0, checked.stderr

    folder.write_mapping(
        MAPPING.replace("target: activity", "target: activty")
        .replace("    subject:", "    subjct:")
        .replace("    stage: new", "    stage: neww"),
        "broken.yaml",
    )
    bad = folder.run("mappings", "validate", "mappings/broken.yaml")
    assert bad.returncode == 2
    assert "echo has no object 'activty' (did you mean 'activity'?)" in bad.stderr
    assert "'neww' is not a value of stage (did you mean 'new'?)" in bad.stderr

    folder.write_mapping(MAPPING.replace("    subject:", "    subjct:"), "misspelt.yaml")
    field = folder.run("mappings", "validate", "mappings/misspelt.yaml")
    assert field.returncode == 2
    assert "activity has no field 'subjct' (did you mean 'subject'?)" in field.stderr
    assert "activity requires subject" in field.stderr


def test_a_crm_name_no_installed_connector_has_is_refused_with_a_hint(folder: Folder) -> None:
    folder.write_mapping(MAPPING.replace("crm: echo", "crm: ecko"), "typo.yaml")

    typo = folder.run("mappings", "validate", "--offline", "mappings/typo.yaml")

    assert typo.returncode == 2
    assert "crm: not an installed CRM connector type (did you mean 'echo'?)" in typo.stderr
    without = folder.run("mappings", "validate", "--offline", "mappings/badges-echo.yaml",
                         plugin=False)  # fmt: skip
    assert without.returncode == 2
    assert "crm: not an installed CRM connector type" in without.stderr
    offline = folder.run("mappings", "validate", "--offline", "mappings/badges-echo.yaml")
    assert offline.returncode == 0, offline.stderr


def test_sync_delivers_each_touch_to_the_plugin_once_and_its_refusals_become_dead_letters(
    folder: Folder,
) -> None:
    dry = folder.run("sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr + dry.stdout
    assert folder.received() == Counter()  # a dry run sends the plugin nothing

    first = folder.run("sync")

    assert first.returncode == 0, first.stderr + first.stdout
    keys = [f"{BADGES}:B{n}" for n in range(3)]
    assert folder.received() == Counter(keys)  # each touch sent once, the refused one too
    records = folder.records()
    assert sorted(records) == keys[:2]
    payload = records[keys[0]]["payload"]
    assert payload["touch_key"] == keys[0]
    assert payload["subject"] == f"event_attended at {BADGE_CAMPAIGN}"
    assert payload["occurred_at"].startswith("2026-03-01T10:00:00")
    people = folder.people()
    assert sorted(people) == sorted(EMAILS)
    assert payload["person"] == people["ada@example.com"]["id"]
    assert people["ada@example.com"]["stage"] == "new"
    listed = folder.run("dead-letters", "list", "--format", "json")
    (letter,) = json.loads(listed.stdout)
    assert (letter["record"], letter["stage"], letter["code"]) == (keys[2], "push", "ECHO_REFUSED")
    assert REFUSED in letter["reason"]

    again = folder.run("sync")

    assert again.returncode == 0, again.stderr
    assert folder.received() == Counter(keys)  # nothing sent twice

    folder.set_echo(refuse=[])
    replayed = folder.run("dead-letters", "replay", "--all")

    assert replayed.returncode == 0, replayed.stderr + replayed.stdout
    assert folder.received() == Counter({keys[0]: 1, keys[1]: 1, keys[2]: 2})
    assert sorted(folder.records()) == keys
    assert "no open dead letters" in folder.run("dead-letters", "list").stdout
    folder.run("sync")
    assert folder.received() == Counter({keys[0]: 1, keys[1]: 1, keys[2]: 2})
