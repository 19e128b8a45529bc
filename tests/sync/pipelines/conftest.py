"""Workspaces for pipeline tests: a config pointed at the sandbox, a ledger, badge-scan files."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select

from sandbox.seed import world_now
from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.cli.import_cmd import import_file
from sync.config import Config, load_config
from sync.ledger import DeliveryRow, TouchRow, open_ledger

BADGES = "badge_scans"
CAMPAIGN = "Pipeline Expo"
# The trade show of the badge scans: a day inside the history of the sandbox's world (which ends
# at the start of today, UTC).
SCAN_DAY = world_now() - timedelta(days=171)


@dataclass
class Workspace:
    """A config, its folder and an open ledger, all pointed at one sandbox."""

    folder: Path
    config: Config
    engine: Engine
    sandbox: SandboxServer

    @property
    def config_path(self) -> Path:
        return self.config.path

    def import_badges(self, rows: Sequence[dict[str, str]], name: str = "scans.csv") -> int:
        """Write ``rows`` as a badge-scan CSV and import it; returns the touches stored."""
        path = self.folder / name
        columns = ["Badge", "Email", "Scanned", "notes", "task_type"]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({c: row.get(c, "") for c in columns})
        settings = self.config.connections[BADGES].settings
        return import_file(self.engine, path, BADGES, settings).imported  # type: ignore[arg-type]

    def tasks_by_key(self) -> Counter[str]:
        """How many live Salesforce Tasks carry each touch key."""
        store = self.sandbox.store("salesforce")
        with store.lock:
            rows = list(store.records["Task"].values())
        return Counter(
            r["Closedloop_Key__c"]
            for r in rows
            if r.get("Closedloop_Key__c") and not r.get("IsDeleted")
        )

    def deliveries(self) -> dict[str, tuple[str, str | None]]:
        """Touch key -> (delivery state, CRM id) in the ledger."""
        touch, delivery = TouchRow.__table__, DeliveryRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(touch.c.key, delivery.c.state, delivery.c.crm_id).join(
                    delivery, delivery.c.touch_id == touch.c.id
                )
            ).all()
        return {r.key: (r.state, r.crm_id) for r in rows}


def known_emails(sandbox: SandboxServer, count: int) -> list[str]:
    """Emails of people the sandbox's Salesforce org holds."""
    world = sandbox.world
    assert world is not None
    emails = [p.email for p in world.people if p.crm_kind in ("lead", "contact") and p.email]
    return emails[:count]


def badge_rows(emails: Sequence[str], start: int = 0, **extra: str) -> list[dict[str, str]]:
    """One badge scan per email, a minute apart."""
    return [
        {
            "Badge": f"B{start + n}",
            "Email": email,
            "Scanned": f"{SCAN_DAY:%Y-%m-%d}T{9 + (n // 60) % 10:02d}:{n % 60:02d}:00Z",
            **extra,
        }
        for n, email in enumerate(emails)
    ]


def files_mapping(folder: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The shipped files -> Salesforce mapping, optionally edited, written into ``folder``."""
    source = Path(__file__).resolve().parents[3] / "mappings" / "files-salesforce.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    if edit is not None:
        edit(data)
    path = folder / "mappings" / "test-files-salesforce.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def badge_pipeline(mapping: str = "mappings/files-salesforce.yaml", **extra: Any) -> dict[str, Any]:
    return {"kind": "touches", "source": BADGES, "sink": "salesforce", "mapping": mapping, **extra}


@pytest.fixture
def workspace_factory(
    tmp_path: Path, sandbox: SandboxServer, ledger_url: str
) -> Iterator[Callable[..., Workspace]]:
    """Build workspaces (``pipelines``, optional mapping edit) on the parametrised ledger."""
    engines: list[Engine] = []

    def make(
        pipelines: dict[str, dict[str, Any]],
        *,
        edit_mapping: Callable[[dict[str, Any]], None] | None = None,
        connections: dict[str, dict[str, Any]] | None = None,
    ) -> Workspace:
        folder = tmp_path / "ws"
        folder.mkdir(exist_ok=True)
        if edit_mapping is not None:
            files_mapping(folder, edit_mapping)
        extra = {
            BADGES: {
                "type": "files",
                "columns": {"email": "Email", "occurred_at": "Scanned", "source_id": "Badge"},
                "kind": "event_attended",
                "campaign": CAMPAIGN,
            },
            **(connections or {}),
        }
        path = write_sandbox_config(
            folder, sandbox, pipelines=pipelines, connections=extra, ledger_url=ledger_url
        )
        engine = open_ledger(ledger_url)
        engines.append(engine)
        return Workspace(folder, load_config(path), engine, sandbox)

    yield make
    for engine in engines:
        engine.dispose()


def with_salesforce_settings(ws: Workspace, **values: Any) -> Workspace:
    """``ws`` with its salesforce connection's settings changed in closedloop.yaml (reloaded)."""
    data = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    data["connections"]["salesforce"].update(values)
    ws.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Workspace(ws.folder, load_config(ws.config_path), ws.engine, ws.sandbox)
