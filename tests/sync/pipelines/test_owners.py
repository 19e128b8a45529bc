"""Owners of the people closedloop creates (mapping ``people.owner``), through ``closedloop
check`` and ``closedloop sync`` against the sandboxes: Salesforce assignment rules, a fixed User
or queue, a HubSpot owner; unknown owners refused by ``check`` and, as the vendors do, on
create."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from connectors.base import Touch, TouchKind
from sync.cli import app, check_cmd
from sync.ingest import store_touches
from tests.sync.pipelines.conftest import BADGES, SCAN_DAY, Workspace, badge_pipeline

PIPELINE = "lists-to-crm"
NEW = ["new.one@newco-example.com", "new.two@newco-example.com"]


def _touches(emails: list[str]) -> list[Touch]:
    return [
        Touch(
            source=BADGES,
            source_id=f"N{n}",
            kind=TouchKind.EVENT_ATTENDED,
            occurred_at=SCAN_DAY + timedelta(minutes=n),
            email=email,
            campaign="Pipeline Expo",
        )
        for n, email in enumerate(emails)
    ]


def _touch(source_id: str, email: str) -> Touch:
    return Touch(
        source=BADGES,
        source_id=source_id,
        kind=TouchKind.EVENT_ATTENDED,
        occurred_at=SCAN_DAY,
        email=email,
        campaign="Pipeline Expo",
    )


def _cli(app: Any, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def _set_owner(ws: Workspace, mapping: str, owner: dict[str, Any] | None) -> None:
    path = ws.folder / "mappings" / mapping
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if owner is None:
        data["people"].pop("owner", None)
    else:
        data["people"]["owner"] = owner
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture
def sf(workspace_factory: Any, ledger_url: str) -> Workspace:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")
    ws: Workspace = workspace_factory({PIPELINE: badge_pipeline()})
    return ws


def _lead_owner(ws: Workspace, email: str) -> str:
    store = ws.sandbox.store("salesforce")
    with store.lock:
        [row] = [
            r for r in store.records["Lead"].values()
            if str(r.get("Email")).lower() == email and not r.get("IsDeleted")
        ]  # fmt: skip
    return str(row["OwnerId"])


def _check_sf(ws: Workspace) -> Any:
    return _cli(check_cmd.app, "salesforce", "--config", str(ws.config_path))


def test_salesforce_active_assignment_rule_owns_created_leads_and_check_finds_it(
    sf: Workspace,
) -> None:
    ws = sf
    store = ws.sandbox.store("salesforce")
    with store.lock:
        queue = store.add_queue("Inbound Leads")
        store.add_assignment_rule("Inbound routing", queue)
    _set_owner(ws, "files-salesforce.yaml", {"assignment_rule": "active"})

    checked = _check_sf(ws)
    assert checked.exit_code == 0, checked.output
    assert "active rule Inbound routing" in checked.output

    store_touches(ws.engine, _touches(NEW))
    done = _cli(app, "sync", "--config", str(ws.config_path))
    assert done.exit_code == 0, done.output
    assert {_lead_owner(ws, e) for e in NEW} == {queue}


def test_salesforce_named_rule_user_and_queue_own_created_leads(sf: Workspace) -> None:
    ws = sf
    store = ws.sandbox.store("salesforce")
    with store.lock:
        inbound = store.add_queue("Inbound Leads")
        partners = store.add_queue("Partner Leads")
        rep = store.add_user("Rita", "Rep", "rita.rep@example.com")
        store.add_assignment_rule("Inbound routing", inbound)  # the active one
        partner_rule = store.add_assignment_rule("Partner routing", partners, active=False)
    cases = [
        ({"assignment_rule": partner_rule}, partners),  # a named (inactive) rule runs
        ({"user": rep}, rep),  # a fixed owner is not reassigned by the active rule
        ({"queue": partners}, partners),
    ]
    for n, (owner, expected) in enumerate(cases):
        _set_owner(ws, "files-salesforce.yaml", owner)
        email = f"case{n}@newco-example.com"
        checked = _check_sf(ws)
        assert checked.exit_code == 0, checked.output
        store_touches(ws.engine, [_touch(f"C{n}", email)])
        done = _cli(app, "sync", "--config", str(ws.config_path))
        assert done.exit_code == 0, done.output
        assert _lead_owner(ws, email) == expected, owner


def test_salesforce_check_and_create_refuse_owners_the_org_lacks(sf: Workspace) -> None:
    ws = sf
    store = ws.sandbox.store("salesforce")
    with store.lock:
        contacts_only = store.add_queue("Contact queue", objects=("Case",))
        gone = store.add_user("Gone", "Rep", "gone.rep@example.com", active=False)
    _set_owner(ws, "files-salesforce.yaml", {"assignment_rule": "active"})
    checked = _check_sf(ws)
    assert checked.exit_code == 1
    assert "the org has no active Lead assignment rule" in checked.output

    _set_owner(ws, "files-salesforce.yaml", {"queue": contacts_only})
    checked = _check_sf(ws)
    assert checked.exit_code == 1
    assert "lead owner: add Lead to the queue's Supported Objects" in checked.output

    _set_owner(ws, "files-salesforce.yaml", {"user": gone})
    checked = _check_sf(ws)
    assert checked.exit_code == 1
    assert "lead owner: activate the User or name an active one" in checked.output
    # Synced anyway, Salesforce refuses the Lead: a dead letter with its code, no Lead.
    store_touches(ws.engine, _touches(NEW[:1]))
    done = _cli(app, "sync", "--config", str(ws.config_path))
    assert done.exit_code == 0, done.output
    letters = _cli(app, "dead-letters", "list", "--config", str(ws.config_path))
    assert "INACTIVE_OWNER_OR_USER" in letters.output
    with store.lock:
        assert not [r for r in store.records["Lead"].values() if r.get("Email") == NEW[0]]


def test_hubspot_owner_from_the_mapping_owns_created_contacts(
    workspace_factory: Any, ledger_url: str
) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")
    ws: Workspace = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/files-hubspot.yaml", sink="hubspot")}
    )
    hubspot = ws.sandbox.store("hubspot")
    with hubspot.lock:
        owner = hubspot.data.add_owner("Hana Owner", "hana.owner@example.com")
    _set_owner(ws, "files-hubspot.yaml", {"hubspot_owner_id": int(owner)})
    fixed = _cli(check_cmd.app, "hubspot", "--fix", "--config", str(ws.config_path))
    assert fixed.exit_code == 0, fixed.output
    assert f"owner {owner} (Hana Owner)" in fixed.output

    store_touches(ws.engine, _touches(NEW))
    done = _cli(app, "sync", "--config", str(ws.config_path))
    assert done.exit_code == 0, done.output
    with hubspot.lock:
        owners = {
            r.properties.get("email"): r.properties.get("hubspot_owner_id")
            for r in hubspot.data.objects["contacts"].values()
            if r.properties.get("email") in NEW
        }
    assert owners == dict.fromkeys(NEW, owner)

    _set_owner(ws, "files-hubspot.yaml", {"hubspot_owner_id": "99999999"})
    checked = _cli(check_cmd.app, "hubspot", "--config", str(ws.config_path))
    assert checked.exit_code == 1
    assert "owner 99999999" in checked.output
    store_touches(ws.engine, [_touch("N9", "third.one@newco-example.com")])
    done = _cli(app, "sync", "--config", str(ws.config_path))
    assert done.exit_code == 0, done.output
    letters = _cli(app, "dead-letters", "list", "--config", str(ws.config_path))
    assert "INVALID_OWNER_ID" in letters.output
