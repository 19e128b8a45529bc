"""``closedloop mappings``: exit codes and output an admin sees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.errors import MappingError
from sync.cli.mappings_cmd import app
from tests.sync.mapping.test_migrate import V0

ROOT = Path(__file__).resolve().parents[3]
BROKEN = Path(__file__).parent / "broken"
runner = CliRunner()
OFFLINE = "(checked offline against the sandbox's schema, not your org's)"


def test_validate_prints_ok_per_valid_file_and_exits_zero() -> None:
    files = sorted(str(p) for p in (ROOT / "mappings").glob("*.yaml"))
    result = runner.invoke(app, ["validate", "--offline", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count("OK ") == len(files)
    assert result.output.count(OFFLINE) == len(files)


def test_validate_defaults_to_every_file_in_the_mappings_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", "--offline"])
    assert result.exit_code == 0, result.output
    assert f"OK mappings/marketo-salesforce.yaml {OFFLINE}" in result.output


def test_validate_exits_2_and_points_at_file_line_and_key() -> None:
    broken = BROKEN / "unknown_transform_name.yaml"
    good = ROOT / "mappings" / "files-hubspot.yaml"
    result = runner.invoke(app, ["validate", "--offline", str(good), str(broken)])
    assert result.exit_code == 2
    assert f"OK {good}" in result.output
    assert (
        f"{broken}:14:27: touches.fields.Type.transforms[1]: unknown transform "
        "(did you mean 'lower'?)" in result.output
    )


def test_schema_check_passes_for_the_committed_file_and_fails_when_stale(tmp_path: Path) -> None:
    committed = ROOT / "mappings" / "closedloop-mapping.schema.json"
    assert runner.invoke(app, ["schema", "--check", "-o", str(committed)]).exit_code == 0
    stale = tmp_path / "schema.json"
    stale.write_text("{}", encoding="utf-8")
    assert runner.invoke(app, ["schema", "--check", "-o", str(stale)]).exit_code == 1
    assert runner.invoke(app, ["schema", "-o", str(stale)]).exit_code == 0
    assert stale.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")


def test_migrate_prints_the_upgraded_file_or_rewrites_it(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(V0, encoding="utf-8")
    printed = runner.invoke(app, ["migrate", str(path)])
    assert printed.exit_code == 0
    assert "schema_version: 1" in printed.stdout
    assert path.read_text(encoding="utf-8") == V0
    assert runner.invoke(app, ["migrate", str(path), "--write"]).exit_code == 0
    assert runner.invoke(app, ["validate", "--offline", str(path)]).exit_code == 0


def test_preview_prints_payloads_and_person_overwrites_without_writing() -> None:
    mapping = ROOT / "mappings" / "marketo-salesforce.yaml"
    result = runner.invoke(app, ["preview", "--offline", "--mapping", str(mapping), "-n", "12"])
    assert result.exit_code == 0, result.output
    assert "nothing has been written" in result.output
    assert "UPSERT" in result.output
    assert "OVERWRITE Title" in result.output
    assert "FILTERED" in result.output


def test_preview_reads_touches_from_jsonl_and_prints_json(tmp_path: Path) -> None:
    rows = [
        {"source_id": "1", "kind": "form_fill", "occurred_at": "2024-05-03T14:00:00Z",
         "email": "Ann@Example.com", "asset": "Demo request",
         "person": {"first_name": "Ann", "last_name": "Lee", "company": "Northwind"},
         "crm_person": {"external_id": "00Q9", "kind": "lead", "first_name": "Anne"}},
        {"source_id": "2", "kind": "email_sent", "occurred_at": "2024-05-03T15:00:00Z",
         "email": "ann@example.com"},
    ]  # fmt: skip
    samples = tmp_path / "touches.jsonl"
    samples.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    mapping = ROOT / "mappings" / "marketo-salesforce.yaml"
    result = runner.invoke(
        app, ["preview", "--offline", "-m", str(mapping), "--from", str(samples), "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    upsert = next(t for t in plan["touches"] if t["outcome"] == "upsert")
    assert upsert["payload"]["Subject"] == "Filled out form: Demo request"
    assert upsert["payload"]["WhoId"] == "00Q9"
    assert plan["summary"]["touches_filtered"] == 1


def test_preview_of_a_broken_mapping_raises_the_mapping_error() -> None:
    broken = BROKEN / "unknown_crm_field.yaml"
    result = runner.invoke(app, ["preview", "--offline", "--mapping", str(broken)])
    assert isinstance(result.exception, MappingError)
    assert result.exception.exit_code == 2
    assert "did you mean 'Subject'?" in str(result.exception)


def test_preview_needs_exactly_one_of_mapping_or_pipeline() -> None:
    result = runner.invoke(app, ["preview"])
    assert result.exit_code == 2


def test_preview_resolves_the_mapping_of_a_pipeline_in_closedloop_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mappings").mkdir()
    shutil.copy(ROOT / "mappings" / "hubspot-salesforce.yaml", tmp_path / "mappings" / "t.yaml")
    (tmp_path / "token").write_text("pat-na1-test\n", encoding="utf-8")
    (tmp_path / "closedloop.yaml").write_text(
        """version: 1
connections:
  hubspot:
    type: hubspot
    auth: {method: private_app, access_token_file: token}
  salesforce:
    type: salesforce
    instance_url: https://127.0.0.1:8443
    auth: {method: session, session_id: "${SF_SESSION}"}
pipelines:
  hs-to-sf:
    kind: touches
    source: hubspot
    sink: salesforce
    mapping: mappings/t.yaml
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SF_SESSION", "00Dtest!session")
    config = str(tmp_path / "closedloop.yaml")
    result = runner.invoke(app, ["preview", "--offline", "-p", "hs-to-sf", "-c", config, "-n", "5"])
    assert result.exit_code == 0, result.output
    assert "Preview of mapping hubspot-salesforce" in result.output
    missing = runner.invoke(app, ["preview", "-p", "hs-to-sfdc", "-c", config])
    assert "did you mean 'hs-to-sf'?" in str(missing.exception)
