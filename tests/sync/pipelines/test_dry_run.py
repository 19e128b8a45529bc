"""``closedloop sync --dry-run`` on the demo's backlog: the real run's counts, nothing written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from sandbox.server import SandboxServer
from sync.cli import app
from sync.cli.demo_cmd import BADGE_SOURCE, DEMO_SEED, _badge_csv, write_sandbox_config
from sync.cli.import_cmd import import_file
from sync.config import load_config
from sync.ledger import open_ledger
from sync.ledger.models import CursorRow, DeadLetterRow, DeliveryRow, PersonRow, SyncRunRow

COUNTS = ("pulled", "new", "pushed", "held", "dead letters", "dispositions")
TABLES = (CursorRow, DeadLetterRow, DeliveryRow, PersonRow, SyncRunRow)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _rows(output: str) -> dict[str, dict[str, str]]:
    """The summary table's count columns per pipeline, from the printed table."""
    lines = [ln for ln in output.splitlines() if "│" in ln or "┃" in ln]
    header = [cell.strip() for cell in re.split("[│┃]", lines[0])[1:-1]]
    out = {}
    for line in lines[1:]:
        cells = dict(zip(header, (c.strip() for c in line.split("│")[1:-1]), strict=True))
        if cells.get("pipeline"):
            out[cells["pipeline"]] = {k: cells[k] for k in ("state", *COUNTS)}
    return out


def _crm_records(sandbox: SandboxServer) -> dict[str, int]:
    """How many records of each kind the two sandbox CRMs hold."""
    salesforce, hubspot = sandbox.store("salesforce"), sandbox.store("hubspot")
    with salesforce.lock:
        out = {f"salesforce {k}": len(v) for k, v in salesforce.records.items()}
    with hubspot.lock:
        out |= {f"hubspot {k}": len(v) for k, v in hubspot.data.objects.items()}
        out["hubspot timeline events"] = len(hubspot.data.timeline_events)
    return out


def _ledger_rows(url: str) -> dict[str, int]:
    engine = open_ledger(url)
    try:
        with engine.connect() as conn:
            return {
                t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in TABLES
            }
    finally:
        engine.dispose()


@pytest.fixture
def demo(tmp_path: Path) -> Any:
    with SandboxServer(seed=DEMO_SEED) as sandbox:
        path = write_sandbox_config(tmp_path, sandbox, ledger_url=f"sqlite:///{tmp_path / 'l.db'}")
        loaded = load_config(path)
        engine = open_ledger(loaded.database_url() or "")
        settings = loaded.connections[BADGE_SOURCE].settings
        import_file(engine, _badge_csv(tmp_path, sandbox), BADGE_SOURCE, settings)  # type: ignore[arg-type]
        engine.dispose()
        assert _cli("check", "hubspot", "--fix", "--config", str(path)).exit_code in (0, 1)
        yield path, loaded.database_url() or "", sandbox


@pytest.mark.slow  # the demo's world, synced twice
def test_a_dry_run_lists_the_counts_the_real_run_then_produces_and_writes_nothing(
    demo: Any,
) -> None:
    path, url, sandbox = demo
    before_ledger = _ledger_rows(url)
    before_calls = {api: sandbox.state.total_calls(api) for api in ("salesforce", "hubspot")}
    crm_before = _crm_records(sandbox)

    dry = _cli("sync", "--dry-run", "--config", str(path))

    assert dry.exit_code == 0, dry.output
    assert "nothing was written" in dry.output
    assert _ledger_rows(url) == before_ledger
    assert _crm_records(sandbox) == crm_before
    assert any(sandbox.state.total_calls(a) > before_calls[a] for a in before_calls)  # it read

    real = _cli("sync", "--config", str(path))

    assert real.exit_code == 0, real.output
    planned, done = _rows(dry.output), _rows(real.output)
    created = {
        crm: int(m.group(1).replace(",", ""))
        for crm in ("salesforce", "hubspot")
        if (m := re.search(rf"^{crm} would get: people created ([\d,]+)", dry.output, re.M))
    }
    differ = []
    for name, row in done.items():
        expected = dict(planned.get(name, {}))
        if name.endswith("-dispositions"):
            # The real run also reads back the first status of the people it created.
            crm = name.removesuffix("-dispositions")
            assert f"first status of the {created[crm]:,} people" in dry.output
            count = int(expected["dispositions"].replace(",", "")) + created[crm]
            expected["dispositions"] = f"{count:,}"
            assert int(row["pulled"].replace(",", "")) >= int(expected["pulled"].replace(",", ""))
            expected["pulled"] = row["pulled"]
        differ += [
            f"{name} {column}: dry run {expected.get(column)}, real run {value}"
            for column, value in row.items()
            if expected.get(column) != value
        ]
    assert not differ, "; ".join(differ)
    assert set(planned) == set(done)
    assert sum(int(r["pushed"].replace(",", "")) for r in done.values()) > 0
    assert "would get" in dry.output
    assert _crm_records(sandbox) != crm_before


@pytest.mark.parametrize("fail_inside", [False, True])
def test_the_dry_run_ledger_shows_a_run_its_own_writes_and_keeps_none(
    ledger_engine: Any, fail_inside: bool
) -> None:
    from sync.dry_run import DryRunLedger

    table = CursorRow.__table__  # type: ignore[attr-defined]
    ledger = DryRunLedger(ledger_engine)
    engine = ledger.as_engine()
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(pipeline="p", stream="s", value="1", boundary_keys=[])
            )

        def fail() -> None:
            with engine.begin() as conn:
                conn.execute(table.update().values(value="2"))
                raise RuntimeError

        if fail_inside:  # a failed inner transaction undoes only itself
            with pytest.raises(RuntimeError):
                fail()
        with engine.connect() as conn:
            assert conn.execute(select(table.c.value)).scalars().all() == ["1"]
    finally:
        ledger.close()
    with ledger_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
