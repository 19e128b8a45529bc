"""Daily API budgets end to end (``sync.budgets``), through the CLI against the sandbox:
``check`` reports the cap, a sync stops at it saying when it resumes (exit 4), and the next
day's run delivers the rest with nothing lost or doubled."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sync.cli import app, check_cmd
from sync.cli.serve_cmd import build_service_app, metrics_route
from sync.cli.sync_cmd import EXIT_BUDGET
from sync.config import load_config
from sync.connections import Connections
from sync.metrics import ServiceMetrics
from tests.connectors.webhook.sender import Client
from tests.sync.pipelines.conftest import (
    Workspace,
    badge_pipeline,
    badge_rows,
    known_emails,
)
from tests.sync.test_serve import metric

PIPELINE = "badges-to-salesforce"
TOUCHES = 30  # 15 pushes of 2 after one lookup: past the cap of 10 calls


def _with_budget(ws: Workspace, **budget: Any) -> Workspace:
    data = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    data["budgets"]["salesforce"] = budget
    ws.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Workspace(ws.folder, load_config(ws.config_path), ws.engine, ws.sandbox)


def _new_vendor_day(ws: Workspace) -> None:
    """Salesforce's rolling 24 h allocation has freed every call made so far."""
    store = ws.sandbox.store("salesforce")
    with store.lock:
        store.api_used = 0


def _cli(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--config", str(ws.config_path)])


@pytest.fixture
def ws(workspace_factory: Any) -> Workspace:
    made: Workspace = workspace_factory({PIPELINE: badge_pipeline(batch_size=2)})
    return _with_budget(made, daily_share=0.0001)  # 10 of the sandbox org's 100,000 calls


def test_a_sync_stops_at_the_daily_cap_and_the_next_day_delivers_the_rest_once(
    ws: Workspace,
) -> None:
    _new_vendor_day(ws)
    checked = CliRunner().invoke(check_cmd.app, ["salesforce", "--config", str(ws.config_path)])
    assert re.search(r"cap 10 calls of 100,000 a day", checked.output), checked.output
    assert "forecast" in checked.output

    ws.import_badges(badge_rows(known_emails(ws.sandbox, TOUCHES)))
    _new_vendor_day(ws)
    first = _cli(ws, "sync")
    assert first.exit_code == EXIT_BUDGET, first.output
    assert re.search(r"budget reached; resumes at \d{4}-\d\d-\d\d \d\d:\d\d UTC", first.output)
    delivered = {k: v for k, v in ws.deliveries().items() if v[0] == "confirmed"}
    assert 0 < len(delivered) < TOUCHES  # some went out before the cap, the rest wait
    store = ws.sandbox.store("salesforce")
    assert store.api_used <= 10 + 1  # the guard stops before the call past the cap

    # The ledger counted today's calls; runs shows them against the cap.
    runs = _cli(ws, "runs")
    assert runs.exit_code == 0, runs.output
    assert "budget reached" in runs.output
    assert re.search(r"salesforce: cap 10 calls", runs.output), runs.output

    # /metrics of a serve process (it has not called Salesforce yet): the ledger's figures.
    with Connections(ws.config) as connections:
        metrics = ServiceMetrics(ws.engine, connections=connections)
        app = build_service_app(ws.engine, {}, extra_routes=[metrics_route(metrics)])
        text = Client(app).get("/metrics").text
    assert metric(text, "closedloop_api_budget_cap_calls", connection="salesforce") == 10
    used = metric(text, "closedloop_api_budget_used_calls", connection="salesforce")
    assert used is not None
    assert used >= 9  # touches stop at the cap less the 10% kept for dispositions
    forecast = metric(text, "closedloop_api_budget_forecast_calls", connection="salesforce")
    assert forecast is not None
    assert forecast >= used

    # Again the same day: Salesforce's allocation is a rolling window, so only the answer to
    # the run's first call says it is still spent; the run stops there (the batch already in
    # flight with it may go out too) and nothing is lost.
    before = store.api_used
    again = _cli(ws, "sync")
    assert again.exit_code == EXIT_BUDGET, again.output
    assert store.api_used <= before + 2
    assert len([v for v in ws.deliveries().values() if v[0] == "confirmed"]) <= len(delivered) + 4

    _new_vendor_day(ws)
    second = _cli(ws, "sync")
    assert second.exit_code == 0, second.output
    states = ws.deliveries()
    assert len(states) == TOUCHES
    assert {state for state, _ in states.values()} == {"confirmed"}
    tasks = ws.tasks_by_key()
    assert set(tasks) == set(states)
    assert set(tasks.values()) == {1}
