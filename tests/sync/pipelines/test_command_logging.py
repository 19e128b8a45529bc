"""The config's ``logging`` section applies to ``closedloop sync``; the flag and the env var win.

Order, first found wins: ``--log-level``, ``CLOSEDLOOP_LOG_LEVEL``, the config's
``logging.level``, ``warning``. A run logs "run started" at info: it shows exactly when the
effective level is info or lower.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sync.cli import app
from tests.sync.pipelines.conftest import Workspace, badge_pipeline


def workspace(workspace_factory: Any, ledger_url: str, logging: dict[str, str]) -> Workspace:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("command-line logging does not depend on the ledger's backend")
    ws: Workspace = workspace_factory({"badges": badge_pipeline()})
    data = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    data["logging"] = logging
    ws.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return ws


def sync(ws: Workspace, *flags: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, [*flags, "sync", "--config", str(ws.config_path)], env=env)
    assert result.exit_code == 0, result.output
    return result.stderr


def test_sync_logs_at_the_level_the_config_names(
    workspace_factory: Any, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOSEDLOOP_LOG_LEVEL", raising=False)
    ws = workspace(workspace_factory, ledger_url, {"level": "info", "format": "json"})

    err = sync(ws)

    started = [ln for ln in err.splitlines() if '"event": "run started"' in ln]
    assert len(started) == 1, err
    assert '"pipeline": "badges"' in started[0]
    assert '"level": "info"' in started[0]


def test_a_quieter_config_level_keeps_info_lines_out(
    workspace_factory: Any, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOSEDLOOP_LOG_LEVEL", raising=False)
    ws = workspace(workspace_factory, ledger_url, {"level": "error", "format": "json"})

    assert "run started" not in sync(ws)


def test_the_flag_and_the_environment_win_over_the_config(
    workspace_factory: Any, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOSEDLOOP_LOG_LEVEL", raising=False)
    ws = workspace(workspace_factory, ledger_url, {"level": "error", "format": "json"})

    by_flag = sync(ws, "--log-level", "info")
    by_env = sync(ws, env={"CLOSEDLOOP_LOG_LEVEL": "info"})
    flag_over_env = sync(ws, "--log-level", "error", env={"CLOSEDLOOP_LOG_LEVEL": "info"})

    assert '"event": "run started"' in by_flag
    assert '"event": "run started"' in by_env
    assert "run started" not in flag_over_env
