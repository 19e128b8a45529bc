"""Budgets (``sync.budgets``): vendor days, priorities, and calls counted in the ledger across
processes; a backfill refused at its limit through the CLI, saying when it resumes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sync.budgets import BudgetGate, BudgetReached, forecast, record_calls, vendor_day
from sync.cli import app
from sync.cli.sync_cmd import EXIT_BUDGET
from sync.config import Config, load_config
from sync.connections import Connections
from tests.sync.pipelines.conftest import Workspace

PIPELINES = {
    "marketo-to-salesforce": {
        "kind": "touches", "source": "marketo", "sink": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
    "recycle-to-marketo": {
        "kind": "recycle", "source": "salesforce", "sink": "marketo",
        "mapping": "mappings/marketo-salesforce.yaml",
    },
}  # fmt: skip
# A summer day: Chicago is on CDT (UTC-5), so Marketo's day ends at 05:00 UTC.
NOON = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ws(workspace_factory: Any) -> Workspace:
    made: Workspace = workspace_factory(PIPELINES)
    data = yaml.safe_load(made.config_path.read_text(encoding="utf-8"))
    # 100 of Marketo's 50,000 a day; each priority below the first leaves 10 for those above.
    data["budgets"]["marketo"] = {"daily_share": 0.002, "priority_reserve": 0.1}
    data["connections"]["hubspot"]["portal_timezone"] = "Asia/Tokyo"
    made.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Workspace(made.folder, load_config(made.config_path), made.engine, made.sandbox)


def _gate(config: Config, ws: Workspace, pipeline: str, *, backfill: bool = False) -> BudgetGate:
    return BudgetGate(
        config, ws.engine, Connections(config), pipeline, backfill=backfill, clock=lambda: NOON,
    )  # fmt: skip


def test_each_vendor_day_ends_at_its_own_midnight(ws: Workspace) -> None:
    config = ws.config
    assert vendor_day(config, "marketo", datetime(2026, 7, 1, 4, 30, tzinfo=UTC)) == (
        "2026-06-30",
        datetime(2026, 6, 30, 5, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 5, 0, tzinfo=UTC),
    )
    # Winter: CST (UTC-6).
    assert vendor_day(config, "marketo", datetime(2026, 1, 15, 12, tzinfo=UTC))[2] == datetime(
        2026, 1, 16, 6, 0, tzinfo=UTC
    )
    assert vendor_day(config, "hubspot", NOON)[0] == "2026-07-01"  # 21:00 in Tokyo
    assert vendor_day(config, "hubspot", NOON)[2] == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
    assert vendor_day(config, "salesforce", NOON)[2] == datetime(2026, 7, 2, tzinfo=UTC)


def test_calls_counted_by_every_process_add_up_and_a_new_vendor_day_starts_at_zero(
    ws: Workspace,
) -> None:
    config = ws.config
    record_calls(ws.engine, config, "marketo", 40, now=NOON)  # one replica
    record_calls(ws.engine, config, "marketo", 45, now=NOON)  # another
    today = forecast(config, ws.engine, "marketo", now=NOON)
    assert (today.cap, today.used, today.used_source) == (100, 85, "ledger")
    # 85 calls in the 7 hours since midnight Central; 17 hours left at that pace.
    assert today.projected == 85 + -(-85 * 17 // 7)
    assert today.over_by_end_of_day
    assert not today.reached
    tomorrow = forecast(config, ws.engine, "marketo", now=datetime(2026, 7, 2, 6, tzinfo=UTC))
    assert (tomorrow.used, tomorrow.projected) == (0, 0)


def test_touches_leave_a_reserve_for_hand_offs_and_backfills_stop_first(ws: Workspace) -> None:
    config = ws.config
    record_calls(ws.engine, config, "marketo", 85, now=NOON)
    assert _gate(config, ws, "recycle-to-marketo").reached() is None  # may go to 100
    assert _gate(config, ws, "marketo-to-salesforce").reached() is None  # may go to 90
    backfill = _gate(config, ws, "marketo-to-salesforce", backfill=True).reached()
    assert isinstance(backfill, BudgetReached)  # may go to 80
    assert backfill.resume_at == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)  # midnight Central
    assert "the part backfills may use: 80" in str(backfill)

    record_calls(ws.engine, config, "marketo", 5, now=NOON)
    assert _gate(config, ws, "marketo-to-salesforce").reached() is not None
    assert _gate(config, ws, "recycle-to-marketo").reached() is None
    record_calls(ws.engine, config, "marketo", 10, now=NOON)
    assert _gate(config, ws, "recycle-to-marketo").reached() is not None


def test_a_backfill_past_its_limit_stops_before_any_call_and_says_when_it_resumes(
    ws: Workspace,
) -> None:
    record_calls(ws.engine, ws.config, "marketo", 85)  # other processes' calls today
    done = CliRunner().invoke(
        app,
        ["backfill", "--since", "2026-01-01", "--pipeline", "marketo-to-salesforce",
         "--config", str(ws.config_path)],
    )  # fmt: skip
    assert done.exit_code == EXIT_BUDGET, done.output
    assert re.search(r"budget reached; resumes at \d{4}-\d\d-\d\d 0[56]:00 UTC", done.output)
    assert "marketo used 85 of its cap of 100 calls today" in done.output
    assert forecast(ws.config, ws.engine, "marketo").closedloop_calls == 85  # none made


def test_runs_sharing_a_connector_in_one_process_record_each_call_once(ws: Workspace) -> None:
    class Counted:
        api_calls = 30

    marketo = Counted()
    connections = Connections(ws.config, instances={"marketo": marketo})
    assert connections.unrecorded_calls("marketo") == 30
    # Two runs end one after the other: the first records all 30, the second only what came after.
    assert connections.unrecorded_calls("marketo", take=True) == 30
    marketo.api_calls = 45
    assert connections.unrecorded_calls("marketo", take=True) == 15
    assert connections.unrecorded_calls("marketo", take=True) == 0


def test_hubspots_daily_figures_count_only_on_the_day_they_were_read(ws: Workspace) -> None:
    class Client:
        daily_usage = (900, 1_000)
        daily_usage_at = NOON - timedelta(days=1)

    class HubSpot:
        client = Client()

    yesterdays = forecast(ws.config, ws.engine, "hubspot", connector=HubSpot(), now=NOON)
    assert (yesterdays.used, yesterdays.used_source, yesterdays.cap) == (0, "ledger", None)
    # Read an hour ago: today in Tokyo (the day began at 15:00 UTC yesterday).
    Client.daily_usage_at = NOON - timedelta(hours=1)
    todays = forecast(ws.config, ws.engine, "hubspot", connector=HubSpot(), now=NOON)
    assert (todays.used, todays.used_source, todays.cap) == (900, "vendor", 500)
    assert todays.reached


def test_salesforces_rolling_usage_is_forecast_with_closedloops_own_pace(ws: Workspace) -> None:
    class Client:
        def current_usage(self) -> tuple[int, int]:
            return (500, 1_000)  # the org's last 24 h, every integration

    class Salesforce:
        client = Client()

    record_calls(ws.engine, ws.config, "salesforce", 70, now=NOON)  # half the UTC day gone
    fc = forecast(ws.config, ws.engine, "salesforce", connector=Salesforce(), now=NOON)
    assert (fc.used, fc.used_source, fc.closedloop_calls) == (500, "vendor", 70)
    assert fc.projected == 570  # 70 more by midnight UTC at closedloop's pace
    assert fc.cap == 500 - 1_000  # reserve_calls 1000 (the sandbox config) leaves no call here


def test_a_budget_alert_starts_at_the_share_of_the_cap_and_clears_the_next_vendor_day(
    ws: Workspace,
) -> None:
    from dataclasses import replace

    from pydantic import SecretStr

    from sync.alerts.monitor import AlertMonitor
    from sync.alerts.settings import AlertsConfig, SlackChannel, Triggers
    from tests.sync.alert_receivers import http_receiver

    receiver = http_receiver()
    try:
        alerts = AlertsConfig(
            page_url="https://closedloop.example.com/health",
            channels={
                "slack": SlackChannel(type="slack", webhook_url=SecretStr(f"{receiver.url}/s"))
            },
            triggers=Triggers(run_failed=False, budget_share=0.8),
        )
        config = replace(ws.config, alerts=alerts)
        record_calls(ws.engine, config, "marketo", 79, now=NOON)  # the cap is 100
        assert AlertMonitor(config, ws.engine, clock=lambda: NOON).evaluate() == []

        record_calls(ws.engine, config, "marketo", 6, now=NOON)
        [started] = AlertMonitor(config, ws.engine, clock=lambda: NOON).evaluate()
        next_day = datetime(2026, 7, 2, 6, tzinfo=UTC)
        [cleared] = AlertMonitor(config, ws.engine, clock=lambda: next_day).evaluate()
    finally:
        receiver.stop()

    assert (started.key, started.started, started.figures["share"]) == (
        "budget:marketo",
        True,
        0.85,
    )
    assert (cleared.key, cleared.started) == ("budget:marketo", False)
    assert [p.path for p in receiver.posted] == ["/s", "/s"]
