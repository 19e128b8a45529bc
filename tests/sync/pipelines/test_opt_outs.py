"""Unsubscribes as CRM opt-outs (mapping ``opt_out``), through ``closedloop sync`` against the
sandboxes: set once, never cleared, recorded in the ledger so a replay writes nothing again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from typer.testing import CliRunner

from connectors.base import Touch, TouchKind
from sync.cli import app, check_cmd
from sync.ingest import store_touches
from sync.ledger import DeliveryRow
from sync.ledger.models import OptOutRow
from tests.sync.pipelines.conftest import (
    BADGES,
    SCAN_DAY,
    Workspace,
    badge_pipeline,
    with_salesforce_settings,
)

PIPELINE = "lists-to-crm"


def _touch(n: int, email: str, kind: TouchKind, minutes: int = 0) -> Touch:
    return Touch(
        source=BADGES,
        source_id=f"T{n}",
        kind=kind,
        occurred_at=SCAN_DAY + timedelta(minutes=n + minutes),
        email=email,
        campaign="Newsletter",
    )


def _sync(ws: Workspace) -> Any:
    done = CliRunner().invoke(app, ["sync", "--config", str(ws.config_path)])
    assert done.exit_code == 0, done.output
    return done


def _runs(ws: Workspace) -> str:
    listed = CliRunner().invoke(app, ["runs", "--config", str(ws.config_path)])
    assert listed.exit_code == 0, listed.output
    return str(listed.output)


def _ledger(ws: Workspace) -> dict[str, bool]:
    table = OptOutRow.__table__  # type: ignore[attr-defined]
    with ws.engine.connect() as conn:
        return {r.email: r.changed for r in conn.execute(select(table)).all()}


def _replay_all(ws: Workspace) -> None:
    """As after a crash between the intents and the confirmations: every delivery intended."""
    table = DeliveryRow.__table__  # type: ignore[attr-defined]
    with ws.engine.begin() as conn:
        conn.execute(update(table).values(state="intended", crm_id=None))


def _people(ws: Workspace, kind: str, count: int) -> list[str]:
    world = ws.sandbox.world
    assert world is not None
    return [
        p.email for p in world.people if p.crm_kind == kind and p.email and p.duplicate_of is None
    ][:count]


@pytest.fixture
def sf(workspace_factory: Any) -> Workspace:
    """A files -> Salesforce workspace with ``opt_out`` on (SQLite and PostgreSQL ledgers: the
    ``opt_out`` table's insert-or-ignore is dialect-specific)."""

    def opt_out(mapping: dict[str, Any]) -> None:
        mapping["opt_out"] = {"enabled": True}

    ws: Workspace = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/test-files-salesforce.yaml")}, edit_mapping=opt_out
    )
    return ws


def _sf_person(ws: Workspace, email: str) -> dict[str, Any]:
    store = ws.sandbox.store("salesforce")
    with store.lock:
        for sobject in ("Contact", "Lead"):
            for row in store.records[sobject].values():
                if str(row.get("Email")).lower() == email.lower() and not row.get("IsDeleted"):
                    if sobject == "Lead" and row.get("IsConverted"):
                        continue
                    return {"sobject": sobject, **row}
    raise AssertionError(f"no person {email}")


