"""Mappings checked against the connected org's own schema, as a user meets it on the command line.

A custom field the org has (created here the way an admin does, through Salesforce's Tooling API
or HubSpot's properties API) validates, previews and syncs; one the org lacks fails at its
file:line with a did-you-mean from the org's own fields; values that cannot be of a field's type
are refused before anything is pushed. Everything runs against the sandbox as if it were the
org, on a SQLite ledger (the cache itself is tested on both backends in tests/sync).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from simple_salesforce import Salesforce
from typer.testing import CliRunner

from sandbox import credentials
from sandbox.server import SandboxServer
from sync.cli import app
from sync.ledger import DeadLetterRow
from tests.sync.pipelines.conftest import (
    BADGES,
    CAMPAIGN,
    Workspace,
    badge_pipeline,
    badge_rows,
    known_emails,
)

SF_PIPELINE = "badges-to-salesforce"
HS_PIPELINE = "badges-to-hubspot"
SF_MAPPING = "mappings/test-files-salesforce.yaml"
HS_MAPPING = "mappings/test-files-hubspot.yaml"
ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str) -> Any:
    """``closedloop ARGS`` as a user runs it (exceptions kept on the result)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def tooling(sandbox: SandboxServer) -> Salesforce:
    """simple-salesforce on the sandbox org, as an admin's script would use it."""
    session = requests.Session()
    session.verify = str(sandbox.ca_file)
    session.trust_env = False
    return Salesforce(
        instance_url=sandbox.salesforce_url,
        session_id=credentials.SALESFORCE_SESSION_ID,
        session=session,
        version=credentials.SALESFORCE_API_VERSION,
    )


def add_task_field(
    sandbox: SandboxServer, name: str, metadata: dict[str, Any], *, grant: bool = True
) -> None:
    """An admin adds a custom field to Task and Event (Salesforce defines them on Activity) and,
    unless ``grant`` is false, gives the integration user read and edit access to it on Task: a
    field deployed through the API has no field-level security until then."""
    sf = tooling(sandbox)
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={"FullName": f"Activity.{name}", "Metadata": metadata},
    )
    if grant:
        users = sf.query_all("SELECT Id, Username FROM User")["records"]
        [user] = [u["Id"] for u in users if u["Username"] == credentials.SALESFORCE_USERNAME]
        permission_set = sf.PermissionSet.create(
            {"Name": f"Closedloop_{name.removesuffix('__c')}", "Label": f"Closedloop {name}"}
        )["id"]
        sf.PermissionSetAssignment.create({"AssigneeId": user, "PermissionSetId": permission_set})
        sf.FieldPermissions.create(
            {"ParentId": permission_set, "SobjectType": "Task", "Field": f"Task.{name}",
             "PermissionsRead": True, "PermissionsEdit": True}
        )  # fmt: skip
    sf.session.close()


def salesforce_fields(fields: dict[str, Any]) -> Any:
    def edit(mapping: dict[str, Any]) -> None:
        mapping["touches"]["fields"].update(fields)

    return edit


