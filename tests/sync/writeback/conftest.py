"""A workspace for write-back tests: a sandbox config with write-back on, and its ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import Config, load_config
from sync.ledger import open_ledger

MODEL_ID = "03V8c000000001AEAQ"
RECONCILE = {
    "salesforce-reconcile": {"kind": "reconcile", "source": "salesforce"},
    "hubspot-reconcile": {"kind": "reconcile", "source": "hubspot"},
}


@dataclass
class Workspace:
    """A config pointed at the sandbox (write-backs on) and an open SQLite ledger."""

    config: Config
    engine: Engine
    sandbox: SandboxServer


@pytest.fixture
def workspace(tmp_path: Path, sandbox: SandboxServer) -> Iterator[Callable[..., Workspace]]:
    """Build the workspace; keyword arguments are merged into the config's top-level sections."""
    engines: list[Engine] = []

    def make(**sections: dict[str, Any]) -> Workspace:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        path = write_sandbox_config(tmp_path, sandbox, pipelines=RECONCILE, ledger_url=url)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["attribution"] = {
            "writeback": {"model": "linear", "influence_model_id": MODEL_ID},
        }
        for name, values in sections.items():
            data[name] = {**data.get(name, {}), **values}
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        engine = open_ledger(url)
        engines.append(engine)
        return Workspace(load_config(path), engine, sandbox)

    yield make
    for engine in engines:
        engine.dispose()
