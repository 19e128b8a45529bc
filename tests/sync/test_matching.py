"""Lead-to-account matching: normalization, evidence, the labelled set, and stored decisions."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from benchmarks.bench_matching import evaluate
from sync.cli.matches_cmd import app
from sync.ledger import ledger_session, open_ledger
from sync.ledger.models import AccountMatchRow, AccountRow, PersonRow
from sync.matching import (
    AUTO_LINK_THRESHOLD,
    AccountCandidate,
    AccountMatcher,
    LeadToMatch,
    email_domain,
    linked_accounts,
    normalize_company,
    reconcile_matches,
)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Acme, Inc.", "acme"),
        ("ACME LLC", "acme"),
        ("The Acme Company", "acme"),
        ("Müller GmbH", "muller"),
        ("Smith & Sons Ltd", "smith sons"),
        ("Smith and Sons", "smith sons"),
        ("Banco Exemplo S.A.", "banco exemplo"),
        ("Holland Foods B.V.", "holland foods"),
        ("Inc", "inc"),  # a suffix alone stays: it is all the name there is
    ],
)
def test_company_names_are_normalized(typed: str, expected: str) -> None:
    assert normalize_company(typed) == expected


def test_free_mail_domains_say_nothing() -> None:
    assert email_domain("ann@gmail.com") is None
    assert email_domain("ann@Acme.Example") == "acme.example"
    assert email_domain("not-an-address") is None


MATCHER = AccountMatcher(
    [
        AccountCandidate("a1", "Acme Analytics", "acme.example"),
        AccountCandidate("a2", "International Business Machines", "ibm.example"),
        AccountCandidate("a3", "Northwind Labs", "northwind.example"),
        AccountCandidate("a4", "Northwild Labs", "northwild.example"),
    ]
)


def best(email: str | None, company: str | None) -> tuple[str, str, float] | None:
    proposals = MATCHER.propose(LeadToMatch("lead", email, company))
    if not proposals:
        return None
    return proposals[0].account_id, proposals[0].method, proposals[0].confidence


def test_a_company_domain_links_the_lead_even_from_a_subdomain() -> None:
    match = best("ann@eu.mail.acme.example", None)
    assert match is not None
    assert match[:2] == ("a1", "domain")
    assert match[2] >= AUTO_LINK_THRESHOLD


def test_a_free_mail_lead_is_matched_by_its_company_name() -> None:
    assert best("ann@gmail.com", "ACME ANALYTICS, Inc.") == ("a1", "name", 0.95)


def test_an_acronym_is_proposed_for_review_not_linked() -> None:
    match = best("bob@yahoo.com", "IBM")
    assert match is not None
    assert match[:2] == ("a2", "acronym")
    assert match[2] < AUTO_LINK_THRESHOLD


def test_a_typo_between_two_similar_accounts_goes_to_review() -> None:
    # "Northwnd Labs" is one edit from Northwind and two from Northwild: too close to call.
    match = best("cat@gmail.com", "Northwnd Labs")
    assert match is not None
    assert match[:2] == ("a3", "fuzzy")
    assert match[2] < AUTO_LINK_THRESHOLD


def test_an_unknown_company_on_free_mail_is_not_matched() -> None:
    assert best("dan@gmail.com", "Zebra Bakery") is None


def test_matching_reaches_the_precision_and_recall_targets_on_the_labelled_set() -> None:
    stats = evaluate(seed=7, leads=5_000)
    assert stats["precision"] >= 0.95
    assert stats["recall"] >= 0.85


def _seed(engine: Engine) -> None:
    with ledger_session(engine) as session:
        session.add_all(
            [
                AccountRow(
                    crm="sf", external_id="a1", name="Acme Analytics", domain="acme.example"
                ),
                AccountRow(crm="sf", external_id="a2", name="International Business Machines"),
            ]
        )
        session.add_all(
            [
                PersonRow(crm="sf", external_id="L1", kind="lead", email="ann@acme.example"),
                PersonRow(
                    crm="sf", external_id="L2", kind="lead", email="bob@gmail.com", company="IBM"
                ),
                PersonRow(
                    crm="sf",
                    external_id="L3",
                    kind="lead",
                    email="cat@gmail.com",
                    company="Nobody Knows",
                ),
                PersonRow(
                    crm="sf",
                    external_id="C1",
                    kind="contact",
                    email="dan@acme.example",
                    account_external_id="a1",
                ),
            ]
        )


def test_decisions_are_stored_and_reused_by_the_next_run(ledger_engine: Engine) -> None:
    _seed(ledger_engine)
    with ledger_session(ledger_engine) as session:
        summary = reconcile_matches(session, "sf")
        assert (summary.leads, summary.linked, summary.pending, summary.unmatched) == (3, 1, 1, 1)
        assert linked_accounts(session, "sf") == {"L1": "a1"}
        pending = session.exec(
            select(AccountMatchRow).where(AccountMatchRow.status == "pending")
        ).one()
        assert (pending.person_external_id, pending.account_external_id) == ("L2", "a2")
        from sync.matching import decide

        assert pending.id is not None
        decide(session, pending.id, accept=True)
    with ledger_session(ledger_engine) as session:
        again = reconcile_matches(session, "sf")
        assert (again.linked, again.pending) == (2, 0)
        assert linked_accounts(session, "sf") == {"L1": "a1", "L2": "a2"}


def test_a_rejected_account_is_never_proposed_again(ledger_engine: Engine) -> None:
    _seed(ledger_engine)
    with ledger_session(ledger_engine) as session:
        reconcile_matches(session, "sf")
        row = session.exec(
            select(AccountMatchRow).where(AccountMatchRow.person_external_id == "L2")
        ).one()
        from sync.matching import decide

        assert row.id is not None
        decide(session, row.id, accept=False)
    with ledger_session(ledger_engine) as session:
        again = reconcile_matches(session, "sf")
        assert again.pending == 0
        statuses = session.exec(
            select(AccountMatchRow.status).where(AccountMatchRow.person_external_id == "L2")
        ).all()
        assert statuses == ["rejected"]


def test_the_matches_cli_runs_lists_and_decides(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = open_ledger(url)
    try:
        _seed(engine)
    finally:
        engine.dispose()
    runner = CliRunner()
    ran = runner.invoke(app, ["run", "--crm", "sf", "--database-url", url])
    assert ran.exit_code == 0, ran.output
    assert "3 leads without an account: 1 linked, 1 waiting for review" in ran.output
    listed = runner.invoke(app, ["list", "--database-url", url])
    assert "IBM" in listed.output
    assert "acronym" in listed.output
    match_id = listed.output.split("│")[1].strip()  # first cell of the first row
    as_json = runner.invoke(app, ["list", "--format", "json", "--database-url", url])
    assert as_json.exit_code == 0, as_json.output
    (pending,) = json.loads(as_json.output)
    assert str(pending["id"]) == match_id
    assert (pending["status"], pending["crm"]) == ("pending", "sf")
    assert 0 < pending["confidence"] < 1
    as_csv = runner.invoke(
        app, ["list", "--status", "all", "--format", "csv", "--database-url", url]
    )
    records = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert {r["status"] for r in records} == {"auto", "pending"}
    assert str(pending["id"]) in {r["id"] for r in records}
    decided = runner.invoke(app, ["decide", match_id, "reject", "--database-url", url])
    assert decided.exit_code == 0, decided.output
    empty = runner.invoke(app, ["review", "--database-url", url])
    assert "the review queue is empty" in empty.output


def test_review_accepts_from_the_prompt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = open_ledger(url)
    try:
        _seed(engine)
    finally:
        engine.dispose()
    runner = CliRunner()
    runner.invoke(app, ["run", "--crm", "sf", "--database-url", url])
    reviewed = runner.invoke(app, ["review", "--database-url", url], input="a\n")
    assert reviewed.exit_code == 0, reviewed.output
    assert "1 decision(s) recorded" in reviewed.output
    accepted = runner.invoke(app, ["list", "--status", "accepted", "--database-url", url])
    assert "IBM" in accepted.output
