"""``closedloop sync --once`` on PostgreSQL beside other holders of a pipeline's lease.

A lease left by a process of this machine that was killed is taken at once (no waiting out its
period); a live holder makes the run skip the pipeline and exit 3, or 0 with ``--skip-held``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from sync import leases
from sync.cli import app
from sync.cli.sync_cmd import EXIT_HELD
from sync.ledger import make_engine
from tests.sync.pipelines.conftest import badge_pipeline, badge_rows, known_emails
from tests.sync.test_leases import holder_process

PIPELINE = "badges-to-salesforce"


@pytest.fixture
def ws(workspace_factory: Any, ledger_url: str) -> Any:
    if ledger_url.startswith("sqlite"):
        pytest.skip("leases are taken on PostgreSQL only (SQLite has one process per ledger)")
    workspace = workspace_factory({PIPELINE: badge_pipeline()})
    workspace.import_badges(badge_rows(known_emails(workspace.sandbox, 3)))
    return workspace


@contextmanager
def lease_holder(url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process of this machine holding the pipeline's lease for 60 s."""
    engine = make_engine(url)
    try:
        with holder_process(engine, leases.lease_name(PIPELINE)) as process:
            yield process
    finally:
        engine.dispose()


def _sync(ws: Any, *extra: str) -> Any:
    args = ["sync", "--once", "--config", str(ws.config_path), *extra]
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_sync_right_after_a_kill_takes_the_dead_holders_lease_at_once(
    ws: Any, ledger_url: str
) -> None:
    with lease_holder(ledger_url) as holder:
        holder.kill()
        holder.wait(10)

        done = _sync(ws)

    assert done.exit_code == 0, done.output
    assert "holds its lease" not in done.output
    assert sorted(ws.tasks_by_key().values()) == [1, 1, 1]


def test_a_pipeline_skipped_for_a_live_holder_exits_3_unless_skip_held(
    ws: Any, ledger_url: str
) -> None:
    with lease_holder(ledger_url):
        skipped = _sync(ws)
        allowed = _sync(ws, "--skip-held")

    assert skipped.exit_code == EXIT_HELD, skipped.output
    assert "another process holds its lease" in skipped.output
    assert "--skip-held" in skipped.output
    assert allowed.exit_code == 0, allowed.output
    assert ws.tasks_by_key() == {}
    assert _sync(ws).exit_code == 0  # the holder gone, the pipeline runs
    assert sorted(ws.tasks_by_key().values()) == [1, 1, 1]
