"""Daily API budgets: the cap per connection, pipeline priorities and the forecast to day's end.

The ``budgets:`` section gives each connection the share of its vendor's daily API allocation
closedloop may use, and a number of calls to leave unused (``reserve_calls``)::

    cap = floor(allocation * daily_share) - reserve_calls

- **Allocation and usage.** The vendor's own figures where it reports them on every answer:
  Salesforce ``Sforce-Limit-Info`` (the org's usage of its rolling 24 h allocation, every
  integration included), HubSpot ``X-HubSpot-RateLimit-Daily(-Remaining)`` (private apps).
  Elsewhere (Marketo, whose allocation is the connection's ``daily_quota``) the calls closedloop
  made today, counted in the ledger's ``api_usage`` table by every run of every process.
- **The vendor's day.** Salesforce: a rolling 24 h window (closedloop's own counts use UTC days);
  HubSpot: midnight in the account's time zone (``portal_timezone``); Marketo: midnight US
  Central. A day's counts start from zero at its boundary (``vendor_day``).
- **Priorities.** When the budget runs short, dispositions and hand-offs come first, touches
  next, backfills last: each priority may spend only down to ``priority_reserve`` of the cap
  per priority above it (with 0.1: dispositions up to the cap, touches to 90 %, backfills to
  80 %). A pipeline checks between batches (``BudgetGate``, via the run's ``should_stop``) and
  once before it starts; at its limit the run stops cleanly with ``BudgetReached`` saying when it
  resumes (the next vendor day, or for Salesforce when the rolling window frees enough calls).
  Touches not yet delivered stay pending for that run.
- **Forecast.** Calls used so far today, projected to the end of the vendor's day at today's
  pace, against the cap (``forecast``): shown by ``closedloop check``, ``closedloop runs``,
  /metrics and the web health page. For Salesforce's rolling figure: the org's usage now plus
  closedloop's own calls at today's pace until midnight UTC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, update

from connectors.errors import RateLimited
from sync.config import BUDGETED_TYPES
from sync.ledger.engine import reading
from sync.ledger.models import ApiUsageRow
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.config import Budget, Config, Pipeline
    from sync.connections import Connections

__all__ = [
    "BUDGETED_TYPES",
    "PRIORITIES",
    "BudgetForecast",
    "BudgetGate",
    "BudgetReached",
    "forecast",
    "forecasts",
    "has_daily_allocation",
    "priority_of",
    "record_calls",
    "vendor_day",
]

_USAGE = ApiUsageRow.__table__  # type: ignore[attr-defined]
_DAY = timedelta(days=1)
_MARKETO_TZ = ZoneInfo("America/Chicago")
# Connector types whose allocation is a rolling 24 h window (no day boundary).
ROLLING_TYPES = frozenset({"salesforce"})


# Pipeline kind -> priority (0 first). A backfill (``closedloop backfill``) is always last.
PRIORITIES: Mapping[str, int] = {
    "dispositions": 0,
    "recycle": 0,  # hands recycled leads back to marketing
    "sla-writeback": 0,  # flags hand-offs that breached the SLA
    "touches": 1,
    "reconcile": 1,
    "attribution": 1,
}
BACKFILL_PRIORITY = 2
PRIORITY_NAMES = ("dispositions and hand-offs", "touches", "backfills")


class BudgetReached(RateLimited):
    """A connection's daily budget (for this pipeline's priority) is spent until ``resume_at``."""


def priority_of(pipeline: Pipeline, *, backfill: bool = False) -> int:
    """The budget priority of ``pipeline`` (0 first); backfills come last."""
    return BACKFILL_PRIORITY if backfill else PRIORITIES.get(pipeline.kind, 1)


def _zone(config: Config, connection: str) -> tzinfo:
    conn = config.connections[connection]
    if conn.type == "hubspot":
        return ZoneInfo(str(getattr(conn.settings, "portal_timezone", "UTC")))
    if conn.type == "marketo":
        return _MARKETO_TZ
    return UTC


def vendor_day(config: Config, connection: str, now: datetime) -> tuple[str, datetime, datetime]:
    """The vendor's day ``now`` falls in: its date label, its start and its end (UTC)."""
    zone = _zone(config, connection)
    local = now.astimezone(zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    nxt = local.date() + _DAY
    # From the calendar date, not by adding 24 h: DST days last 23 or 25 hours.
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return local.date().isoformat(), start.astimezone(UTC), end.astimezone(UTC)


def _live_usage(connector: Any, day_start: datetime | None = None) -> tuple[int | None, int | None]:
    """(used today, daily allocation) as the vendor last reported them to ``connector``: the
    Salesforce org's current reading, HubSpot's Daily headers when read since ``day_start``."""
    client = getattr(connector, "client", None)
    current = getattr(client, "current_usage", None)  # Salesforce: None once it may be stale
    figures = current() if callable(current) else None
    if figures is None:
        figures = getattr(client, "daily_usage", None)  # HubSpot
        read_at = getattr(client, "daily_usage_at", None)
        if day_start is not None and isinstance(read_at, datetime) and read_at < day_start:
            figures = None  # yesterday's figure: the day has started again since
    if isinstance(figures, tuple) and len(figures) == 2:
        return int(figures[0]), int(figures[1])
    return None, None


def _static_allocation(config: Config, connection: str) -> int | None:
    quota = getattr(config.connections[connection].settings, "daily_quota", None)  # Marketo
    return quota if isinstance(quota, int) else None


def cap_of(budget: Budget, allocation: int | None) -> int | None:
    """Calls closedloop may use in a day of ``allocation`` calls (None while it is unknown)."""
    if allocation is None:
        return None
    return math.floor(allocation * budget.daily_share) - budget.reserve_calls


def limit_of(budget: Budget, cap: int, priority: int) -> int:
    """How far a pipeline of ``priority`` may spend: the cap less a reserve per priority above."""
    return cap - priority * math.ceil(cap * budget.priority_reserve) if cap > 0 else cap


@dataclass(frozen=True)
class BudgetForecast:
    """A connection's budget today: cap, calls used, the projection to the end of the day."""

    connection: str
    day: str
    day_ends_at: datetime
    allocation: int | None
    cap: int | None  # None: the allocation is not known yet (no answer from the vendor today)
    used: int
    used_source: str  # "vendor" (its own figure, every integration) or "ledger" (closedloop's)
    closedloop_calls: int  # closedloop's own calls today, from the ledger
    projected: int  # ``used`` plus today's pace until the end of the day

    @property
    def left(self) -> int | None:
        """Calls left under the cap (None while the cap is unknown)."""
        return None if self.cap is None else max(0, self.cap - self.used)

    @property
    def reached(self) -> bool:
        """Whether today's use has reached the cap."""
        return self.cap is not None and self.used >= self.cap

    @property
    def over_by_end_of_day(self) -> bool:
        """Whether today's pace reaches the cap before the day ends."""
        return self.cap is not None and self.projected >= self.cap

    def describe(self) -> str:
        """One line: cap, used, forecast (what ``check`` and ``runs`` print)."""
        ends = f"{self.day_ends_at:%Y-%m-%d %H:%M} UTC"
        if self.cap is None:
            return (
                f"{self.used:,} calls used today; the cap is known after the first call to the "
                f"vendor; forecast {self.projected:,} by {ends}"
            )
        share = f" of {self.allocation:,}" if self.allocation is not None else ""
        who = "org usage" if self.used_source == "vendor" else "closedloop's calls"
        return (
            f"cap {self.cap:,} calls{share} a day; {self.used:,} used today ({who}); "
            f"forecast {self.projected:,} by {ends}"
            + ("; cap reached" if self.reached else "")
            + ("; the cap will be reached today" if self.over_by_end_of_day and not self.reached
               else "")
        )  # fmt: skip


def _ledger_row(ledger: Engine | Connection, connection: str, day: str) -> Any:
    query = select(_USAGE).where(_USAGE.c.connection == connection, _USAGE.c.day == day)
    if isinstance(ledger, Connection):  # inside the caller's transaction (SQLite: no second one)
        return ledger.execute(query).first()
    with reading(ledger) as conn:
        return conn.execute(query).first()


def forecast(
    config: Config,
    engine: Engine | Connection,
    connection: str,
    *,
    connector: Any = None,
    now: datetime | None = None,
    extra_calls: int = 0,
) -> BudgetForecast:
    """The budget of ``connection`` today (the web health page and ``check`` call this).

    ``connector``: a live connector whose vendor figures are newer than the ledger's;
    ``extra_calls``: calls made but not yet recorded in the ledger (a run in progress)."""
    moment = now or utcnow()
    day, start, end = vendor_day(config, connection, moment)
    row = _ledger_row(engine, connection, day)
    ours = (int(row.calls) if row is not None else 0) + extra_calls
    used_live, allocation_live = _live_usage(connector, start)
    vendor_used = used_live if used_live is not None else (row.vendor_used if row else None)
    allocation = allocation_live or (row.allocation if row is not None else None)
    allocation = allocation or _static_allocation(config, connection)
    used, source = (vendor_used, "vendor") if vendor_used is not None else (ours, "ledger")
    elapsed = max((moment - start).total_seconds(), 60.0)
    remaining = max((end - moment).total_seconds(), 0.0)
    # A rolling figure covers the last 24 h, not the day so far: what is added on top of it by
    # the day's end is closedloop's own pace today (calls leaving the window are not counted).
    rolling = config.connections[connection].type in ROLLING_TYPES and source == "vendor"
    pace = ours if rolling else used
    projected = used + math.ceil(pace * remaining / elapsed)
    return BudgetForecast(
        connection=connection,
        day=day,
        day_ends_at=end,
        allocation=allocation,
        cap=cap_of(config.budget(connection), allocation),
        used=used,
        used_source=source,
        closedloop_calls=ours,
        projected=projected,
    )


def has_daily_allocation(config: Config, connection: str) -> bool:
    """Whether the vendor gives ``connection`` a daily allocation to budget (HubSpot OAuth apps
    have none)."""
    conn = config.connections.get(connection)
    if conn is None or conn.type not in BUDGETED_TYPES:
        return False
    auth = getattr(conn.settings, "auth", None)
    return not (conn.type == "hubspot" and getattr(auth, "method", None) == "oauth")


def budgeted(config: Config) -> list[str]:
    """The connections a budget applies to: every one with a daily allocation."""
    return [n for n in config.connections if has_daily_allocation(config, n)]


def forecasts(
    config: Config, engine: Engine | Connection, *, now: datetime | None = None
) -> list[BudgetForecast]:
    """The forecast of every budgeted connection from the ledger alone (``runs``, /metrics,
    alerts; given a connection, read in its transaction)."""
    return [forecast(config, engine, name, now=now) for name in budgeted(config)]


def record_calls(
    engine: Engine,
    config: Config,
    connection: str,
    calls: int,
    *,
    connector: Any = None,
    now: datetime | None = None,
) -> None:
    """Add ``calls`` to today's count of ``connection`` (with the vendor's newest figures)."""
    if connection not in config.connections:
        return
    moment = now or utcnow()
    day, start, _ = vendor_day(config, connection, moment)
    used, allocation = _live_usage(connector, start)
    figures: dict[str, Any] = {"updated_at": moment}
    if used is not None:
        figures.update(vendor_used=used, allocation=allocation)
    with engine.begin() as conn:
        done = conn.execute(
            update(_USAGE)
            .where(_USAGE.c.connection == connection, _USAGE.c.day == day)
            .values(calls=_USAGE.c.calls + calls, **figures)
        )
        if done.rowcount == 0:
            conn.execute(
                _USAGE.insert().values(connection=connection, day=day, calls=calls, **figures)
            )


def _resume_at(fc: BudgetForecast, limit: int, now: datetime, rolling: bool) -> datetime:
    """When enough calls free up: the next vendor day; for Salesforce's rolling window, when
    usage (assumed spread evenly over 24 h) drops below the limit."""
    if not rolling or fc.used <= 0 or fc.used_source != "vendor":
        return fc.day_ends_at
    wait = (fc.used - max(limit, 0) + 1) * _DAY.total_seconds() / fc.used
    return now + timedelta(seconds=min(_DAY.total_seconds(), max(60.0, wait)))


class BudgetGate:
    """Stops a run at its connections' budgets, for its pipeline's priority: the ledger's count
    of today's calls plus this process's calls not yet recorded (``Connections``)."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        connections: Connections,
        pipeline_name: str,
        *,
        backfill: bool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        pipeline = config.pipelines[pipeline_name]
        self.config = config
        self.engine = engine
        self.connections = connections
        self.pipeline_name = pipeline_name
        self.priority = priority_of(pipeline, backfill=backfill)
        self.clock = clock
        ends = [pipeline.source, pipeline.sink]
        self.names = [
            n for n in dict.fromkeys(e for e in ends if e) if has_daily_allocation(config, n)
        ]

    def _forecast(self, name: str, now: datetime) -> BudgetForecast:
        return forecast(
            self.config,
            self.engine,
            name,
            connector=self.connector(name),
            now=now,
            extra_calls=self.connections.unrecorded_calls(name),
        )

    def connector(self, name: str) -> Any:
        """The connector of ``name`` if this process built it already (never builds one)."""
        return self.connections.built(name)

    def reached(self) -> BudgetReached | None:
        """The error to stop with when a connection's limit for this priority is spent."""
        now = self.clock()
        for name in self.names:
            rolling = self.config.connections[name].type in ROLLING_TYPES
            if rolling and _live_usage(self.connector(name))[0] is None:
                # A rolling window frees calls all the time: only a figure the vendor sends now
                # counts (the connection's first call of the run reads it).
                continue
            fc = self._forecast(name, now)
            if fc.cap is None:
                continue
            budget = self.config.budget(name)
            limit = limit_of(budget, fc.cap, self.priority)
            if fc.used < limit:
                continue
            resume = _resume_at(fc, limit, now, rolling)
            which = PRIORITY_NAMES[self.priority]
            share = "" if self.priority == 0 else f" (the part {which} may use: {limit:,})"
            why = (
                f"{name} used {fc.used:,} of its cap of {fc.cap:,} calls today{share}"
                if fc.cap > 0
                else f"the cap of {name} leaves no call ({fc.cap:,}: reserve_calls is larger "
                "than its share)"
            )
            return BudgetReached(
                f"budget reached; resumes at {resume:%Y-%m-%d %H:%M} UTC: {why}; raise "
                f"budgets.{name}.daily_share or lower reserve_calls to allow more",
                retry_after=max(0.0, (resume - now).total_seconds()),
                resume_at=resume,
            )
        return None

    def check(self) -> None:
        """Raise ``BudgetReached`` when this run may not spend more."""
        error = self.reached()
        if error is not None:
            raise error
