"""``closedloop check hubspot [--fix]`` on a closedloop.yaml pointing at the sandbox."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from sandbox import credentials
from sandbox.server import SandboxServer
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
    # A plain searchable text property: HubSpot allows no unique values on activities.
    notes = sandbox.store("hubspot").data.properties["notes"]
    assert notes["closedloop_touch_key"]["type"] == "string"
    assert notes["closedloop_touch_key"]["hasUniqueValue"] is False
    assert notes["closedloop_source"]["hasUniqueValue"] is False
    assert "closedloop_lead_source" in sandbox.store("hubspot").data.properties["contacts"]
    after = runner.invoke(_app(), ["hubspot", "-c", str(config)])
    assert after.exit_code == 0, after.output


def test_fix_creates_the_reason_properties_the_shipped_hubspot_mapping_names(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    contacts = sandbox.store("hubspot").data.properties["contacts"]
    reasons = ("closedloop_disqualified_reason", "closedloop_recycle_reason")
    for name in reasons:  # a portal where closedloop was never set up
        contacts.pop(name, None)
    config = _config(tmp_path, sandbox, credentials.HUBSPOT_TOKEN)
    runner = CliRunner()

    before = runner.invoke(_app(), ["hubspot", "-c", str(config)])
    fixed = runner.invoke(_app(), ["hubspot", "-c", str(config), "--fix"])

    assert before.exit_code == 1
    assert all(name in before.output for name in reasons)
    assert fixed.exit_code == 0, fixed.output
    assert {(n, contacts[n]["type"], contacts[n]["fieldType"]) for n in reasons} == {
        (n, "string", "text") for n in reasons
    }


def test_a_bad_token_fails_with_a_remedy_and_no_secret(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, sandbox, "pat-na1-this-is-not-valid")
    result = CliRunner().invoke(_app(), ["hubspot", "-c", str(config)])
    assert result.exit_code == 1
    assert "Private Apps" in result.output
    assert "pat-na1-this-is-not-valid" not in result.output


def test_check_says_timeline_events_need_the_public_apps_oauth(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    mapping = (Path(__file__).parents[3] / "mappings" / "files-hubspot.yaml").read_text("utf-8")
    mapping = mapping.replace(
        "filters:\n",
        "  kinds:\n"
        "    event_attended:\n"
        "      target: timeline_event\n"
        "      event: {template_id: 1001298}\n"
        "      fields: {booth: '{{ touch.campaign }}'}\n"
        "filters:\n",
        1,
    )
    (tmp_path / "events.yaml").write_text(mapping, encoding="utf-8")
    config = _config(tmp_path, sandbox, credentials.HUBSPOT_TOKEN)
    config.write_text(
        config.read_text() + "  scans:\n"
        "    type: files\n"
        "    columns: {email: Email, occurred_at: Scanned, source_id: Badge}\n"
        "    kind: event_attended\n"
        "pipelines:\n"
        "  scans-to-crm: {kind: touches, source: scans, sink: crm, mapping: events.yaml}\n"
    )
    result = CliRunner().invoke(_app(), ["hubspot", "-c", str(config), "--fix"])
    assert result.exit_code == 1
    assert "hubspot.timeline_events" in result.output
    assert "1001298" in result.output
    assert "private app token" in result.output
    assert "oauth" in result.output
