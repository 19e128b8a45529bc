"""Prometheus metrics of ``closedloop serve`` (``GET /metrics``), in a registry of its own.

Two kinds of figures:

- Counted by this process as it works (they restart at zero with the process, as Prometheus
  counters do; sum them over replicas): run durations by pipeline and state
  (``closedloop_run_duration_seconds``), errors by pipeline and kind (``closedloop_errors_total``),
  ticks by outcome (``closedloop_ticks_total``: ran, skipped because another replica held the
  lease or had run it already, or because the pipeline's last run stopped at its daily API
  budget and the resume time has not come, and ``woken``: run at once for new touches of its
  source, see ``sync.wakeups``), API calls per connection made by this process
  (``closedloop_api_calls_total``) and the daily budget left where the connector keeps one
  (``closedloop_api_budget_remaining``).
- The daily API budget of every budgeted connection (``sync.budgets``), from the ledger's
  count of today's calls and the vendor's own usage figures: the cap
  (``closedloop_api_budget_cap_calls``), the calls used today
  (``closedloop_api_budget_used_calls``) and the forecast to the end of the vendor's day at
  today's pace (``closedloop_api_budget_forecast_calls``).
- Read from the ledger at every scrape, so every replica reports the same shared state:
  deliveries by sink and state (``closedloop_deliveries``), open dead letters by pipeline
  (``closedloop_dead_letters_open``), and the lag of each pipeline
  (``closedloop_lag_seconds``: now minus the newest cursor commit of any of its streams, i.e.
  how long ago the pipeline last recorded progress) and how long ago each pipeline last finished
  a run, idle ones included (``closedloop_last_check_seconds``: idle runs keep no run row, see
  ``sync.pipelines.runner``). ``closedloop_ledger_up`` is 0 when the
  ledger did not answer the scrape (the other ledger figures are then missing, not zero).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from sync.leases import TICK_STREAM
from sync.ledger.models import CursorRow, DeadLetterRow, DeadLetterStatus, DeliveryRow
from sync.ledger.types import aggregate_time, utcnow
from sync.pipelines.runner import CHECKED_STREAM
from sync.wakeups import WAKE_STREAM

if TYPE_CHECKING:
    from sync.connections import Connections
    from sync.scheduler import RunResult

__all__ = ["CONTENT_TYPE_LATEST", "RUN_SECONDS_BUCKETS", "ServiceMetrics", "budget_remaining_of"]

RUN_SECONDS_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]
_CURSOR = CursorRow.__table__  # type: ignore[attr-defined]
_log = structlog.get_logger("closedloop.metrics")


def budget_remaining_of(connector: Any) -> int | None:
    """Calls left today in the daily budget ``connector`` keeps (``remaining`` of a
    ``connectors.ratelimit.DailyQuota`` on it or on its client), when it keeps one."""
    for holder in (connector, getattr(connector, "client", None)):
        if holder is None:
            continue
        for attribute in ("quota", "daily_quota", "budget"):
            remaining = getattr(getattr(holder, attribute, None), "remaining", None)
            if isinstance(remaining, int) and not isinstance(remaining, bool):
                return remaining
    return None


class _LedgerCollector(Collector):
    """Figures read from the ledger at scrape time."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing at registration: collect() needs the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("closedloop_ledger_up", "1 when the ledger answered this scrape.")
        try:
            families = self._read()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail with the ledger down
            _log.warning("metrics: the ledger did not answer", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[Metric]:
        deliveries = GaugeMetricFamily(
            "closedloop_deliveries",
            "Deliveries of touches to CRMs by sink and state.",
            labels=["sink", "state"],
        )
        dead = GaugeMetricFamily(
            "closedloop_dead_letters_open",
            "Dead letters waiting for replay or discard.",
            labels=["pipeline"],
        )
        lag = GaugeMetricFamily(
            "closedloop_lag_seconds",
            "Seconds since the pipeline last committed a cursor (its newest checkpoint).",
            labels=["pipeline"],
        )
        checked = GaugeMetricFamily(
            "closedloop_last_check_seconds",
            "Seconds since the pipeline last finished a run, idle runs included.",
            labels=["pipeline"],
        )
        with self.engine.connect() as conn:
            for sink, state, count in conn.execute(
                select(_DELIVERY.c.sink, _DELIVERY.c.state, func.count()).group_by(
                    _DELIVERY.c.sink, _DELIVERY.c.state
                )
            ):
                deliveries.add_metric([sink, state], count)
            for pipeline, count in conn.execute(
                select(_DEAD.c.pipeline, func.count())
                .where(_DEAD.c.status == DeadLetterStatus.OPEN.value)
                .group_by(_DEAD.c.pipeline)
            ):
                dead.add_metric([pipeline], count)
            newest = conn.execute(
                select(_CURSOR.c.pipeline, func.max(_CURSOR.c.updated_at))
                .where(_CURSOR.c.stream.not_in([TICK_STREAM, WAKE_STREAM, CHECKED_STREAM]))
                .group_by(_CURSOR.c.pipeline)
            ).all()
            looked = conn.execute(
                select(_CURSOR.c.pipeline, _CURSOR.c.updated_at).where(
                    _CURSOR.c.stream == CHECKED_STREAM
                )
            ).all()
        now = self.clock()
        for pipeline, updated in newest:
            if updated is not None:
                lag.add_metric([pipeline], max(0.0, (now - _utc_time(updated)).total_seconds()))
        for pipeline, updated in looked:
            checked.add_metric([pipeline], max(0.0, (now - _utc_time(updated)).total_seconds()))
        return [deliveries, dead, lag, checked]


class _ConnectionsCollector(Collector):
    """API calls and budget left of the connectors this process built."""

    def __init__(self, connections: Connections, engine: Engine) -> None:
        self.connections = connections
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "closedloop_api_calls",
            "API calls made by this process, per connection.",
            labels=["connection"],
        )
        left = GaugeMetricFamily(
            "closedloop_api_budget_remaining",
            "Calls left in today's API budget, per connection that keeps a daily budget.",
            labels=["connection"],
        )
        # api_calls() lists only connectors already built, so get() builds nothing here.
        for name, made in sorted(self.connections.api_calls().items()):
            calls.add_metric([name], made)
            remaining = budget_remaining_of(self.connections.get(name))
            if remaining is not None:
                left.add_metric([name], remaining)
        yield calls
        yield left
        yield from self._budgets()

    def _budgets(self) -> Iterator[Metric]:
        from sync.budgets import budgeted, forecast

        gauges = {
            name: GaugeMetricFamily(
                f"closedloop_api_budget_{name}_calls", text, labels=["connection"]
            )
            for name, text in (
                ("cap", "Calls closedloop may use in the vendor's day (the budget's cap)."),
                ("used", "Calls used today (the vendor's figure where it reports one)."),
                ("forecast", "Calls forecast by the end of the vendor's day at today's pace."),
            )
        }
        config = self.connections.config
        try:
            found = [
                forecast(config, self.engine, n, connector=self.connections.built(n))
                for n in budgeted(config)
            ]
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail with the ledger
            _log.warning("budget figures unavailable", error=type(exc).__name__)
            return
        for fc in found:
            if fc.cap is not None:
                gauges["cap"].add_metric([fc.connection], fc.cap)
            gauges["used"].add_metric([fc.connection], fc.used)
            gauges["forecast"].add_metric([fc.connection], fc.projected)
        yield from gauges.values()


