"""Person fields and their sync rules (``people.fields``), end to end through ``closedloop sync``.

A Marketo lead with a name, company, title and phone becomes a Salesforce Lead and a HubSpot
contact with those values. After an admin edits the CRM side and the lead changes in Marketo, the
next sync keeps the admin's value where the rule is ``prefer_crm_unless_blank``, overwrites it
where it is ``always_overwrite``, and settles ``two_way_latest`` fields by whichever side changed
last (Salesforce field history, HubSpot property history).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from connectors.base import Person, PersonKind, PersonUpdate
from connectors.salesforce.connector import SalesforceConnector
from sandbox.marketo import MarketoStore
from sandbox.server import SandboxServer
from sync.cli import app
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import load_config

EMAIL = "mason.white@cedarline.example"
OPEN_EMAIL = 10  # Marketo activity type "Open Email"
PIPELINES = {
    "marketo-to-salesforce": {
        "kind": "touches", "source": "marketo", "sink": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
    "marketo-to-hubspot": {
        "kind": "touches", "source": "marketo", "sink": "hubspot",
        "mapping": "mappings/marketo-hubspot.yaml",
    },
}  # fmt: skip


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def sqlite_only(ledger_url: str) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")


class World:
    """An empty sandbox, a config syncing Marketo to both CRMs, and helpers to act as an admin."""

    def __init__(self, sandbox: SandboxServer, folder: Path, ledger_url: str) -> None:
        self.sandbox = sandbox
        self.marketo: MarketoStore = sandbox.store("marketo")
        self.salesforce = sandbox.store("salesforce")
        self.hubspot = sandbox.store("hubspot").data
        path = write_sandbox_config(folder, sandbox, pipelines=PIPELINES, ledger_url=ledger_url)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["connections"]["marketo"]["bulk_backfill_days"] = None  # REST pages, not a bulk job
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        # The admins chose: the phone always comes from Marketo.
        for name, field in (("marketo-salesforce", "Phone"), ("marketo-hubspot", "phone")):
            mapping = folder / "mappings" / f"{name}.yaml"
            spec = yaml.safe_load(mapping.read_text(encoding="utf-8"))
            spec["people"]["fields"][field]["rule"] = "always_overwrite"
            mapping.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        self.config = path
        # Salesforce keeps Title's history (Setup > Set History Tracking), as the admin set it.
        self.salesforce.history_tracked["Lead"]["Title"] = "Title"
        fixed = _cli("check", "hubspot", "--fix", "--config", str(path))
        assert fixed.exit_code == 0, fixed.output

    def sync(self) -> None:
        result = _cli("sync", "--config", str(self.config))
        assert result.exit_code == 0, result.output

    def lead(self) -> dict[str, Any]:
        with self.salesforce.lock:
            rows = [r for r in self.salesforce.records["Lead"].values() if r.get("Email") == EMAIL]
        assert len(rows) == 1, rows
        return rows[0]

    def contact(self) -> dict[str, str]:
        with self.hubspot.lock:
            rows = [
                r for r in self.hubspot.objects["contacts"].values()
                if r.properties.get("email") == EMAIL
            ]  # fmt: skip
            assert len(rows) == 1
            return dict(rows[0].properties)

    def admin_edits(self, lead: dict[str, Any], contact: dict[str, str]) -> None:
        if lead:
            with self.salesforce.lock:
                self.salesforce.update("Lead", self.lead()["Id"], lead)
        with self.hubspot.lock:
            record_id = next(
                r.id for r in self.hubspot.objects["contacts"].values()
                if r.properties.get("email") == EMAIL
            )  # fmt: skip
            self.hubspot.batch_update(
                "contacts", {"inputs": [{"id": record_id, "properties": contact}]}
            )

    def lead_changes(self, lead_id: int, at: Any, **fields: str) -> None:
        """The lead changes in Marketo (``updatedAt``: ``at``) and does something new."""
        with self.marketo.lock:
            self.marketo.leads[lead_id].update(fields)
            self.marketo.leads[lead_id]["updatedAt"] = at.isoformat().replace("+00:00", "Z")
            self.marketo.add_activity(lead_id, OPEN_EMAIL, primary=(101, "Growth digest"))


@pytest.fixture
def world(sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, ledger_url: str) -> World:
    return World(sandbox_factory(seed=None), tmp_path, ledger_url)


def test_mason_white_becomes_a_lead_and_a_contact_and_the_rules_hold_on_the_next_syncs(
    world: World,
) -> None:
    now = world.marketo.clock.now()
    with world.marketo.lock:
        lead_id = world.marketo.add_lead(
            {
                "email": EMAIL, "firstName": "Mason", "lastName": "White",
                "company": "Cedarline Media", "title": "Head of Growth",
                "phone": "+1 415 555 0100", "country": "United States",
            },
            now - timedelta(days=2),
        )  # fmt: skip
        world.marketo.add_activity(
            lead_id, OPEN_EMAIL, now - timedelta(days=1), primary=(100, "Spring newsletter")
        )

    world.sync()

    lead = world.lead()
    assert (lead["FirstName"], lead["LastName"], lead["Company"], lead["Title"]) == (
        "Mason", "White", "Cedarline Media", "Head of Growth",
    )  # fmt: skip
    assert (lead["Phone"], lead["Country"]) == ("+1 415 555 0100", "United States")
    contact = world.contact()
    assert {k: contact.get(k) for k in ("firstname", "lastname", "company", "jobtitle")} == {
        "firstname": "Mason", "lastname": "White", "company": "Cedarline Media",
        "jobtitle": "Head of Growth",
    }  # fmt: skip

    # The admins correct the company and the title in both CRMs; later that hour Marketo's
    # lead changes too (its own company spelling, a new phone, a title older than the edit).
    world.admin_edits(
        {"Company": "Cedarline Media Group", "Title": "VP Growth"},
        {"company": "Cedarline Media Group", "jobtitle": "VP Growth"},
    )
    edited_at = world.salesforce.clock.now()
    world.lead_changes(
        lead_id, edited_at - timedelta(hours=1),
        company="Cedarline", phone="+1 415 555 0199", title="Growth Lead",
    )  # fmt: skip

    world.sync()

    lead = world.lead()
    assert lead["Company"] == "Cedarline Media Group"  # prefer_crm_unless_blank
    assert lead["Phone"] == "+1 415 555 0199"  # always_overwrite
    assert lead["Title"] == "VP Growth"  # two_way_latest: the admin's edit is newer
    assert lead["FirstName"] == "Mason"
    contact = world.contact()
    assert contact["company"] == "Cedarline Media Group"
    assert contact["phone"] == "+1 415 555 0199"
    assert contact["jobtitle"] == "VP Growth"

    # Reps work the records three hours later (other fields), so each record's last change is
    # after Marketo's next title change at +1 h; the title's own history still dates the admin's
    # edit, so Marketo's title is the newest change of the title and wins.
    with world.salesforce.lock:
        world.salesforce.clock.advance(timedelta(hours=3))
        world.salesforce.update("Lead", world.lead()["Id"], {"Status": "Working - Contacted"})
    world.hubspot.clock.advance(3 * 3600)
    world.admin_edits({}, {"website": "cedarline.example"})
    world.lead_changes(lead_id, edited_at + timedelta(hours=1), title="Chief Growth Officer")

    world.sync()

    assert world.lead()["Title"] == "Chief Growth Officer"
    assert world.lead()["Company"] == "Cedarline Media Group"
    assert world.contact()["jobtitle"] == "Chief Growth Officer"


def _last_counts(world: World, pipeline: str) -> dict[str, int]:
    shown = _cli("runs", "--format", "json", "--config", str(world.config))
    assert shown.exit_code == 0, shown.output
    runs = [r for r in json.loads(shown.output) if r["pipeline"] == pipeline]
    return dict(runs[0]["counts"])


def test_a_person_is_read_again_only_when_the_source_person_changed(world: World) -> None:
    now = world.marketo.clock.now()
    with world.marketo.lock:
        lead_id = world.marketo.add_lead(
            {"email": EMAIL, "lastName": "White", "company": "Cedarline Media"},
            now - timedelta(days=2),
        )
        world.marketo.add_activity(lead_id, OPEN_EMAIL, now - timedelta(days=1))
    world.sync()  # creates the Lead with its fields
    with world.marketo.lock:
        world.marketo.add_activity(lead_id, OPEN_EMAIL, primary=(102, "Webinar invite"))

    world.sync()

    counts = _last_counts(world, "marketo-to-salesforce")
    assert counts.get("pushed") == 1
    assert "people_checked" not in counts  # settled on create; nothing changed since

    world.lead_changes(lead_id, now, title="Head of Growth")
    world.sync()

    counts = _last_counts(world, "marketo-to-salesforce")
    assert (counts.get("people_checked"), counts.get("people_updated")) == (1, 1)
    assert world.lead()["Title"] == "Head of Growth"


def test_a_dry_run_counts_the_field_updates_and_writes_none(
    world: World, sqlite_only: None
) -> None:
    now = world.marketo.clock.now()
    with world.marketo.lock:
        lead_id = world.marketo.add_lead(
            {"email": EMAIL, "lastName": "White", "company": "Cedarline Media",
             "phone": "+1 415 555 0100"},
            now - timedelta(days=2),
        )  # fmt: skip
        world.marketo.add_activity(lead_id, OPEN_EMAIL, now - timedelta(days=1))
    world.salesforce.history_tracked["Lead"].pop("Title")
    world.sync()
    world.lead_changes(lead_id, now, phone="+1 415 555 0199")

    dry = _cli("sync", "--dry-run", "--config", str(world.config))

    assert dry.exit_code == 0, dry.output
    assert "people updated 1" in dry.output
    assert world.lead()["Phone"] == "+1 415 555 0100"
    assert world.contact()["phone"] == "+1 415 555 0100"


def test_updating_n_people_costs_one_salesforce_call_per_1000(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(seed=None)
    store = sandbox.store("salesforce")
    with store.lock:
        ids = [
            store.create("Lead", {"LastName": f"Buyer {n}", "Company": "Acme",
                                  "Email": f"buyer{n}@acme.example"})
            for n in range(1201)
        ]  # fmt: skip
    config = load_config(write_sandbox_config(tmp_path, sandbox, pipelines={}))
    settings = config.connections["salesforce"].settings
    crm = SalesforceConnector("salesforce", settings)  # type: ignore[arg-type]
    crm.describe_fields(["Lead"])  # the connector describes once; not what is measured
    updates = [
        PersonUpdate(
            Person("salesforce", lead, PersonKind.LEAD, f"buyer{n}@acme.example"),
            {"Title": f"Buyer number {n}"},
        )
        for n, lead in enumerate(ids)
    ]
    crm.update_people(updates[:1])  # the Lead and Contact describe, read once per connector
    sandbox.state.reset_counters()

    refused = crm.update_people(updates)

    assert refused == []
    calls = sandbox.state.counts("salesforce")
    assert calls == {"composite": math.ceil(len(updates) / 1000)}
    assert calls["composite"] <= math.ceil(len(updates) / 200)
    with store.lock:
        titles = {store.records["Lead"][i]["Title"] for i in ids}
    assert titles == {f"Buyer number {n}" for n in range(1201)}
    crm.close()


def test_salesforce_refuses_a_lead_without_company_or_last_name(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(seed=None)
    store = sandbox.store("salesforce")
    with store.lock:
        lead = store.create("Lead", {"LastName": "White", "Company": "Cedarline Media"})
    config = load_config(write_sandbox_config(tmp_path, sandbox, pipelines={}))
    crm = SalesforceConnector("salesforce", config.connections["salesforce"].settings)  # type: ignore[arg-type]
    person = Person("salesforce", lead, PersonKind.LEAD, EMAIL)

    refused = crm.update_people([PersonUpdate(person, {"Company": None, "LastName": ""})])

    assert [r.code for r in refused] == ["REQUIRED_FIELD_MISSING"]
    crm.close()


def test_a_contact_is_read_and_updated_without_the_lead_only_company(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(seed=None)
    store = sandbox.store("salesforce")
    with store.lock:
        account = store.create("Account", {"Name": "Cedarline Media"})
        contact = store.create(
            "Contact", {"LastName": "White", "AccountId": account, "Email": EMAIL}
        )
    config = load_config(write_sandbox_config(tmp_path, sandbox, pipelines={}))
    crm = SalesforceConnector("salesforce", config.connections["salesforce"].settings)  # type: ignore[arg-type]
    person = Person("salesforce", contact, PersonKind.CONTACT, EMAIL)

    read = crm.read_person_fields([person], ["Company", "Title", "Phone"], ["Title"])
    refused = crm.update_people([PersonUpdate(person, {"Title": "Head of Growth"})])

    assert read[contact].values == {"Title": None, "Phone": None}
    assert read[contact].changed_at == {}  # no ContactHistory in this org: LastModifiedDate
    assert read[contact].updated_at is not None
    assert refused == []
    with store.lock:
        assert store.records["Contact"][contact]["Title"] == "Head of Growth"
    crm.close()
