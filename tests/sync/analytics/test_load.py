"""Reading the ledger into analytics records: aliases, stage translation, memberships, spend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from sync.analytics.funnel import funnel_rows, reached_by_person
from sync.analytics.lifecycle import build_histories
from sync.analytics.load import ledger_table, load_dataset
from sync.analytics.records import EventKind, Spend
from sync.analytics.settings import CampaignCost
from sync.ledger import (
    CampaignCostRow,
    CampaignRow,
    DispositionRow,
    OpportunityRow,
    PersonRow,
    TouchRow,
    open_ledger,
)
from sync.mapping.lifecycle import compile_lifecycle
from sync.mapping.model import Lifecycle, Stage

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def day(n: int, hour: int = 9) -> datetime:
    return datetime(2026, 3, n, hour, tzinfo=UTC)


def add(engine: Engine, model: type[Any], *rows: dict[str, Any]) -> None:
    with engine.begin() as conn:
        for row in rows:  # one statement each: the rows name different columns
            conn.execute(insert(ledger_table(model)).values(**row))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def filled(engine: Engine) -> Engine:
    add(
        engine,
        PersonRow,
        {"crm": "sf", "external_id": "00Q1", "kind": "lead", "email": "ann@acme.example",
         "owner_id": "rep-1", "lead_source": "Web", "converted": True,
         "converted_contact_external_id": "0031", "created_at": day(1)},
        {"crm": "sf", "external_id": "0031", "kind": "contact", "email": "ann@acme.example",
         "owner_id": "rep-2", "created_at": day(10)},
    )  # fmt: skip
    add(
        engine,
        DispositionRow,
        # The pipeline left lifecycle_stage empty: the mapping translates the status.
        {"crm": "sf", "object_type": "lead", "object_id": "00Q1", "field": "Status",
         "new_value": "Marketing Qualified", "changed_at": day(2), "owner_id": "rep-1"},
        {"crm": "sf", "object_type": "task", "object_id": "00Q1", "field": "Subject",
         "new_value": "Call", "changed_at": day(2, 11)},
        {"crm": "sf", "object_type": "lead", "object_id": "00Q1", "field": "OwnerId",
         "new_value": "rep-2", "changed_at": day(3)},
        {"crm": "sf", "object_type": "contact", "object_id": "0031", "field": "lifecycle_stage",
         "new_value": "customer", "lifecycle_stage": "Customer", "changed_at": day(20)},
        {"crm": "sf", "object_type": "opportunity", "object_id": "006A", "field": "StageName",
         "new_value": "Closed Won", "changed_at": day(20)},
    )  # fmt: skip
    add(
        engine,
        CampaignRow,
        {"crm": "sf", "external_id": "cmp-1", "name": "Spring Webinar", "channel": "webinar",
         "actual_cost": Decimal(1000), "start_date": day(1), "end_date": day(10)},
        {"crm": "sf", "external_id": "cmp-2", "name": "Search Ads", "channel": "paid_search",
         "actual_cost": Decimal(9999)},
    )  # fmt: skip
    add(
        engine,
        CampaignCostRow,
        {"crm": "sf", "campaign_external_id": "cmp-2", "period_start": date(2026, 3, 1),
         "period_end": date(2026, 3, 31), "amount": Decimal(500), "origin": "crm"},
    )  # fmt: skip
    touch = {"source": "marketo", "kind": "email_click", "channel": "email"}
    add(
        engine,
        TouchRow,
        {**touch, "key": "m:1", "source_id": "1", "occurred_at": day(1, 10),
         "email": "ann@acme.example", "campaign": "spring webinar"},
        {**touch, "key": "m:2", "source_id": "2", "occurred_at": day(1, 8),
         "email": "ann@acme.example", "campaign": "Spring Webinar"},
        {**touch, "key": "m:3", "source_id": "3", "occurred_at": day(4),
         "email": "ann@acme.example", "campaign": "cmp-2"},
        {**touch, "key": "m:4", "source_id": "4", "occurred_at": day(5),
         "email": "bob@else.example", "campaign": "Unknown Fair"},
    )  # fmt: skip
    add(
        engine,
        OpportunityRow,
        {"crm": "sf", "external_id": "006A", "name": "Acme", "stage": "Closed Won",
         "amount": Decimal("25000.50"), "is_closed": True, "is_won": True,
         "close_date": day(20), "created_at": day(12), "campaign_external_id": "cmp-1",
         "owner_id": "rep-2"},
        {"crm": "sf", "external_id": "006B", "name": "Gone", "stage": "Prospecting",
         "amount": Decimal(1), "deleted": True, "created_at": day(12)},
    )  # fmt: skip
    return engine


LIFECYCLE = compile_lifecycle(
    Lifecycle(status_field="Status", stages={Stage.MQL: ["Marketing Qualified"]})
)


def test_a_converted_leads_contact_continues_the_leads_history(filled: Engine) -> None:
    data = load_dataset(filled, NOW, {"sf": LIFECYCLE})
    assert set(data.people) == {"sf:00Q1"}
    ann = data.people["sf:00Q1"]
    assert (ann.email, ann.owner, ann.source, ann.created_at) == (
        "ann@acme.example",
        "rep-1",
        "Web",
        day(1),
    )
    events = sorted(data.events, key=lambda e: e.at)
    assert [(e.person, e.kind, e.stage) for e in events] == [
        ("sf:00Q1", EventKind.STATUS, Stage.MQL),
        ("sf:00Q1", EventKind.TASK, None),
        ("sf:00Q1", EventKind.OWNER, None),
        ("sf:00Q1", EventKind.STATUS, Stage.CUSTOMER),
    ]


def test_without_the_mapping_an_untranslated_status_carries_no_stage(filled: Engine) -> None:
    data = load_dataset(filled, NOW)
    first = min(data.events, key=lambda e: e.at)
    assert (first.kind, first.stage, first.value) == (
        EventKind.STATUS,
        None,
        "Marketing Qualified",
    )


HUBSPOT = compile_lifecycle(
    Lifecycle(
        status_field="hs_lead_status",
        stages={Stage.MQL: ["OPEN"], Stage.SAL: ["IN_PROGRESS"]},
        lifecycle_field="lifecyclestage",
        lifecycle_stages={Stage.MQL: ["marketingqualifiedlead"], Stage.CUSTOMER: ["customer"]},
    )
)


def test_the_funnel_counts_hubspot_lifecycle_stages_recorded_before_the_mapping_named_them(
    engine: Engine,
) -> None:
    # Recorded while the mapping had no lifecycle_field: the rows carry no stage of their own.
    add(
        engine,
        DispositionRow,
        {"crm": "hs", "object_type": "contact", "object_id": "1", "field": "lifecycle_stage",
         "new_value": "marketingqualifiedlead", "changed_at": day(2)},
        {"crm": "hs", "object_type": "contact", "object_id": "2", "field": "lifecycle_stage",
         "new_value": "marketingqualifiedlead", "changed_at": day(2)},
        {"crm": "hs", "object_type": "contact", "object_id": "2", "field": "lifecycle_stage",
         "new_value": "customer", "changed_at": day(9)},
        {"crm": "hs", "object_type": "contact", "object_id": "3", "field": "lifecycle_stage",
         "new_value": "OPEN", "changed_at": day(2)},  # a lead status value: not this field's
    )  # fmt: skip
    people = ["hs:1", "hs:2", "hs:3"]

    data = load_dataset(engine, NOW, {"hs": HUBSPOT})
    (row,) = funnel_rows({"all": people}, reached_by_person(people, build_histories(data.events)))

    counts = {s.stage: s.count for s in row.steps}
    assert (counts[Stage.INQUIRY], counts[Stage.MQL], counts[Stage.CUSTOMER]) == (3, 2, 1)


def test_touches_become_one_membership_per_person_and_campaign_with_the_first_time(
    filled: Engine,
) -> None:
    data = load_dataset(filled, NOW)
    members = sorted((m.person, m.campaign, m.first_at) for m in data.memberships)
    assert members == [
        ("email:bob@else.example", "Unknown Fair", day(5)),
        ("sf:00Q1", "cmp-1", day(1, 8)),  # campaign named by name, in any case
        ("sf:00Q1", "cmp-2", day(4)),
    ]


def test_spend_prefers_yaml_then_crm_cost_rows_then_the_campaigns_actual_cost(
    filled: Engine,
) -> None:
    data = load_dataset(filled, NOW)
    assert sorted(data.spend, key=lambda s: s.campaign) == [
        Spend("cmp-1", Decimal(1000), date(2026, 3, 1), date(2026, 3, 10)),
        Spend("cmp-2", Decimal(500), date(2026, 3, 1), date(2026, 3, 31)),
    ]
    yaml = [CampaignCost(campaign="Spring Webinar", amount=Decimal(1500),
                         start=date(2026, 3, 1), end=date(2026, 3, 2))]  # fmt: skip
    replaced = load_dataset(filled, NOW, campaign_costs=yaml)
    assert [s for s in replaced.spend if s.campaign == "cmp-1"] == [
        Spend("cmp-1", Decimal(1500), date(2026, 3, 1), date(2026, 3, 2))
    ]


def test_deleted_deals_are_left_out_and_amounts_stay_exact(filled: Engine) -> None:
    (deal,) = load_dataset(filled, NOW).deals
    assert (deal.key, deal.amount, deal.is_won, deal.campaign, deal.owner) == (
        "sf:006A",
        Decimal("25000.50"),
        True,
        "cmp-1",
        "rep-2",
    )
    campaigns = load_dataset(filled, NOW).campaigns
    assert campaigns["cmp-1"].name == "Spring Webinar"


def test_a_configured_alias_files_a_marketo_program_id_under_its_crm_campaign(
    filled: Engine,
) -> None:
    touch = {"source": "marketo", "kind": "email_click", "channel": "email"}
    add(
        filled,
        TouchRow,
        {**touch, "key": "m:9", "source_id": "9", "occurred_at": day(6),
         "email": "bob@else.example", "campaign": "2001"},
    )  # fmt: skip
    plain = load_dataset(filled, NOW)
    aliased = load_dataset(filled, NOW, campaign_aliases={"2001": "Spring Webinar"})

    def bob(data: Any) -> set[str | None]:
        return {m.campaign for m in data.memberships if m.person == "email:bob@else.example"}

    assert bob(plain) == {"Unknown Fair", "2001"}
    assert bob(aliased) == {"Unknown Fair", "cmp-1"}