def line_of(path: Path, key: str) -> int:
    """The 1-based line where ``key:`` is written in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, start=1) if text.strip().startswith(f"{key}:"))


def salesforce_workspace(workspace_factory: Any, ledger_url: str, fields: dict[str, Any]) -> Any:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the schema cache on both backends")
    return workspace_factory(
        {SF_PIPELINE: badge_pipeline(SF_MAPPING)}, edit_mapping=salesforce_fields(fields)
    )


def tasks(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    """Live Tasks of the sandbox org by touch key."""
    store = sandbox.store("salesforce")
    with store.lock:
        rows = [r for r in store.records["Task"].values() if not r.get("IsDeleted")]
    return {r["Closedloop_Key__c"]: r for r in rows if r.get("Closedloop_Key__c")}


def calls(sandbox: SandboxServer, api: str) -> int:
    return sandbox.state.total_calls(api)


# --- Salesforce ---------------------------------------------------------------------------


def test_a_custom_task_field_the_org_has_validates_previews_and_syncs(
    workspace_factory: Any, ledger_url: str
) -> None:
    ws = salesforce_workspace(
        workspace_factory, ledger_url, {"Campaign_Name__c": {"source": "touch.campaign"}}
    )
    add_task_field(ws.sandbox, "Campaign_Name__c", {"type": "Text", "length": 255,
                                                    "label": "Campaign Name"})  # fmt: skip
    config, mapping = str(ws.config_path), str(ws.folder / SF_MAPPING)

    validated = cli("mappings", "validate", mapping, "--config", config)
    previewed = cli("mappings", "preview", "--mapping", mapping, "--config", config, "-n", "20")
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 3)))
    synced = cli("sync", "--config", config)

    assert validated.exit_code == 0, validated.output
    assert (
        f"OK {mapping} (checked against the Salesforce org of connection 'salesforce', "
        "schema read just now; `closedloop schema refresh` to re-read)" in validated.stdout
    )
    assert previewed.exit_code == 0, previewed.output
    assert '"Campaign_Name__c":' in previewed.stdout
    assert synced.exit_code == 0, synced.output
    landed = tasks(ws.sandbox)
    assert landed[f"{BADGES}:B0"]["Campaign_Name__c"] == CAMPAIGN
    assert len(landed) == 3


def test_a_field_the_org_lacks_fails_at_its_line_with_a_suggestion_from_the_org(
    workspace_factory: Any, ledger_url: str
) -> None:
    ws = salesforce_workspace(
        workspace_factory, ledger_url, {"Campaign_Nme__c": {"source": "touch.campaign"}}
    )
    add_task_field(ws.sandbox, "Campaign_Name__c", {"type": "Text", "length": 255,
                                                    "label": "Campaign Name"})  # fmt: skip
    path = ws.folder / SF_MAPPING
    before = calls(ws.sandbox, "salesforce")

    result = cli("mappings", "validate", str(path), "--config", str(ws.config_path))
    synced = cli("sync", "--config", str(ws.config_path))

    assert result.exit_code == 2
    line = line_of(path, "Campaign_Nme__c")
    assert f"{path}:{line}:" in result.stderr
    assert (
        "touches.fields.Campaign_Nme__c: Task has no field 'Campaign_Nme__c' "
        "(did you mean 'Campaign_Name__c'?)" in result.stderr
    )
    assert "1 file(s) with errors" in result.stderr
    assert synced.exit_code == 2
    assert "nothing was synced" in synced.stderr
    # One describe for validate (cached for sync's check); no write reached the org.
    assert calls(ws.sandbox, "salesforce") == before + 1
    assert tasks(ws.sandbox) == {}


def test_a_field_the_integration_user_cannot_see_fails_naming_field_level_security(
    workspace_factory: Any, ledger_url: str
) -> None:
    """The admin created the field but granted no one access: Salesforce leaves it out of the
    integration user's describe, so to closedloop it is missing, and the message says why."""
    ws = salesforce_workspace(
        workspace_factory, ledger_url, {"Campaign_Name__c": {"source": "touch.campaign"}}
    )
    metadata = {"type": "Text", "length": 255, "label": "Campaign Name"}
    add_task_field(ws.sandbox, "Campaign_Name__c", metadata, grant=False)
    path = ws.folder / SF_MAPPING

    result = cli("mappings", "validate", str(path), "--config", str(ws.config_path))

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"{path}:{line_of(path, 'Campaign_Name__c')}:" in message
    assert "Task has no field 'Campaign_Name__c'" in message
    assert "the integration user likely lacks field-level security on it" in message
    assert "closedloop schema refresh" in message
    assert tasks(ws.sandbox) == {}


def test_the_schema_is_read_once_refreshed_on_request_and_its_age_shown(
    workspace_factory: Any, ledger_url: str
) -> None:
    ws = salesforce_workspace(workspace_factory, ledger_url, {})
    config, mapping = str(ws.config_path), str(ws.folder / SF_MAPPING)

    first = cli("mappings", "validate", mapping, "--config", config)
    after_first = calls(ws.sandbox, "salesforce")
    second = cli("mappings", "validate", mapping, "--config", config)
    after_second = calls(ws.sandbox, "salesforce")
    refreshed = cli("schema", "refresh", "--config", config, "--connection", "salesforce")
    after_refresh = calls(ws.sandbox, "salesforce")
    shown = cli("schema", "show", "--config", config)

    assert (first.exit_code, second.exit_code, refreshed.exit_code) == (0, 0, 0)
    assert after_first == 1  # Task, Lead, Contact described in one Composite call
    assert after_second == after_first  # the second validation makes no call at all
    assert after_refresh == after_second + 1
    assert "read Contact, Lead, Task from the Salesforce org of connection 'salesforce'" in (
        refreshed.stdout
    )
    assert "schema read just now" in second.stdout
    assert "salesforce: salesforce Task, read just now" in shown.stdout


