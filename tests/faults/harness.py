"""What the fault battery's cases share: a workspace syncing badge scans (or Marketo activities)
to one CRM of the sandbox, runs in process or as ``closedloop sync`` processes that get SIGKILLed,
and the count of what the CRM holds (never the ledger's word for it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from connectors.errors import ClosedloopError
from sandbox import credentials
from sandbox.hubspot import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, HubSpotStore
from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import Config, load_config
from sync.ledger import DeliveryRow, TouchRow, open_ledger
from sync.pipelines import run_pipeline
from tests.connectors.hubspot.conftest import KEY, add_closedloop_properties
from tests.faults.conftest import Figure
from tests.sync.pipelines.conftest import BADGES, badge_rows, known_emails

CRMS = ("salesforce", "hubspot")
PIPELINE = "to-crm"
MAPPINGS = {
    "salesforce": "mappings/files-salesforce.yaml",
    "hubspot": "mappings/files-hubspot.yaml",
}
# The data of one case: many distinct people, a quarter of them unknown to the CRM (created).
TOUCHES = 240
KNOWN = 120
NEW = 60
# HubSpot's search index trails its writes; the connector waits this long before looking.
INDEX_LAG_S = 0.3
SETTLE_S = 0.8
# Runs a case may take to get everything through its faults.
MAX_RUNS = 40


@dataclass
class Rig:
    """One workspace syncing ``keys`` to ``crm`` of ``sandbox``."""

    crm: str
    sandbox: SandboxServer
    folder: Path
    config: Config
    engine: Engine
    pipeline: str = PIPELINE
    keys: list[str] = field(default_factory=list)
    new_emails: list[str] = field(default_factory=list)

    def calls(self) -> int:
        """Calls the CRM's emulator counted."""
        return self.sandbox.state.total_calls(self.crm)

    def keyed(self) -> Counter[str]:
        """How many live CRM records carry each touch key."""
        if self.crm == "salesforce":
            store = self.sandbox.store("salesforce")
            with store.lock:
                rows = list(store.records["Task"].values())
            return Counter(
                r["Closedloop_Key__c"]
                for r in rows
                if r.get("Closedloop_Key__c") and not r.get("IsDeleted")
            )
        hub: HubSpotStore = self.sandbox.store("hubspot")
        with hub.lock:
            notes = list(hub.data.objects["notes"].values())
        return Counter(r.properties[KEY] for r in notes if r.properties.get(KEY))

    def people(self) -> Counter[str]:
        """How many CRM people carry each of the new people's e-mails."""
        wanted = set(self.new_emails)
        if self.crm == "salesforce":
            store = self.sandbox.store("salesforce")
            with store.lock:
                rows = [*store.records["Lead"].values(), *store.records["Contact"].values()]
            emails = [str(r.get("Email") or "").lower() for r in rows if not r.get("IsDeleted")]
        else:
            hub: HubSpotStore = self.sandbox.store("hubspot")
            with hub.lock:
                contacts = list(hub.data.objects["contacts"].values())
            emails = [str(r.properties.get("email") or "").lower() for r in contacts]
        return Counter(e for e in emails if e in wanted)

    def lost_and_doubled(self) -> tuple[int, int]:
        """Keys (and new people) missing from the CRM, and extra records of any of them."""
        keyed, people = self.keyed(), self.people()
        lost = sum(1 for k in self.keys if keyed[k] == 0)
        lost += sum(1 for e in self.new_emails if people[e] == 0)
        doubled = sum(n - 1 for k, n in keyed.items() if n > 1 and k in set(self.keys))
        doubled += sum(n - 1 for n in people.values() if n > 1)
        return lost, doubled

    def deliveries(self) -> dict[str, str]:
        """Touch key -> its delivery state in the ledger."""
        touch, delivery = TouchRow.__table__, DeliveryRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(touch.c.key, delivery.c.state).join(
                    delivery, delivery.c.touch_id == touch.c.id
                )
            ).all()
        return {r.key: r.state for r in rows}

    def settled(self) -> bool:
        """Whether the ledger says every key was delivered."""
        states = self.deliveries()
        return all(states.get(k) == "confirmed" for k in self.keys)

    def import_badges(self, rows: Sequence[dict[str, str]], name: str) -> int:
        from sync.cli.import_cmd import import_file

        path = self.folder / name
        path.write_text(
            "Badge,Email,Scanned\n"
            + "".join(f"{r['Badge']},{r['Email']},{r['Scanned']}\n" for r in rows),
            encoding="utf-8",
        )
        settings = self.config.connections[BADGES].settings
        imported = import_file(self.engine, path, BADGES, settings).imported  # type: ignore[arg-type]
        self.keys.extend(f"{BADGES}:{r['Badge']}" for r in rows)
        return imported

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sync.cli", "sync", "--config",
                str(self.config.path), "--pipeline", self.pipeline]  # fmt: skip


def badge_data(
    sandbox: SandboxServer, tag: str, count: int = TOUCHES
) -> tuple[list[dict[str, str]], list[str]]:
    """``count`` badge scans of ``KNOWN`` people the CRMs know and ``NEW`` walk-ins."""
    new = [f"walk-in{n}@{tag}.example" for n in range(NEW)]
    people = [*known_emails(sandbox, KNOWN), *new]
    return badge_rows([people[n % len(people)] for n in range(count)]), new


def ready_portal(sandbox: SandboxServer) -> None:
    """closedloop's properties in the sandbox portal, its rate limits lifted, its search index
    trailing writes by ``INDEX_LAG_S``, timeouts held briefly (again after each reset)."""
    store: HubSpotStore = sandbox.store("hubspot")
    add_closedloop_properties(store)
    store.rate_limit_max = store.search_per_second = 100_000
    store.data.search_index_lag_s = INDEX_LAG_S
    sandbox.state.timeout_hold_s = 0.2


