"""Attribution over the ledger on SQLite and PostgreSQL: stored, versioned, reproducible runs."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from sync.attribution import AttributionParams, PositionWeights
from sync.attribution.ledger import (
    fingerprint,
    input_state,
    load_dataset,
    run_attribution,
    summarize,
)
from sync.cli.attribution_cmd import app
from sync.ledger import ledger_session, open_ledger
from sync.ledger.models import (
    AccountRow,
    AttributionCreditRow,
    AttributionRunRow,
    CampaignRow,
    ContactRoleRow,
    OpportunityRow,
    PersonRow,
    TouchRow,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
CUSTOM = AttributionParams(
    custom=PositionWeights.from_percent(first_touch=50, closed_won=50),
)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def _touch(n: int, email: str, at: datetime, campaign: str, kind: str = "form_fill") -> TouchRow:
    return TouchRow(
        key=f"mkto:{n}",
        source="mkto",
        source_id=str(n),
        kind=kind,
        occurred_at=at,
        email=email,
        campaign=campaign,
    )


def seed_ledger(engine: Engine) -> None:
    """Ann (contact, formerly ann@old.example) and Bob (a lead matched to nothing) at Acme."""
    with ledger_session(engine) as session:
        session.add(AccountRow(crm="sf", external_id="acme", name="Acme", domain="acme.example"))
        session.add_all(
            [
                CampaignRow(crm="sf", external_id="webinar", name="Webinar", channel="webinar"),
                CampaignRow(crm="sf", external_id="ebook", name="Ebook", channel="content"),
            ]
        )
        session.add(
            PersonRow(
                crm="sf", external_id="ann", kind="contact", email="ann@old.example",
                account_external_id="acme", created_at=day(1),
            )
        )  # fmt: skip
        session.add_all(
            [
                _touch(1, "ann@old.example", day(1), "ebook"),
                _touch(2, "ann@acme.example", day(5), "webinar", "webinar_attended"),
                _touch(3, "ann@acme.example", day(9), "webinar", "email_sent"),
                _touch(4, "nobody@nowhere.example", day(6), "webinar"),
            ]
        )
        session.add(
            OpportunityRow(
                crm="sf", external_id="opp1", name="Acme deal", account_external_id="acme",
                stage="Closed Won", amount=Decimal("1000.00"), is_closed=True, is_won=True,
                close_date=day(20), created_at=day(3),
            )
        )  # fmt: skip
        session.add(
            ContactRoleRow(
                crm="sf",
                external_id="r1",
                opportunity_external_id="opp1",
                person_external_id="ann",
                is_primary=True,
            )
        )
    with ledger_session(engine) as session:
        from sync.identity_graph import record_email_history

        record_email_history(session, "sf")  # remembers ann@old.example
        ann = session.exec(select(PersonRow).where(PersonRow.external_id == "ann")).one()
        ann.email = "ann@acme.example"  # she changed her address in the CRM
        session.add(ann)


def test_a_run_credits_touches_sent_to_a_former_address_too(ledger_engine: Engine) -> None:
    seed_ledger(ledger_engine)
    with ledger_session(ledger_engine) as session:
        report = run_attribution(session, "sf", ["linear", "u_shaped"], as_of=AS_OF)
        credits = session.exec(
            select(AttributionCreditRow)
            .where(AttributionCreditRow.run_id == report.run_id)
            .order_by(AttributionCreditRow.model, AttributionCreditRow.touch_key)
        ).all()
    assert [(c.model, c.touch_key, c.share_units, c.amount) for c in credits] == [
        ("linear", "mkto:1", 500_000, Decimal("500.00")),
        ("linear", "mkto:2", 500_000, Decimal("500.00")),
        # Ann was created by touch 1 (first touch and lead creation: 80%), touch 2 is "other".
        ("u_shaped", "mkto:1", 800_000, Decimal("800.00")),
        ("u_shaped", "mkto:2", 200_000, Decimal("200.00")),
    ]
    assert report.counts["unlinked_touches"] == 1
    assert credits[1].channel == "webinar"  # from the campaign when the touch has none


def test_the_same_inputs_give_the_same_fingerprint_and_credits(ledger_engine: Engine) -> None:
    seed_ledger(ledger_engine)
    with ledger_session(ledger_engine) as session:
        first = run_attribution(session, "sf", ["w_shaped", "custom"], CUSTOM, as_of=AS_OF)
        again = run_attribution(session, "sf", ["w_shaped", "custom"], CUSTOM, as_of=AS_OF)
        forced = run_attribution(
            session, "sf", ["w_shaped", "custom"], CUSTOM, as_of=AS_OF, force=True
        )

        def credits(run_id: int) -> list[tuple[object, ...]]:
            rows = session.exec(
                select(AttributionCreditRow).where(AttributionCreditRow.run_id == run_id)
            ).all()
            return sorted((r.model, r.touch_key, r.share_units, r.amount) for r in rows)

        assert again.reused
        assert again.run_id == first.run_id
        assert not forced.reused
        assert forced.run_id > first.run_id
        assert forced.fingerprint == first.fingerprint
        assert credits(forced.run_id) == credits(first.run_id) != []
        session.add(_touch(9, "ann@acme.example", day(10), "ebook"))
        session.flush()
        changed = run_attribution(session, "sf", ["w_shaped", "custom"], CUSTOM, as_of=AS_OF)
        assert changed.fingerprint != first.fingerprint
        assert not changed.reused
        other = fingerprint(load_dataset(session, "sf"), AttributionParams(), ["w_shaped"], AS_OF)
        assert other != changed.fingerprint


def test_the_unchanged_check_comes_first_and_follows_every_input(ledger_engine: Engine) -> None:
    seed_ledger(ledger_engine)
    with ledger_session(ledger_engine) as session:
        first = run_attribution(session, "sf", ["linear"], as_of=AS_OF)
        stored = session.get(AttributionRunRow, first.run_id)
        assert stored is not None
        state = stored.input_state
        assert state == input_state(session, "sf", AttributionParams(), ["linear"], AS_OF)
    # A touch of nobody known and one of a kind the run does not count change the ledger's
    # state, not the inputs: the run is reused and takes the new state.
    with ledger_session(ledger_engine) as session:
        session.add(_touch(10, "stranger@elsewhere.example", day(7), "webinar"))
        session.add(_touch(11, "ann@acme.example", day(8), "webinar", "email_delivered"))
    with ledger_session(ledger_engine) as session:
        again = run_attribution(session, "sf", ["linear"], as_of=AS_OF)
        assert again.reused
        assert again.run_id == first.run_id
        assert again.fingerprint == first.fingerprint
        stored = session.get(AttributionRunRow, first.run_id)
        assert stored is not None
        assert stored.input_state not in (None, state)
    # A deal changed in place (no new row, no new touch) is a new input: a new run.
    with ledger_session(ledger_engine) as session:
        opp = session.exec(select(OpportunityRow).where(OpportunityRow.external_id == "opp1")).one()
        opp.amount = Decimal("3000.00")
        session.add(opp)
        changed = run_attribution(session, "sf", ["linear"], as_of=AS_OF)
        assert not changed.reused
        assert changed.counts["touches"] == 4  # all of Ann's, the two mailings not counted too
        amounts = session.exec(
            select(AttributionCreditRow.amount).where(AttributionCreditRow.run_id == changed.run_id)
        ).all()
        assert sorted(amounts) == [Decimal("1500.00"), Decimal("1500.00")]
        assert run_attribution(session, "sf", ["linear"], as_of=AS_OF).run_id == changed.run_id


def test_a_new_address_is_a_new_input_and_the_old_ones_still_count(ledger_engine: Engine) -> None:
    seed_ledger(ledger_engine)
    with ledger_session(ledger_engine) as session:
        first = run_attribution(session, "sf", ["linear"], as_of=AS_OF)
    # Ann moves again: her history now holds three addresses, her touches keep counting.
    with ledger_session(ledger_engine) as session:
        ann = session.exec(select(PersonRow).where(PersonRow.external_id == "ann")).one()
        ann.email = "ann@new.example"
        session.add(ann)
        session.add(_touch(12, "ann@new.example", day(11), "ebook"))
    with ledger_session(ledger_engine) as session:
        moved = run_attribution(session, "sf", ["linear"], as_of=AS_OF)
        assert not moved.reused
        assert moved.fingerprint != first.fingerprint
        keys = session.exec(
            select(AttributionCreditRow.touch_key)
            .where(AttributionCreditRow.run_id == moved.run_id)
            .order_by(AttributionCreditRow.touch_key)
        ).all()
        assert keys == ["mkto:1", "mkto:12", "mkto:2"]
        again = run_attribution(session, "sf", ["linear"], as_of=AS_OF)
        assert again.reused
        assert again.run_id == moved.run_id


def test_show_sums_credits_by_campaign_with_sourced_and_influenced(ledger_engine: Engine) -> None:
    seed_ledger(ledger_engine)
    with ledger_session(ledger_engine) as session:
        report = run_attribution(session, "sf", ["first_touch", "linear"], as_of=AS_OF)
        by_campaign = summarize(session, report.run_id, "campaign")
        by_model = summarize(session, report.run_id, "model")
    assert by_campaign == [
        {"campaign": "ebook", "first_touch": Decimal("1000.00"), "linear": Decimal("500.00"),
         "sourced": Decimal("1000.00"), "influenced": Decimal("1000.00")},
        {"campaign": "webinar", "first_touch": Decimal("0.00"), "linear": Decimal("500.00"),
         "sourced": Decimal("0.00"), "influenced": Decimal("1000.00")},
    ]  # fmt: skip
    assert by_model == [
        {"model": "first_touch", "attributed": 1, "unattributed": 0, "amount": Decimal("1000.00")},
        {"model": "linear", "attributed": 1, "unattributed": 0, "amount": Decimal("1000.00")},
    ]


def test_the_cli_runs_every_model_and_shows_a_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = open_ledger(url)
    try:
        seed_ledger(engine)
    finally:
        engine.dispose()
    config = tmp_path / "closedloop.yaml"
    config.write_text(
        "version: 1\nattribution:\n  lookback_days: 180\n  custom:\n"
        "    first_touch: 60\n    others: 40\n"
    )
    runner = CliRunner()
    args = ["--config", str(config), "--database-url", url]
    ran = runner.invoke(app, ["run", "--all", "--as-of", "2026-06-01T00:00:00Z", *args])
    assert ran.exit_code == 0, ran.output
    assert "stored as run 1" in ran.output
    assert "custom" in ran.output
    again = runner.invoke(app, ["run", "--all", "--as-of", "2026-06-01T00:00:00Z", *args])
    assert "unchanged, same as run 1" in again.output
    shown = runner.invoke(app, ["show", "--by", "channel", *args])
    assert shown.exit_code == 0, shown.output
    assert "time_decay" in shown.output
    linear = runner.invoke(app, ["show", "--by", "channel", "-m", "linear", *args])
    lines = [line for line in linear.output.splitlines() if "500.00" in line]
    assert [line.split()[1] for line in lines] == ["Content", "Webinar"]  # the report's names
    as_json = runner.invoke(app, ["show", "--by", "channel", "--format", "json", *args])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert document["run"]["id"] == 1
    assert document["run"]["by"] == "channel"
    channels = {row["channel"]: row for row in document["rows"]}
    assert channels["Webinar"]["linear"] == "500.00"
    assert {"channel", "linear", "time_decay", "custom"} <= set(document["rows"][0])
    as_csv = runner.invoke(app, ["show", "--by", "campaign", "--format", "csv", *args])
    assert as_csv.exit_code == 0, as_csv.output
    records = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert records
    assert {"campaign", "linear", "sourced", "influenced"} <= set(records[0])
    assert sum(Decimal(r["linear"]) for r in records) == Decimal("1000.00")
    wrong = runner.invoke(app, ["show", "--format", "xml", *args])
    assert wrong.exit_code != 0
    assert "table, json or csv" in str(wrong.exception)
    bad = runner.invoke(app, ["run", "--model", "magic", *args])
    assert bad.exit_code == 2
    assert "unknown model magic" in bad.output


@pytest.mark.parametrize("by", ["campaign", "channel", "model"])
def test_show_before_any_run_says_what_to_do(tmp_path: Path, by: str) -> None:
    from connectors.errors import ConfigError

    runner = CliRunner()
    result = runner.invoke(
        app, ["show", "--by", by, "--database-url", f"sqlite:///{tmp_path / 'l.db'}"]
    )
    assert isinstance(result.exception, ConfigError)
    assert "closedloop attribution run" in str(result.exception)
