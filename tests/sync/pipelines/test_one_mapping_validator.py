"""One validator everywhere: a broken mapping stops `config check`, `sync`, `backfill` and `serve`
before any API call, at its file:line:col and key path, with exit 2.

Each kind of broken file is the shipped Marketo -> Salesforce mapping with one mistake, used by a
touches pipeline next to pipelines that are fine. The schema of the sandbox org is cached first
(one `config check` of the good file), so that from then on every call the sandbox counts would
be a call closedloop made while it should have stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from sandbox.server import SandboxServer
from sync.cli import app
from sync.cli.demo_cmd import write_sandbox_config

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "mappings" / "marketo-salesforce.yaml").read_text(encoding="utf-8")
APIS = ("salesforce", "hubspot", "marketo")

# kind -> (text in the shipped file, its replacement, key path, fragment of the message)
BROKEN: dict[str, tuple[str, str, str, str]] = {
    "unknown_crm_field": (
        "    Priority: Normal\n", "    Priorty: Normal\n",
        "touches.fields.Priorty", "Task has no field 'Priorty' (did you mean 'Priority'?)",
    ),
    "unknown_transform": (
        "        - lower\n", "        - lowercase\n",
        "touches.fields.Type.transforms[0]", "unknown transform (did you mean 'lower'?)",
    ),
    "template_syntax_error": (
        "{{ touch.kind | humanize }}: {{ touch.asset | default('(no asset)') }}",
        "{{ touch.kind | humanize }: {{ touch.asset | default('(no asset)') }}",
        "touches.fields.Subject.template", "template syntax error",
    ),
    "wrong_type": (
        "        max_items: 20\n", "        max_items: twenty\n",
        "touches.kinds.page_view.digest.max_items", "got 'twenty'",
    ),
    "unknown_target": (
        "  target: Task\n", "  target: Tsk\n", "touches.target", "(did you mean 'Task'?)",
    ),
    "missing_key_field": (
        "  key_field: Closedloop_Key__c\n", "", "touches.key_field", "required key is missing",
    ),
    "yaml_syntax_error": (
        "  target: Task\n", "  target: [Task\n", "(top level)", "YAML syntax error",
    ),
    "newer_schema_version": (
        "schema_version: 1\n", "schema_version: 7\n",
        "schema_version", "newer than this closedloop reads",
    ),
    "unknown_top_level_key": (
        "name: marketo-salesforce\n", "name: marketo-salesforce\ncolour: blue\n",
        "colour", "unknown key",
    ),
    "misspelled_touches_key": (
        "  person_field: WhoId\n", "  person_feild: WhoId\n",
        "touches.person_feild", "did you mean 'person_field'?",
    ),
    "picklist_value_misspelled": (
        "    Status: Completed\n", "    Status: Complete\n",
        "touches.fields.Status", "did you mean 'Completed'?",
    ),
    "unknown_template_variable": (
        "{{ touch.asset | default('(unnamed form)') }}",
        "{{ touch.assett | default('(unnamed form)') }}",
        "touches.kinds.form_fill.fields.Subject", "touch has no field 'assett'",
    ),
    "duplicate_key": (
        "    Priority: Normal\n", "    Priority: Normal\n    Priority: High\n",
        "touches.fields.Priority", "duplicate key (first defined at line",
    ),
    "unknown_touch_kind": (
        "    content_download:\n", "    content_downlaod:\n",
        "touches.kinds.content_downlaod", "did you mean 'content_download'?",
    ),
}  # fmt: skip


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def calls(sandbox: SandboxServer) -> dict[tuple[str, str], int]:
    """Calls the sandbox counted, per API and endpoint."""
    return {
        (api, endpoint): count
        for api in APIS
        for endpoint, count in sandbox.state.counts(api).items()
    }


def made_since(before: dict[tuple[str, str], int], sandbox: SandboxServer) -> dict[str, int]:
    """The calls made since ``before``, per API and endpoint."""
    after = calls(sandbox)
    return {
        f"{api} {endpoint}": count - before.get((api, endpoint), 0)
        for (api, endpoint), count in after.items()
        if count != before.get((api, endpoint), 0)
    }


# kind -> text ending on the line the problem is reported at (in the broken file)
REPORTED_AT = {
    "unknown_crm_field": "Priorty:", "unknown_transform": "- lowercase",
    "template_syntax_error": "humanize }:", "wrong_type": "max_items: twenty",
    "unknown_target": "target: Tsk",
    # A missing key is reported where its mapping starts; the parser notices an unclosed [ at
    # the next key.
    "missing_key_field": "target: Task", "yaml_syntax_error": "key_field: Closedloop_Key__c",
    "newer_schema_version": "schema_version: 7", "unknown_top_level_key": "colour: blue",
    "misspelled_touches_key": "person_feild:",
    "picklist_value_misspelled": "\n    Status: Complete",
    "unknown_template_variable": "touch.assett", "duplicate_key": "Priority: High",
    # An unknown kind is reported at its value (the line after the key).
    "unknown_touch_kind": "content_downlaod:\n      fields",
}  # fmt: skip


def broken_text(kind: str) -> tuple[str, int]:
    """The shipped mapping with the mistake of ``kind``, and the line the mistake is on."""
    old, new, _path, _fragment = BROKEN[kind]
    text = SHIPPED.replace(old, new, 1)
    marker = REPORTED_AT[kind]
    return text, text[: text.index(marker) + len(marker)].count("\n") + 1


@pytest.fixture
def folder(tmp_path: Path, sandbox_readonly: SandboxServer) -> Path:
    """A config with a reconcile pipeline, a broken touches pipeline and a good one; the org
    schema already cached by a `config check` of the good mapping."""
    folder = tmp_path / "ws"
    folder.mkdir()
    pipelines: dict[str, dict[str, Any]] = {
        "salesforce-reconcile": {"kind": "reconcile", "source": "salesforce"},
        "marketo-to-salesforce": {
            "kind": "touches", "source": "marketo", "sink": "salesforce",
            "mapping": "mappings/under-test.yaml", "schedule": {"every": "15m"},
        },
        "badges": {
            "kind": "touches", "source": "badge_scans", "sink": "salesforce",
            "mapping": "mappings/files-salesforce.yaml",
        },
    }  # fmt: skip
    (folder / "mappings").mkdir()
    (folder / "mappings" / "under-test.yaml").write_text(SHIPPED, encoding="utf-8")
    ledger = f"sqlite:///{folder / 'ledger.db'}"
    write_sandbox_config(folder, sandbox_readonly, pipelines=pipelines, ledger_url=ledger)
    warm = cli("config", "check", "--config", str(folder / "closedloop.yaml"))
    assert warm.exit_code == 0, warm.output
    return folder


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_config_check_sync_and_backfill_refuse_a_broken_mapping_located_before_any_api_call(
    kind: str, folder: Path, sandbox_readonly: SandboxServer
) -> None:
    config = str(folder / "closedloop.yaml")
    mapping = folder / "mappings" / "under-test.yaml"
    text, line = broken_text(kind)
    mapping.write_text(text, encoding="utf-8")
    _old, _new, key_path, fragment = BROKEN[kind]
    before = calls(sandbox_readonly)

    checked = cli("config", "check", "--config", config)
    synced = cli("sync", "--config", config)
    backfilled = cli("backfill", "--since", "2024-01-01", "--config", config)
    validated = cli("mappings", "validate", str(mapping), "--config", config)

    made = made_since(before, sandbox_readonly)
    if kind == "unknown_target":
        # Whether the org has an object 'Tsk' is a question for the org: one describe, cached.
        assert list(made.values()) == [1], made
        assert "composite" in next(iter(made)), made
    else:
        assert made == {}
    located = [ln for ln in validated.stderr.splitlines() if ln.startswith(f"{mapping}:{line}:")]
    assert located, validated.stderr
    assert f": {key_path}: " in located[0]
    assert fragment in located[0]
    for result in (checked, synced, backfilled):
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        # The very line `mappings validate` prints: the same validator said it.
        assert located[0] in result.stderr.splitlines()
    assert f"{config}: OK" not in checked.stdout
    assert "nothing was synced" in synced.stderr
    assert "nothing was synced" in backfilled.stderr


def test_a_broken_mapping_of_a_dispositions_pipeline_stops_sync_before_other_pipelines_run(
    tmp_path: Path, sandbox_readonly: SandboxServer
) -> None:
    pipelines = {
        "salesforce-reconcile": {"kind": "reconcile", "source": "salesforce"},
        "salesforce-dispositions": {
            "kind": "dispositions", "source": "salesforce", "mapping": "mappings/lifecycle.yaml",
        },
    }  # fmt: skip
    (tmp_path / "mappings").mkdir()
    text, line = broken_text("unknown_top_level_key")
    (tmp_path / "mappings" / "lifecycle.yaml").write_text(text, encoding="utf-8")
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = write_sandbox_config(tmp_path, sandbox_readonly, pipelines=pipelines,
                                  ledger_url=ledger)  # fmt: skip
    before = calls(sandbox_readonly)

    synced = cli("sync", "--config", str(config))

    assert synced.exit_code == 2, synced.output
    assert f"{tmp_path / 'mappings' / 'lifecycle.yaml'}:{line}:1: colour: unknown key" in (
        synced.stderr
    )
    # Not even the schema was read: the file's own problems are found without the CRM.
    assert made_since(before, sandbox_readonly) == {}
    assert "salesforce-reconcile" not in synced.stdout


def test_config_check_validates_a_mapping_only_a_recycle_pipeline_uses(
    tmp_path: Path, sandbox_readonly: SandboxServer
) -> None:
    pipelines = {
        "recycle": {"kind": "recycle", "source": "salesforce", "sink": "marketo",
                    "mapping": "mappings/lifecycle.yaml"},
    }  # fmt: skip
    (tmp_path / "mappings").mkdir()
    text, line = broken_text("template_syntax_error")
    path = tmp_path / "mappings" / "lifecycle.yaml"
    path.write_text(text, encoding="utf-8")
    config = write_sandbox_config(tmp_path, sandbox_readonly, pipelines=pipelines,
                                  ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")  # fmt: skip

    checked = cli("config", "check", "--config", str(config))

    assert checked.exit_code == 2, checked.output
    assert f"{path}:{line}:" in checked.stderr
    assert "template syntax error" in checked.stderr


def test_serve_refuses_to_start_with_a_broken_mapping(
    folder: Path, sandbox_readonly: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[bool] = []

    # Were the check missing, the server would start: note it and return instead of serving.
    def serve_instead(_server: uvicorn.Server, *_args: Any, **_kwargs: Any) -> None:
        served.append(True)

    monkeypatch.setattr(uvicorn.Server, "run", serve_instead)
    mapping = folder / "mappings" / "under-test.yaml"
    text, line = broken_text("unknown_transform")
    mapping.write_text(text, encoding="utf-8")
    before = calls(sandbox_readonly)

    result = cli("serve", "--config", str(folder / "closedloop.yaml"), "--port", "1")

    assert result.exit_code == 2, result.output
    assert served == []
    assert f"{mapping}:{line}:11: touches.fields.Type.transforms[0]: unknown transform" in (
        result.stderr
    )
    assert "closedloop did not start" in result.stderr
    assert made_since(before, sandbox_readonly) == {}