def test_without_a_reachable_org_or_a_cache_validation_says_what_to_do(
    workspace_factory: Any, ledger_url: str, tmp_path: Path
) -> None:
    ws = salesforce_workspace(workspace_factory, ledger_url, {})
    data = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    data["connections"]["salesforce"]["instance_url"] = "https://127.0.0.1:9"  # nothing listens
    unreachable = ws.folder / "unreachable.yaml"
    unreachable.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    mapping = str(ws.folder / SF_MAPPING)

    failed = cli("mappings", "validate", mapping, "--config", str(unreachable))
    offline = cli("mappings", "validate", mapping, "--offline")

    assert failed.exit_code == 2
    assert (
        f"{mapping}: cannot read the schema of the Salesforce org of connection "
        "'salesforce'" in failed.stderr
    )
    assert "or check against the sandbox's schema instead with --offline" in failed.stderr
    assert offline.exit_code == 0
    assert "(checked offline against the sandbox's schema, not your org's)" in offline.stdout


def test_config_check_and_check_salesforce_report_the_mapping_against_the_org(
    workspace_factory: Any, ledger_url: str
) -> None:
    ws = salesforce_workspace(
        workspace_factory, ledger_url, {"Campaign_Nme__c": {"source": "touch.campaign"}}
    )
    config = str(ws.config_path)

    checked = cli("config", "check", "--config", config)
    live = cli("check", "salesforce", "--config", config)

    assert checked.exit_code == 2
    assert "Task has no field 'Campaign_Nme__c'" in checked.stderr
    assert "CRM fields checked against the Salesforce org of connection 'salesforce'" in (
        checked.stderr
    )
    assert live.exit_code == 1
    assert "mapping test-files-salesforce.yaml" in live.stdout
    assert "Campaign_Nme__c" in live.stdout


# --- value types --------------------------------------------------------------------------


def test_values_that_cannot_be_of_the_field_type_fail_validation_at_their_line(
    workspace_factory: Any, ledger_url: str
) -> None:
    ws = salesforce_workspace(
        workspace_factory,
        ledger_url,
        {
            "ActivityDate": {
                "source": "touch.occurred_at",
                "transforms": [{"datetime": "epoch_ms"}],
            },
            "Booth_Number__c": "A12",
            "Met_In_Person__c": "yes",
        },
    )
    add_task_field(ws.sandbox, "Booth_Number__c", {"type": "Number", "precision": 4, "scale": 0,
                                                   "label": "Booth"})  # fmt: skip
    add_task_field(ws.sandbox, "Met_In_Person__c", {"type": "Checkbox", "label": "Met",
                                                    "defaultValue": "false"})  # fmt: skip
    path = ws.folder / SF_MAPPING

    result = cli("mappings", "validate", str(path), "--config", str(ws.config_path))

    assert result.exit_code == 2
    err = result.stderr
    assert f"{path}:{line_of(path, 'ActivityDate') + 1}:" in err
    assert "ActivityDate.source: touch.occurred_at after its transforms gives values like " in err
    assert "which is not a date: ActivityDate is a date field" in err
    assert f"{path}:{line_of(path, 'Booth_Number__c')}:" in err
    assert "value 'A12' is not a number: Booth_Number__c is a double field" in err
    assert (
        "value 'yes' is not a boolean: Met_In_Person__c is a boolean field (true or false)" in err
    )


