"""One Marketo source, two CRMs: the source is pulled once per tick and fanned out to both sinks.

Two scheduled pipelines read the same Marketo activities, one into Salesforce and one into
HubSpot. Fired at the same tick (two scheduler threads, as ``closedloop serve`` fires them), they
make ONE bulk export job against the sandbox between them, and each sink still gets every
touch of the ledger exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, func, select

from sandbox.hubspot import HubSpotStore
from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import load_config
from sync.connections import Connections
from sync.ledger import DeliveryRow, SyncRunRow, TouchRow, open_ledger
from sync.pipelines import run_pipeline
from sync.scheduler import PipelineScheduler, TickOutcome, pipeline_trigger, tick_at
from tests.connectors.hubspot.conftest import KEY, add_closedloop_properties

SCHEDULE = {"every": "15m"}
PIPELINES = {
    "marketo-to-salesforce": {
        "kind": "touches", "source": "marketo", "sink": "salesforce",
        "mapping": "mappings/marketo-salesforce.yaml", "schedule": SCHEDULE,
    },
    "marketo-to-hubspot": {
        "kind": "touches", "source": "marketo", "sink": "hubspot",
        "mapping": "mappings/marketo-hubspot.yaml", "schedule": SCHEDULE,
    },
}  # fmt: skip


@pytest.fixture
def portal(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox with closedloop's properties in the portal and its rate limits lifted."""
    store: HubSpotStore = sandbox.store("hubspot")
    add_closedloop_properties(store)
    saved = (store.rate_limit_max, store.search_per_second)
    store.rate_limit_max = store.search_per_second = 100_000
    yield sandbox
    store.rate_limit_max, store.search_per_second = saved


def sink_keys(sandbox: SandboxServer) -> tuple[Counter[str], Counter[str]]:
    """Touch keys on live Salesforce Tasks and on HubSpot engagements, with their counts."""
    salesforce = sandbox.store("salesforce")
    with salesforce.lock:
        tasks = [r for r in salesforce.records["Task"].values() if not r.get("IsDeleted")]
    hubspot: HubSpotStore = sandbox.store("hubspot")
    with hubspot.lock:
        engagements = [
            record
            for records in hubspot.data.objects.values()
            for record in records.values()
            if KEY in record.properties
        ]
    return (
        Counter(r["Closedloop_Key__c"] for r in tasks if r.get("Closedloop_Key__c")),
        Counter(str(r.properties[KEY]) for r in engagements if r.properties.get(KEY)),
    )


def delivery_states(engine: Engine) -> dict[tuple[str, str], int]:
    """(sink, state) -> how many deliveries."""
    delivery = DeliveryRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            select(delivery.c.sink, delivery.c.state, func.count()).group_by(
                delivery.c.sink, delivery.c.state
            )
        ).all()
    return {(sink, state): count for sink, state, count in rows}


def pulled(engine: Engine) -> int:
    """Touches pulled, summed over every recorded run."""
    run = SyncRunRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(select(run.c.counts)).scalars().all()
    return sum(int(counts.get("pulled", 0)) for counts in rows)


def test_two_pipelines_of_one_marketo_source_make_one_export_per_tick(
    portal: SandboxServer, tmp_path: Path, ledger_url: str
) -> None:
    sandbox = portal
    path = write_sandbox_config(tmp_path, sandbox, pipelines=PIPELINES, ledger_url=ledger_url)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # Three weeks back, read with one bulk export job (the first pull of a longer history
    # takes one job per 31 days, the most a Marketo export may span).
    data["connections"]["marketo"].update(initial_lookback_days=21, bulk_backfill_days=1)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    config = load_config(path)
    engine = open_ledger(ledger_url)
    connections = Connections(config)
    try:
        scheduler = PipelineScheduler.from_config(config, engine, connections=connections)
        trigger = pipeline_trigger(config.pipelines["marketo-to-salesforce"].schedule)  # type: ignore[arg-type]
        tick = tick_at(trigger, datetime.now(UTC), timedelta(minutes=16))
        assert tick is not None
        outcomes: dict[str, str] = {}

        def fire(name: str) -> None:
            outcomes[name] = scheduler.run_tick(name, tick)

        threads = [threading.Thread(target=fire, args=[name]) for name in PIPELINES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes == dict.fromkeys(PIPELINES, TickOutcome.RAN)
    finally:
        connections.close()

    # One export job for both: the second pipeline found the source pulled for this tick and
    # read nothing from Marketo (not even the few seconds since the first one's pull).
    calls = sandbox.state.counts("marketo")
    assert calls.get("export.create") == 1
    assert calls.get("activities.pagingtoken", 0) == 0
    with engine.connect() as conn:
        touches = conn.execute(
            select(func.count()).select_from(TouchRow.__table__)  # type: ignore[attr-defined]
        ).scalar_one()
    assert touches > 0
    assert pulled(engine) == touches  # every touch was pulled once, by one of the two
    salesforce, hubspot = sink_keys(sandbox)
    assert salesforce
    assert hubspot
    assert set(salesforce.values()) == {1}
    assert set(hubspot.values()) == {1}
    states = delivery_states(engine)
    assert {state for _sink, state in states} == {"confirmed"}, states
    assert {sink for sink, _state in states} == {"salesforce", "hubspot"}

    # Run by hand, each reads on from the shared cursor: no new export job, nothing twice.
    for name in PIPELINES:
        run_pipeline(config, name, engine)
    calls = sandbox.state.counts("marketo")
    assert calls.get("export.create") == 1
    assert calls.get("activities.pagingtoken") == len(PIPELINES)
    assert sink_keys(sandbox) == (salesforce, hubspot)
    assert delivery_states(engine) == states
    engine.dispose()
