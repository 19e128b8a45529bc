"""A person the CRM refuses to create: the dead letter carries the CRM's code and message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from connectors.base import Touch, TouchKind
from sandbox.core import parse_faults
from sync.cli import check_cmd
from sync.ingest import store_touches
from sync.ledger import DeadLetterRow
from sync.pipelines import run_pipeline
from tests.sync.pipelines.conftest import (
    BADGES,
    SCAN_DAY,
    badge_pipeline,
    known_emails,
    with_salesforce_settings,
)

PIPELINE = "badges-to-crm"
# Both CRMs want a dot in an address's domain: Salesforce answers INVALID_EMAIL_ADDRESS, HubSpot
# INVALID_EMAIL (docs/vendor-behaviour.md).
BAD = "visitor@localhost"


def _touch(n: int, email: str) -> Touch:
    return Touch(
        source=BADGES,
        source_id=f"B{n}",
        kind=TouchKind.EVENT_ATTENDED,
        occurred_at=SCAN_DAY + timedelta(minutes=n),
        email=email,
        campaign="Pipeline Expo",
    )


def _letters(engine: Any) -> list[Any]:
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


def test_a_lead_salesforce_refuses_to_create_is_dead_lettered_with_invalid_email_address(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    good = known_emails(ws.sandbox, 3)
    store_touches(ws.engine, [*(_touch(n, e) for n, e in enumerate(good)), _touch(9, BAD)])

    summary = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert summary.state == "succeeded", summary.error
    assert summary.count("pushed") == 3
    [letter] = _letters(ws.engine)
    assert (letter.stage, letter.code, letter.record_key) == (
        "resolve",
        "INVALID_EMAIL_ADDRESS",
        f"{BADGES}:B9",
    )
    assert "invalid email address" in letter.reason
    assert BAD in letter.reason
    assert ws.deliveries()[f"{BADGES}:B9"][0] == "dead"


def test_a_contact_hubspot_refuses_to_create_is_dead_lettered_with_invalid_email(
    workspace_factory: Any,
) -> None:
    ws = workspace_factory(
        {PIPELINE: badge_pipeline("mappings/files-hubspot.yaml", sink="hubspot")}
    )
    fixed = CliRunner().invoke(check_cmd.app, ["hubspot", "--fix", "--config", str(ws.config_path)])
    assert fixed.exit_code == 0, fixed.output  # closedloop's own properties, as a user sets up
    good = known_emails(ws.sandbox, 3)
    store_touches(ws.engine, [*(_touch(n, e) for n, e in enumerate(good)), _touch(9, BAD)])

    summary = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert summary.state == "succeeded", summary.error
    assert summary.count("pushed") == 3
    [letter] = _letters(ws.engine)
    assert (letter.stage, letter.code, letter.record_key) == (
        "resolve",
        "INVALID_EMAIL",
        f"{BADGES}:B9",
    )
    assert f"Email address {BAD} is invalid" in letter.reason


def test_a_person_still_row_locked_after_the_retries_stays_pending_and_lands_next_run(
    workspace_factory: Any,
) -> None:
    ws = with_salesforce_settings(
        workspace_factory({PIPELINE: badge_pipeline()}), lock_retries=1, lock_retry_backoff_s=0
    )
    new = "walk-in@locked-expo.example"
    store_touches(ws.engine, [_touch(1, new), _touch(2, new)])
    ws.sandbox.state.faults.configure(parse_faults("salesforce:unable_to_lock_row=1"))

    locked = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert locked.state == "succeeded", locked.error
    assert _letters(ws.engine) == []  # "not now" is never a dead letter
    assert set(ws.deliveries().values()) == {("failed", None)}
    ws.sandbox.state.faults.configure([])

    later = run_pipeline(ws.config, PIPELINE, ws.engine)

    assert later.count("pushed") == 2
    assert _letters(ws.engine) == []
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}
    store = ws.sandbox.store("salesforce")
    with store.lock:
        leads = [r for r in store.records["Lead"].values() if r.get("Email") == new]
    assert len(leads) == 1