def test_a_computed_value_the_field_cannot_take_is_dead_lettered_at_map_not_pushed(
    workspace_factory: Any, ledger_url: str
) -> None:
    ws = salesforce_workspace(
        workspace_factory, ledger_url, {"Booth_Number__c": {"source": "touch.attributes.notes"}}
    )
    add_task_field(ws.sandbox, "Booth_Number__c", {"type": "Number", "precision": 4, "scale": 0,
                                                   "label": "Booth"})  # fmt: skip
    rows = badge_rows(known_emails(ws.sandbox, 3), notes="12")
    rows[1]["notes"] = "A12"
    ws.import_badges(rows)

    synced = cli("sync", "--config", str(ws.config_path))

    assert synced.exit_code == 0, synced.output
    landed = tasks(ws.sandbox)
    assert sorted(landed) == [f"{BADGES}:B0", f"{BADGES}:B2"]
    assert landed[f"{BADGES}:B0"]["Booth_Number__c"] == 12
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        [letter] = conn.execute(table.select()).all()
    assert (letter.stage, letter.code, letter.record_key) == ("map", "MAPPING", f"{BADGES}:B1")
    assert "Booth_Number__c: 'A12' is not a number" in letter.reason


# --- HubSpot ------------------------------------------------------------------------------


def hubspot_workspace(
    workspace_factory: Any, ledger_url: str, tmp_path: Path, prop: str
) -> Workspace:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the schema cache on both backends")
    data = yaml.safe_load((ROOT / "mappings" / "files-hubspot.yaml").read_text(encoding="utf-8"))
    data["touches"]["fields"][prop] = {"source": "touch.campaign"}
    path = tmp_path / "ws" / HS_MAPPING  # the workspace's folder, before its config is loaded
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    pipeline = {"kind": "touches", "source": BADGES, "sink": "hubspot", "mapping": HS_MAPPING}
    ws: Workspace = workspace_factory({HS_PIPELINE: pipeline})
    return ws


def add_note_property(sandbox: SandboxServer, name: str) -> None:
    """A portal admin's custom property on notes, through HubSpot's properties API."""
    response = requests.post(
        f"{sandbox.hubspot_url}/crm/v3/properties/notes",
        json={"name": name, "label": "Booth campaign", "type": "string", "fieldType": "text",
              "groupName": "noteinformation"},
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 201, response.text


def test_a_custom_note_property_the_portal_has_validates_previews_and_syncs(
    workspace_factory: Any, ledger_url: str, tmp_path: Path
) -> None:
    ws = hubspot_workspace(workspace_factory, ledger_url, tmp_path, "booth_campaign")
    add_note_property(ws.sandbox, "booth_campaign")
    config, mapping = str(ws.config_path), str(ws.folder / HS_MAPPING)

    fixed = cli("check", "hubspot", "--config", config, "--fix")
    validated = cli("mappings", "validate", mapping, "--config", config)
    previewed = cli("mappings", "preview", "--mapping", mapping, "--config", config, "-n", "20")
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 2)))
    synced = cli("sync", "--config", config)

    assert fixed.exit_code == 0, fixed.output
    assert "mapping test-files-hubspot.yaml" in fixed.stdout
    assert validated.exit_code == 0, validated.output
    assert "checked against the HubSpot portal of connection 'hubspot'" in validated.stdout
    assert '"booth_campaign":' in previewed.stdout
    assert synced.exit_code == 0, synced.output
    store = ws.sandbox.store("hubspot")
    with store.lock:
        notes = [r.properties for r in store.data.objects["notes"].values()]
    written = [n for n in notes if n.get("closedloop_touch_key", "").startswith(BADGES)]
    assert len(written) == 2
    assert {n["booth_campaign"] for n in written} == {CAMPAIGN}


def test_a_note_property_the_portal_lacks_fails_with_a_suggestion_from_the_portal(
    workspace_factory: Any, ledger_url: str, tmp_path: Path
) -> None:
    ws = hubspot_workspace(workspace_factory, ledger_url, tmp_path, "booth_campain")
    add_note_property(ws.sandbox, "booth_campaign")
    config, path = str(ws.config_path), ws.folder / HS_MAPPING
    cli("check", "hubspot", "--config", config, "--fix")

    result = cli("mappings", "validate", str(path), "--config", config)

    assert result.exit_code == 2
    assert f"{path}:{line_of(path, 'booth_campain')}:" in result.stderr
    assert "note has no field 'booth_campain' (did you mean 'booth_campaign'?)" in result.stderr