@contextlib.contextmanager
def prepare_portal(sandbox: SandboxServer) -> Iterator[None]:
    """``ready_portal``, and the sandbox's settings put back afterwards."""
    store: HubSpotStore = sandbox.store("hubspot")
    saved = (store.rate_limit_max, store.search_per_second, store.data.search_index_lag_s)
    hold = sandbox.state.timeout_hold_s
    ready_portal(sandbox)
    try:
        yield
    finally:
        store.rate_limit_max, store.search_per_second, store.data.search_index_lag_s = saved
        sandbox.state.timeout_hold_s = hold
        sandbox.state.on_applied = None


def make_rig(
    sandbox: SandboxServer,
    folder: Path,
    crm: str,
    *,
    renewable_auth: bool = False,
    pipeline: dict[str, Any] | None = None,
    connections: dict[str, dict[str, Any]] | None = None,
    marketo: dict[str, Any] | None = None,
    hubspot: dict[str, Any] | None = None,
    batch_size: int = 40,
) -> Rig:
    """A workspace in ``folder`` whose pipeline ``PIPELINE`` syncs badge scans to ``crm`` (or
    ``pipeline``), on a SQLite ledger; ``renewable_auth``: credentials that log in again (a
    Salesforce client-credentials app, a HubSpot OAuth app) instead of a fixed session/token."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'ledger.db'}"
    spec = pipeline or {
        "kind": "touches", "source": BADGES, "sink": crm, "mapping": MAPPINGS[crm],
    }  # fmt: skip
    spec = {"batch_size": batch_size, **spec}
    path = write_sandbox_config(
        folder, sandbox, pipelines={PIPELINE: spec}, connections=connections, ledger_url=url
    )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # The portal's limits are lifted (``ready_portal``): so are closedloop's own limiters.
    data["connections"]["hubspot"].update(
        search_settle_seconds=SETTLE_S, burst_limit_per_10s=10_000, search_per_second=100
    )
    data["connections"]["marketo"].update(marketo or {})
    data["connections"]["hubspot"].update(hubspot or {})
    if renewable_auth:
        data["connections"]["salesforce"]["auth"] = {
            "method": "client_credentials",
            "login_url": sandbox.salesforce_url,
            "client_id": credentials.SALESFORCE_CLIENT_ID,
            "client_secret": credentials.SALESFORCE_CLIENT_SECRET,
        }
        data["connections"]["hubspot"]["auth"] = {
            "method": "oauth",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
        data["budgets"].pop("hubspot", None)  # OAuth apps have no daily limit to budget
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Rig(crm, sandbox, folder, load_config(path), open_ledger(url))


def run_until_settled(rig: Rig, max_runs: int = MAX_RUNS) -> int:
    """Run the pipeline in this process until the ledger says every key is delivered; the
    number of runs it took."""
    for n in range(1, max_runs + 1):
        try:
            summary = run_pipeline(rig.config, rig.pipeline, rig.engine)
        except ClosedloopError:
            continue
        if summary.state == "succeeded" and rig.settled():
            return n
    raise AssertionError(f"{rig.crm}: not everything delivered after {max_runs} runs")


class Killer:
    """SIGKILLs ``closedloop sync`` processes: right after the sandbox applied the n-th write
    of the run (``after_write``), or a random moment after its first write (``random``)."""

    def __init__(self, rig: Rig, fingerprint: Callable[[], tuple[int, ...]]) -> None:
        self.rig = rig
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._writes = 0
        self._kill_at: int | None = None
        self._last = fingerprint()
        self.first_write = threading.Event()
        rig.sandbox.state.on_applied = self._applied

    def _applied(self, api: str, _endpoint: str, method: str) -> None:
        if api != self.rig.crm or method == "GET":
            return
        now = self.fingerprint()
        with self._lock:
            if now == self._last:
                return  # no record created: a read, or a write that changed no count
            self._last = now
            self._writes += 1
            self.first_write.set()
            proc = self._proc
            if proc is not None and self._kill_at is not None and self._writes >= self._kill_at:
                # The write stands; its answer is never read.
                os.kill(proc.pid, signal.SIGKILL)
                self._kill_at = None

    def start(self, log: Path, kill_after_writes: int | None) -> subprocess.Popen[bytes]:
        env = {**os.environ, "CLOSEDLOOP_LOG_LEVEL": "error"}
        with self._lock:
            self._writes = 0
            self._kill_at = kill_after_writes
            self._last = self.fingerprint()
            self.first_write.clear()
            with log.open("ab") as errors:
                self._proc = subprocess.Popen(
                    self.rig.command(), stdout=subprocess.DEVNULL, stderr=errors, env=env
                )
            return self._proc

    def stop_hook(self) -> None:
        with self._lock:
            self._kill_at = None
            self._proc = None


def salesforce_fingerprint(sandbox: SandboxServer) -> Callable[[], tuple[int, ...]]:
    store = sandbox.store("salesforce")
    return lambda: (store.writes,)


def hubspot_fingerprint(sandbox: SandboxServer) -> Callable[[], tuple[int, ...]]:
    hub: HubSpotStore = sandbox.store("hubspot")

    def counts() -> tuple[int, ...]:
        return tuple(len(hub.data.objects[o]) for o in ("notes", "contacts"))

    return counts


def figure(rig: Rig, case: str, injected: str, baseline: int | None, started: float) -> Figure:
    lost, doubled = rig.lost_and_doubled()
    ratio = rig.calls() / baseline if baseline else None
    return Figure(case, injected, lost, doubled, ratio, time.monotonic() - started)


def injected_text(rig: Rig) -> str:
    drawn = rig.sandbox.state.faults.injected
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(drawn.items())) or "0 faults"