def test_salesforce_unsubscribes_opt_leads_and_contacts_out_once_and_never_back_in(
    sf: Workspace,
) -> None:
    ws = sf
    lead, other_lead = _people(ws, "lead", 2)
    [contact] = _people(ws, "contact", 1)
    already, browser = _people(ws, "lead", 4)[2:]
    store = ws.sandbox.store("salesforce")
    with store.lock:
        row = _sf_person(ws, already)
        store.update(row["sobject"], row["Id"], {"HasOptedOutOfEmail": True}, system=True)
    stamp_before = _sf_person(ws, already)["LastModifiedDate"]
    unsubscribe = TouchKind.EMAIL_UNSUBSCRIBE
    store_touches(ws.engine, [
        _touch(0, lead, unsubscribe), _touch(1, contact, unsubscribe),
        _touch(2, already, unsubscribe), _touch(3, browser, TouchKind.EVENT_ATTENDED),
        _touch(4, lead, unsubscribe),  # a second unsubscribe of the same person
    ])  # fmt: skip

    _sync(ws)

    assert _sf_person(ws, lead)["HasOptedOutOfEmail"] is True
    assert _sf_person(ws, contact)["sobject"] == "Contact"
    assert _sf_person(ws, contact)["HasOptedOutOfEmail"] is True
    assert _sf_person(ws, browser)["HasOptedOutOfEmail"] is False
    assert _sf_person(ws, other_lead)["HasOptedOutOfEmail"] is False
    # Already opted out in Salesforce: left alone (no write), recorded as found.
    assert _sf_person(ws, already)["LastModifiedDate"] == stamp_before
    assert _ledger(ws) == {lead.lower(): True, contact.lower(): True, already.lower(): False}
    assert "opted_out 2" in _runs(ws)

    # A replay (a crash before the confirmations) writes nothing again: the ledger knows. An
    # admin who cleared the flag by hand in the meantime is not overruled by the replay.
    with store.lock:
        row = _sf_person(ws, lead)
        store.update(row["sobject"], row["Id"], {"HasOptedOutOfEmail": False}, system=True)
    _replay_all(ws)
    _sync(ws)
    assert _sf_person(ws, lead)["HasOptedOutOfEmail"] is False
    assert ws.tasks_by_key() == {} or max(ws.tasks_by_key().values()) == 1

    # A later touch that is no unsubscribe changes nothing: the contact stays opted out.
    store_touches(ws.engine, [_touch(10, contact, TouchKind.EVENT_ATTENDED, minutes=60)])
    _sync(ws)
    assert _sf_person(ws, contact)["HasOptedOutOfEmail"] is True
    assert len(_ledger(ws)) == 3


def test_salesforce_opt_out_update_keeps_the_owner_under_an_active_assignment_rule(
    sf: Workspace,
) -> None:
    ws = sf
    [lead] = _people(ws, "lead", 1)
    store = ws.sandbox.store("salesforce")
    with store.lock:
        queue = store.add_queue("Inbound Leads")
        store.add_assignment_rule("Route everything", queue)
    owner = _sf_person(ws, lead)["OwnerId"]
    store_touches(ws.engine, [_touch(0, lead, TouchKind.EMAIL_UNSUBSCRIBE)])

    _sync(ws)

    person = _sf_person(ws, lead)
    assert person["HasOptedOutOfEmail"] is True
    assert person["OwnerId"] == owner, "the opt-out must not run the assignment rule"


@pytest.fixture
def hs(workspace_factory: Any, ledger_url: str) -> Any:
    """A files -> HubSpot workspace whose mapping has ``opt_out.subscription`` as given."""
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the pipelines on both backends")

    def make(subscription: str) -> Workspace:
        ws: Workspace = workspace_factory(
            {PIPELINE: badge_pipeline("mappings/files-hubspot.yaml", sink="hubspot")}
        )
        path = ws.folder / "mappings" / "files-hubspot.yaml"  # the workspace's own copy
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["opt_out"] = {"subscription": subscription}
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        fixed = CliRunner().invoke(
            check_cmd.app, ["hubspot", "--fix", "--config", str(ws.config_path)]
        )
        assert fixed.exit_code == 0, fixed.output  # closedloop's own properties
        return ws

    return make


def test_hubspot_unsubscribes_opt_out_of_all_email_once_in_one_batch(hs: Any) -> None:
    ws: Workspace = hs("all")
    first, second, already, browser = _people(ws, "contact", 4)
    subs = ws.sandbox.store("hubspot").data.subscriptions
    with ws.sandbox.store("hubspot").lock:
        subs.v4_unsubscribe_all({"inputs": [already]})
        before = subs.wide[already.lower()]
    unsubscribe = TouchKind.EMAIL_UNSUBSCRIBE
    store_touches(ws.engine, [
        _touch(0, first, unsubscribe), _touch(1, second, unsubscribe),
        _touch(2, already, unsubscribe), _touch(3, browser, TouchKind.EVENT_ATTENDED),
    ])  # fmt: skip

    _sync(ws)

    assert subs.opted_out_of_all(first)
    assert subs.opted_out_of_all(second)
    assert not subs.opted_out_of_all(browser)
    assert subs.wide[already.lower()] == before, "already out: no second write"
    assert _ledger(ws) == {first.lower(): True, second.lower(): True, already.lower(): False}
    calls = ws.sandbox.state.counts("hubspot")
    assert calls["subscriptions.v4_unsubscribe_all"] == 1, "one batch for both"
    assert calls.get("subscriptions.v3_subscribe", 0) == 0

    _replay_all(ws)
    _sync(ws)
    assert ws.sandbox.state.counts("hubspot")["subscriptions.v4_unsubscribe_all"] == 1


