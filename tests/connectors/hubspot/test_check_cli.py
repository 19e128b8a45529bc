"""``closedloop check hubspot [--fix]`` on a closedloop.yaml pointing at the sandbox."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from connectors.sandbox import credentials
from connectors.sandbox.server import SandboxServer
from sync.cli.check_cmd import app


def _app() -> typer.Typer:
    return app


def _config(tmp_path: Path, server: SandboxServer, token: str) -> Path:
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\n"
        "connections:\n"
        "  crm:\n"
        "    type: hubspot\n"
        f"    host: {server.hubspot_url}\n"
        "    auth:\n"
        "      method: private_app\n"
        f"      access_token: {token}\n"
    )
    return path


def test_check_lists_missing_properties_and_fix_creates_them(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, sandbox, credentials.HUBSPOT_TOKEN)
    runner = CliRunner()
    before = runner.invoke(_app(), ["hubspot", "-c", str(config)])
    assert before.exit_code == 1
    assert "closedloop_touch_key" in before.output
    assert "--fix" in before.output
    fixed = runner.invoke(_app(), ["hubspot", "-c", str(config), "--fix"])
    assert fixed.exit_code == 0, fixed.output
    notes = sandbox.store("hubspot").data.properties["notes"]
    assert notes["closedloop_touch_key"]["hasUniqueValue"] is True
    assert notes["closedloop_source"]["hasUniqueValue"] is False
    assert "closedloop_lead_source" in sandbox.store("hubspot").data.properties["contacts"]
    after = runner.invoke(_app(), ["hubspot", "-c", str(config)])
    assert after.exit_code == 0, after.output


def test_a_bad_token_fails_with_a_remedy_and_no_secret(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, sandbox, "pat-na1-this-is-not-valid")
    result = CliRunner().invoke(_app(), ["hubspot", "-c", str(config)])
    assert result.exit_code == 1
    assert "Private Apps" in result.output
    assert "pat-na1-this-is-not-valid" not in result.output