class ServiceMetrics:
    """The metrics of one serve process; also the scheduler's observer (``SchedulerObserver``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        connections: Connections | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = CollectorRegistry()
        self.run_seconds = Histogram(
            "closedloop_run_duration_seconds",
            "Duration of pipeline runs by pipeline and final state.",
            ["pipeline", "state"],
            buckets=RUN_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "closedloop_errors",
            "Failed runs and ticks by pipeline and kind of error.",
            ["pipeline", "kind"],
            registry=self.registry,
        )
        self.ticks = Counter(
            "closedloop_ticks",
            "Scheduled ticks handled by this process, by pipeline and outcome.",
            ["pipeline", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_LedgerCollector(engine, clock))
        if connections is not None:
            self.registry.register(_ConnectionsCollector(connections, engine))

    def tick(self, pipeline: str, tick: datetime, outcome: str, owner: str) -> None:  # noqa: ARG002
        """Count one tick by outcome (a failed tick also counts as an error)."""
        self.ticks.labels(pipeline, outcome).inc()
        if outcome == "failed":
            self.errors.labels(pipeline, "tick_failed").inc()

    def run_finished(
        self, pipeline: str, seconds: float, result: RunResult | None, error: str | None
    ) -> None:
        """Observe a run's duration; count it as an error when it raised or failed."""
        state = "failed" if result is None else result.state
        self.run_seconds.labels(pipeline, state).observe(seconds)
        if error is not None:
            self.errors.labels(pipeline, error).inc()
        elif state == "failed":
            self.errors.labels(pipeline, "run_failed").inc()

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


def _utc_time(value: Any) -> datetime:
    """``aggregate_time`` of a value the query never leaves NULL."""
    moment = aggregate_time(value)
    assert moment is not None
    return moment
