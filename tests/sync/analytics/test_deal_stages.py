"""Deals move their people through the funnel: a hand-built ledger read end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from sync.analytics.load import ledger_table, load_dataset
from sync.analytics.periods import parse_period
from sync.analytics.settings import AnalyticsSettings
from sync.analytics.sla import SlaTargets
from sync.analytics.summary import ReportData, build_report
from sync.ledger import ContactRoleRow, DispositionRow, OpportunityRow, PersonRow, open_ledger
from sync.mapping.lifecycle import compile_lifecycle
from sync.mapping.model import Lifecycle, Stage

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LIFECYCLE = compile_lifecycle(
    Lifecycle(
        status_field="Status",
        stages={Stage.MQL: ["Marketing Qualified"], Stage.SQL: ["Closed - Converted"]},
    )
)


def day(n: int) -> datetime:
    return datetime(2026, 3, n, 9, tzinfo=UTC)


def add(engine: Engine, model: type[Any], *rows: dict[str, Any]) -> None:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(insert(ledger_table(model)).values(**row))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    """Two accounts in Salesforce, a mirror of Ann in HubSpot.

    - Ann: a lead (MQL on day 2, converted on day 5) whose contact 0031 is at account A and
      has the contact role on the won deal 006A;
    - Bo: a contact at account A with no role on 006A (it has roles, so no account fallback);
    - Cy and Di: contacts at account B, whose open deal 006B and lost deal 006C have no
      contact roles (everyone at the account counts); Di's record is deleted;
    - Ed: a lead with no account, MQL on day 3.
    """
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    sf = {"crm": "sf", "created_at": day(1)}
    add(
        engine,
        PersonRow,
        {**sf, "external_id": "00Q1", "kind": "lead", "email": "ann@a.example", "converted": True,
         "converted_contact_external_id": "0031", "converted_account_external_id": "001A"},
        {**sf, "external_id": "0031", "kind": "contact", "email": "ann@a.example",
         "account_external_id": "001A"},
        {**sf, "external_id": "0032", "kind": "contact", "email": "bo@a.example",
         "account_external_id": "001A"},
        {**sf, "external_id": "0033", "kind": "contact", "email": "cy@b.example",
         "account_external_id": "001B"},
        {**sf, "external_id": "0034", "kind": "contact", "email": "di@b.example",
         "account_external_id": "001B", "deleted": True},
        {**sf, "external_id": "00Q2", "kind": "lead", "email": "ed@c.example"},
        {"crm": "hs", "external_id": "901", "kind": "contact", "email": "ann@a.example",
         "account_external_id": "77", "created_at": day(1)},
    )  # fmt: skip
    status = {"crm": "sf", "object_type": "lead", "field": "Status"}
    add(
        engine,
        DispositionRow,
        {**status, "object_id": "00Q1", "new_value": "Marketing Qualified", "changed_at": day(2)},
        {**status, "object_id": "00Q1", "new_value": "Closed - Converted", "changed_at": day(5)},
        {**status, "object_id": "00Q2", "new_value": "Marketing Qualified", "changed_at": day(3)},
    )  # fmt: skip
    add(
        engine,
        OpportunityRow,
        {"crm": "sf", "external_id": "006A", "name": "A - New", "account_external_id": "001A",
         "stage": "Closed Won", "amount": Decimal(40000), "is_closed": True, "is_won": True,
         "created_at": day(6), "close_date": day(20)},
        {"crm": "sf", "external_id": "006B", "name": "B - New", "account_external_id": "001B",
         "stage": "Prospecting", "amount": Decimal(9000), "created_at": day(8)},
        {"crm": "sf", "external_id": "006C", "name": "B - Old", "account_external_id": "001B",
         "stage": "Closed Lost", "amount": Decimal(5000), "is_closed": True,
         "created_at": day(4), "close_date": day(9)},
        {"crm": "hs", "external_id": "5001", "name": "A - mirror", "account_external_id": "77",
         "stage": "closedwon", "amount": Decimal(40000), "is_closed": True, "is_won": True,
         "created_at": day(6), "close_date": day(20)},
    )  # fmt: skip
    add(
        engine,
        ContactRoleRow,
        {"crm": "sf", "external_id": "ocr1", "opportunity_external_id": "006A",
         "person_external_id": "0031", "is_primary": True},
        {"crm": "hs", "external_id": "r1", "opportunity_external_id": "5001",
         "person_external_id": "901", "is_primary": True},
    )  # fmt: skip
    yield engine
    engine.dispose()


def report(engine: Engine, crms: list[str] | None) -> ReportData:
    dataset = load_dataset(engine, NOW, {"sf": LIFECYCLE}, crms=crms)
    settings = AnalyticsSettings(crms=crms)
    return build_report(dataset, settings, parse_period("all", NOW), SlaTargets(), {})


def counts(data: ReportData) -> dict[str, int]:
    return {str(step.stage): step.count for step in data.funnel.steps}


def test_the_people_on_a_won_deal_become_customers_and_on_open_deals_opportunities(
    ledger: Engine,
) -> None:
    data = report(ledger, ["sf"])

    # Ann (role on the won deal) is a customer; Cy reached Opportunity through account B's
    # deals, which have no roles; Di is deleted, Bo has no role on a deal that has roles, and
    # Ed is only an MQL.
    assert counts(data) == {
        "Inquiry": 5,
        "MQL": 3,
        "SAL": 2,
        "SQL": 2,
        "Opportunity": 2,
        "Customer": 1,
    }
    assert data.current_stages == {Stage.CUSTOMER: 1, Stage.OPPORTUNITY: 1, Stage.MQL: 1}
    assert data.deals.won == 1
    assert data.deals.revenue == Decimal(40000)
    assert "1 (20%) are customers so far" in data.summary[0]


def test_a_second_crm_mirroring_the_first_is_left_out_when_the_report_names_its_crms(
    ledger: Engine,
) -> None:
    both = report(ledger, None)
    assert counts(both)["Customer"] == 2  # Ann twice: once per CRM
    assert both.deals.revenue == Decimal(80000)

    only_sf = report(ledger, ["sf"])
    assert counts(only_sf)["Inquiry"] == 5
    assert only_sf.deals.revenue == Decimal(40000)