def test_hubspot_unsubscribes_from_one_subscription_type(hs: Any) -> None:
    ws: Workspace = hs("1001")
    [person, bystander] = _people(ws, "contact", 2)
    subs = ws.sandbox.store("hubspot").data.subscriptions
    store_touches(ws.engine, [_touch(0, person, TouchKind.EMAIL_UNSUBSCRIBE)])

    _sync(ws)

    assert subs.status_of(person, 1001) == "UNSUBSCRIBED"
    assert subs.status_of(person, 1002) == "NOT_SPECIFIED"
    assert not subs.opted_out_of_all(person)
    assert subs.status_of(bystander, 1001) == "NOT_SPECIFIED"
    checked = CliRunner().invoke(check_cmd.app, ["hubspot", "--config", str(ws.config_path)])
    assert checked.exit_code == 0, checked.output
    assert "subscription 1001 (Marketing Information)" in checked.output


def test_a_salesforce_opt_out_refused_for_a_record_lock_is_a_dead_letter_replay_applies(
    sf: Workspace,
) -> None:
    ws = with_salesforce_settings(sf, lock_retries=1, lock_retry_backoff_s=0)
    [lead] = _people(ws, "lead", 1)
    store = ws.sandbox.store("salesforce")
    store.hold_locks([_sf_person(ws, lead)["Id"]])  # a rep's long save holds the Lead
    store_touches(ws.engine, [_touch(0, lead, TouchKind.EMAIL_UNSUBSCRIBE)])

    _sync(ws)

    assert _sf_person(ws, lead)["HasOptedOutOfEmail"] is False
    assert _ledger(ws) == {}
    letters = CliRunner().invoke(app, ["dead-letters", "list", "--config", str(ws.config_path)])
    assert "UNABLE_TO_LOCK_ROW" in letters.output
    assert "opted_out" not in _runs(ws)

    store.release_locks()
    replayed = CliRunner().invoke(
        app, ["dead-letters", "replay", "--all", "--config", str(ws.config_path)]
    )
    assert replayed.exit_code == 0, replayed.output
    assert _sf_person(ws, lead)["HasOptedOutOfEmail"] is True
    assert _ledger(ws) == {lead.lower(): True}


def test_salesforce_opt_outs_of_hundreds_of_leads_and_contacts_take_two_calls(
    sf: Workspace,
) -> None:
    ws = sf
    people = _people(ws, "lead", 300) + _people(ws, "contact", 300)
    assert len(people) > 300  # more than one collection of 200, Leads and Contacts
    path = ws.folder / "mappings" / "test-files-salesforce.yaml"
    mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    mapping["opt_out"]["enabled"] = False
    path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    unsubscribe = TouchKind.EMAIL_UNSUBSCRIBE
    store_touches(ws.engine, [_touch(n, e, unsubscribe) for n, e in enumerate(people)])
    _sync(ws)  # the people are now known to the ledger; nobody is opted out (switched off)
    assert _ledger(ws) == {}

    mapping["opt_out"]["enabled"] = True
    path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    store_touches(ws.engine, [_touch(n + 1000, e, unsubscribe) for n, e in enumerate(people)])
    before = ws.sandbox.state.total_calls("salesforce")
    _sync(ws)
    calls = ws.sandbox.state.total_calls("salesforce") - before

    assert len(_ledger(ws)) == len(people)
    assert all(_sf_person(ws, e)["HasOptedOutOfEmail"] for e in people[::50])
    # One Composite call reads the flags (Id IN per object), one writes them (collections of
    # 200, five to a call); the rest of the run (login, schema, limits) is the same as without.
    assert calls <= 2 + _calls_of_an_empty_run(ws)


def _calls_of_an_empty_run(ws: Workspace) -> int:
    before = ws.sandbox.state.total_calls("salesforce")
    _sync(ws)
    return ws.sandbox.state.total_calls("salesforce") - before
