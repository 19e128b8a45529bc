"""Whose touches count for a deal (``attribution.scope``), through the commands, against the
sandbox's Salesforce and HubSpot.

The reconcile pipelines pull the demo world's accounts, people, deals and contact roles (a
Salesforce OpportunityContactRole with ``IsPrimary``; a HubSpot deal-contact association, which
has no primary flag). For one won deal of each CRM the test picks ``p`` (its first contact
role, the primary one on Salesforce), ``s`` (another contact role) and ``x`` (a contact of the
deal's account with no role) and logs these form fills (C = the close day, UTC):

==  ======  ====================================================================
t1  p       C - 10 days
t2  s       C - 5 days
t3  x       C - 3 days
t4  s       C 23:30 (later on the close day than HubSpot's closedate time too)
t5  p       C + 1 day 00:00 (after the close day: never counts)
==  ======  ====================================================================

Linear model, hand-computed: ``contact_roles`` counts t1, t2, t4 (a third of the amount each);
``primary_contact_role`` counts t1 alone on Salesforce (all of it) and nothing on HubSpot
(unattributed: no primary association); ``account`` counts t1 to t4 (a quarter each).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from sandbox.server import SandboxServer
from sync.cli import app
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import load_config
from sync.ledger import ledger_session, open_ledger
from sync.ledger.models import (
    AttributionCreditRow,
    AttributionRunRow,
    ContactRoleRow,
    OpportunityRow,
    PersonRow,
    TouchRow,
)
from sync.pipelines.runner import run_pipeline

RECONCILE = {
    "salesforce-reconcile": {"kind": "reconcile", "source": "salesforce"},
    "hubspot-reconcile": {"kind": "reconcile", "source": "hubspot"},
}


@dataclass
class Deal:
    crm: str
    id: str
    amount: Decimal
    close_day: datetime  # 00:00 UTC of the close date
    emails: tuple[str, str, str]  # p, s, x


@dataclass
class World:
    path: Path
    engine: Engine
    deals: dict[str, Deal]


def _pick(engine: Engine, crm: str) -> Deal:
    """A won deal with two contact roles (the first primary on Salesforce) and a contact of its
    account without a role."""
    with ledger_session(engine) as session:
        people = {
            p.external_id: p
            for p in session.exec(select(PersonRow).where(PersonRow.crm == crm)).all()
        }
        roles: dict[str, list[ContactRoleRow]] = {}
        for role in session.exec(select(ContactRoleRow).where(ContactRoleRow.crm == crm)).all():
            roles.setdefault(role.opportunity_external_id, []).append(role)
        won = session.exec(
            select(OpportunityRow)
            .where(OpportunityRow.crm == crm, col(OpportunityRow.is_won).is_(True))
            .order_by(OpportunityRow.external_id)
        ).all()
        for opp in won:
            on = sorted(roles.get(opp.external_id, []), key=lambda r: not r.is_primary)
            if len(on) != 2 or opp.close_date is None or not opp.amount:
                continue
            if (crm == "salesforce") != on[0].is_primary or on[1].is_primary:
                continue
            p, s = (people.get(r.person_external_id) for r in on)
            others = sorted(
                (
                    q
                    for q in people.values()
                    if q.account_external_id == opp.account_external_id
                    and q.kind == "contact"
                    and not q.deleted
                    and q.email
                    and q.external_id not in {r.person_external_id for r in on}
                ),
                key=lambda q: q.external_id,
            )
            if p is None or s is None or not p.email or not s.email or not others:
                continue
            x = others[0]
            emails = {p.email, s.email, x.email}
            if len(emails) != 3:
                continue
            day = datetime.combine(opp.close_date.astimezone(UTC).date(), time(), tzinfo=UTC)
            return Deal(crm, opp.external_id, Decimal(opp.amount), day, (p.email, s.email, x.email))
    raise AssertionError(f"the demo world has no won {crm} deal to test scopes on")


def _log_touches(engine: Engine, deal: Deal) -> None:
    """t1..t5 of the module docstring (the CRMs share people's addresses: one CRM at a time)."""
    p, s, x = deal.emails
    day = deal.close_day
    plan = [
        ("t1", p, day - timedelta(days=10)),
        ("t2", s, day - timedelta(days=5)),
        ("t3", x, day - timedelta(days=3)),
        ("t4", s, day + timedelta(hours=23, minutes=30)),
        ("t5", p, day + timedelta(days=1)),
    ]
    with ledger_session(engine) as session:
        for key, email, at in plan:
            session.add(
                TouchRow(
                    key=f"{deal.crm}:{key}",
                    source="test",
                    source_id=f"{deal.crm}:{key}",
                    kind="form_fill",
                    occurred_at=at,
                    email=email,
                    campaign=f"Scope {key}",
                )
            )


@pytest.fixture
def world(tmp_path: Path, sandbox: SandboxServer) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    path = write_sandbox_config(tmp_path, sandbox, pipelines=RECONCILE, ledger_url=url)
    config = load_config(path)
    engine = open_ledger(url)
    try:
        for name in RECONCILE:
            assert run_pipeline(config, name, engine).ok
        deals = {crm: _pick(engine, crm) for crm in ("salesforce", "hubspot")}
        yield World(path, engine, deals)
    finally:
        engine.dispose()


def _set_scope(path: Path, scope: str | None) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    section = data.setdefault("attribution", {}) or {}
    if scope is None:
        section.pop("scope", None)
    else:
        section["scope"] = scope
    data["attribution"] = section
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _run(world: World, crm: str) -> str:
    result = CliRunner().invoke(
        app,
        ["attribution", "run", "--model", "linear", "--crm", crm, "--config", str(world.path)],
    )
    assert result.exit_code == 0, result.output
    return result.output


def _credits(world: World, deal: Deal) -> dict[str, Decimal]:
    """Touch key -> credited amount of ``deal`` in the newest run of its CRM."""
    with ledger_session(world.engine) as session:
        run = session.exec(
            select(AttributionRunRow)
            .where(AttributionRunRow.crm == deal.crm)
            .order_by(col(AttributionRunRow.id).desc())
        ).first()
        assert run is not None
        rows = session.exec(
            select(AttributionCreditRow).where(
                AttributionCreditRow.run_id == run.id,
                AttributionCreditRow.opportunity_external_id == deal.id,
            )
        ).all()
    return {r.touch_key.split(":", 1)[1]: Decimal(r.amount) for r in rows}


def _split(amount: Decimal, keys: list[str]) -> dict[str, Decimal]:
    """Equal shares to the cent; leftover cents to the earliest touches (largest remainder)."""
    cents = int(amount * 100)
    base, extra = divmod(cents, len(keys))
    return {k: Decimal(base + (1 if n < extra else 0)) / 100 for n, k in enumerate(keys)}


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_each_scope_credits_the_hand_computed_touches(world: World, crm: str) -> None:
    deal = world.deals[crm]
    _log_touches(world.engine, deal)

    out = _run(world, crm)  # no scope configured: contact roles
    assert "scope contact_roles" in out
    assert _credits(world, deal) == _split(deal.amount, ["t1", "t2", "t4"])

    _set_scope(world.path, "primary_contact_role")
    out = _run(world, crm)
    # The scope is part of the fingerprint: the change stores a new run.
    assert "stored as run" in out
    assert "scope primary_contact_role" in out
    expected = {"t1": deal.amount} if crm == "salesforce" else {}
    assert _credits(world, deal) == expected

    _set_scope(world.path, "account")
    assert "stored as run" in _run(world, crm)
    assert _credits(world, deal) == _split(deal.amount, ["t1", "t2", "t3", "t4"])
    assert "unchanged, same as run" in _run(world, crm)

    shown = CliRunner().invoke(
        app, ["attribution", "show", "--crm", crm, "--config", str(world.path)]
    )
    assert shown.exit_code == 0, shown.output
    assert "scope account" in " ".join(shown.output.split())


def test_the_report_shows_the_scope_and_credits_the_close_day(world: World, tmp_path: Path) -> None:
    _set_scope(world.path, "primary_contact_role")
    deal = world.deals["salesforce"]
    _log_touches(world.engine, deal)
    period = f"{deal.close_day:%Y-%m-%d}..{deal.close_day + timedelta(days=1):%Y-%m-%d}"
    out = tmp_path / "report.json"
    args = ["report", "--config", str(world.path), "--period", period, "--format", "json"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["attribution_scope"] == "primary_contact_role"

    html = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--config", str(world.path), "--period", period, "--out", str(html)]
    )
    assert result.exit_code == 0, result.output
    assert "the deal&#39;s primary contact role only" in html.read_text(encoding="utf-8")

    _set_scope(world.path, "everyone")
    result = CliRunner().invoke(app, ["config", "check", "--config", str(world.path)])
    assert result.exit_code != 0
    assert "scope" in result.output
