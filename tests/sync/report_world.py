"""A ledger holding the sandbox's demo company, and a config with an analytics section."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from sandbox.seed import generate
from sandbox.world import World
from sync.analytics.sample import fill_from_world
from sync.config import Config, load_config
from sync.ledger import open_ledger

SEED = 7
# Pinned: the expo's cost dates below and the reports' hand-picked periods are of this world.
NOW = datetime(2026, 11, 1, tzinfo=UTC)

CONFIG = """\
version: 1
analytics:
  currency: USD
  rep_names: {owner-01: Dana Ross, owner-08: Victor Mendes}
  teams:
    east: [owner-01, owner-02, owner-03, owner-04]
    west: [owner-05, owner-06, owner-07, owner-08]
  sla:
    default: 1d
  campaign_costs:
    - campaign: Global Marketing Expo
      amount: 100000
      start: 2026-08-11
      end: 2026-08-14
  experiments:
    marketing-leads:
      groups:
        with_leads: [owner-01, owner-02, owner-03, owner-04]
        prospecting: [owner-05, owner-06, owner-07, owner-08]
      metric: new_opportunities
"""


def world_ledger(folder: Path) -> tuple[Engine, World]:
    """A migrated SQLite ledger in ``folder`` filled with the demo world of seed 7."""
    world = generate(SEED, now=NOW)
    engine = open_ledger(f"sqlite:///{folder / 'world.db'}")
    fill_from_world(engine, world)
    return engine, world


def analytics_config(folder: Path) -> Config:
    """closedloop.yaml with teams, a one-day SLA, a YAML cost and an experiment."""
    path = folder / "closedloop.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)
