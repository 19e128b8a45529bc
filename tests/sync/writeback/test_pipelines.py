"""Write-back on the scheduler: the ``attribution`` and ``sla-writeback`` pipeline kinds."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlmodel import select
from typer.testing import CliRunner

from connectors.errors import ConfigError
from sync.cli import check_cmd
from sync.config import load_config
from sync.ledger import ledger_session
from sync.ledger.models import CampaignRow
from sync.ledger.types import utcnow
from sync.pipelines.runner import run_pipeline
from tests.sync.writeback.conftest import Workspace
from tests.sync.writeback.test_attribution import _influence, _touches
from tests.sync.writeback.test_sla import HOUR, _handoff, _people

Make = Callable[..., Workspace]


def test_the_attribution_pipeline_stores_a_run_and_writes_it_back_once(workspace: Make) -> None:
    ws = workspace(pipelines={"sf-attribution": {"kind": "attribution", "source": "salesforce"}})
    assert run_pipeline(ws.config, "salesforce-reconcile", ws.engine).ok
    with ledger_session(ws.engine) as session:
        campaigns = session.exec(select(CampaignRow).where(CampaignRow.crm == "salesforce")).all()
    _touches(ws, "salesforce", [c.external_id for c in campaigns[:3]])

    first = run_pipeline(ws.config, "sf-attribution", ws.engine)
    second = run_pipeline(ws.config, "sf-attribution", ws.engine)

    assert first.state == "succeeded", first.error
    influence = _influence(ws)
    assert first.count("writeback_created") == sum(len(s) for s in influence.values()) > 5
    assert all(sum(shares) == Decimal("100.00") for shares in influence.values())
    assert second.state == "succeeded", second.error
    assert any("unchanged, same as run" in note for note in second.notes)
    assert second.count("credits") == 0
    assert second.count("writeback_created") == second.count("writeback_updated") == 0
    assert _influence(ws) == influence


def test_the_sla_writeback_pipeline_flags_breaches_on_its_crm(workspace: Make) -> None:
    ws = workspace(
        analytics={"crms": ["hubspot"], "sla": {"default": "4h"}, "writeback": {}},
        pipelines={"hs-sla": {"kind": "sla-writeback", "source": "hubspot"}},
    )
    assert run_pipeline(ws.config, "hubspot-reconcile", ws.engine).ok
    CliRunner().invoke(check_cmd.app, ["hubspot", "--fix", "--config", str(ws.config.path)])
    [late] = (p.external_id for p in _people(ws, "hubspot", "contact", 1))
    _handoff(ws, "hubspot", late, utcnow() - 48 * HOUR, None)

    first = run_pipeline(ws.config, "hs-sla", ws.engine)
    again = run_pipeline(ws.config, "hs-sla", ws.engine)

    assert first.state == "succeeded", first.error
    assert first.count("writeback_flagged") == 1
    store = ws.sandbox.store("hubspot")
    with store.lock:
        flag = store.data.objects["contacts"][late].properties.get("closedloop_sla_breached")
    assert flag == "true"
    assert again.count("writeback_flagged") == 0


def test_an_sla_writeback_pipeline_without_its_section_is_a_config_error(
    workspace: Make,
) -> None:
    ws = workspace()
    data = yaml.safe_load(Path(ws.config.path).read_text(encoding="utf-8"))
    data["pipelines"]["flags"] = {"kind": "sla-writeback", "source": "salesforce"}
    Path(ws.config.path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pipelines\.flags\.kind.*analytics\.writeback"):
        load_config(ws.config.path)
