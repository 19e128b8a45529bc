"""What an operator can do from the page, each recorded in ``ui_audit`` before it answers.

Replay and discard are ``sync.pipelines.replay``'s (the same as ``closedloop dead-letters
replay|discard``). "Run now" runs a pipeline once, in a thread of this process, under the same
lease the scheduler takes, so it never runs beside a scheduled run of any replica.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine

from sync.ledger.models import UiAuditRow
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.config import Config
    from sync.connections import Connections

__all__ = ["audit", "discard", "replay", "run_now"]

_AUDIT = UiAuditRow.__table__  # type: ignore[attr-defined]
_log = structlog.get_logger("closedloop.ui")
RUN_LEASE_SECONDS = 60.0


def audit(engine: Engine, user: str, action: str, target: str, **details: Any) -> None:
    """Record one action: who, what, on what, when, with ``details``."""
    with engine.begin() as conn:
        conn.execute(
            _AUDIT.insert().values(
                at=utcnow(), user=user, action=action, target=target[:500], details=details
            )
        )
    _log.info("ui action", user=user, action=action, target=target[:200])


def replay(
    config: Config, engine: Engine, connections: Connections, ids: Sequence[int]
) -> dict[str, Any]:
    """Replay dead letters ``ids``; what became of them."""
    from sync.pipelines.replay import replay_dead_letters

    report = replay_dead_letters(config, engine, connections, ids=list(ids))
    outcome: dict[str, Any] = {
        "replayed": len(report.replayed),
        "failed": len(report.failed),
        "skipped": len(report.skipped),
    }
    if report.skipped:
        outcome["skip_reasons"] = sorted(set(report.skipped.values()))[:5]
    return outcome


def discard(engine: Engine, ids: Sequence[int]) -> dict[str, Any]:
    """Discard dead letters ``ids``; how many were open."""
    from sync.pipelines.replay import discard_dead_letters

    return {"discarded": len(discard_dead_letters(engine, list(ids)))}


def run_now(
    config: Config, engine: Engine, connections: Connections | None, name: str
) -> str | None:
    """Start pipeline ``name`` now in a thread; None when started, else why not."""
    from sync import leases
    from sync.pipelines.runner import run_pipeline

    if name not in config.pipelines:
        return "no such pipeline"
    owner = leases.process_owner("ui")
    fence = leases.acquire(engine, leases.lease_name(name), owner, RUN_LEASE_SECONDS)
    if fence is None:
        return "it is running now (another run holds its lease)"

    def work() -> None:
        try:
            with leases.Heartbeat(engine, fence, RUN_LEASE_SECONDS):
                run_pipeline(config, name, engine, fence=fence, connections=connections)
        except Exception as exc:  # noqa: BLE001 - the run records its own failure
            _log.error("run now failed", pipeline=name, error=type(exc).__name__)
        finally:
            try:
                leases.release(engine, fence)
            except Exception as exc:  # noqa: BLE001 - the lease then simply expires
                _log.warning("lease release failed", pipeline=name, error=type(exc).__name__)

    threading.Thread(target=work, name=f"run-now {name}", daemon=True).start()
    return None
