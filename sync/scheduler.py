"""APScheduler wiring of ``closedloop serve``: one job per scheduled pipeline, guarded by leases.

Each process runs an APScheduler 3 ``BackgroundScheduler`` with its own in-memory job store
(version 3 must never share a job store between processes); the coordination between replicas
lives in the ledger (``sync.leases``). Jobs are coalesced, one instance at a time, and have a
misfire grace time.

Exactly once per tick. A tick is identified by its scheduled fire time, which must be the same
in every replica: cron schedules are, and ``every`` schedules are anchored at the Unix epoch
(an ``every: 15m`` pipeline fires at :00, :15, :30, :45 everywhere, not 15 minutes after each
process started). When a job fires, it:

1. works out its tick: the latest fire time of its trigger at or before now (APScheduler 3 does
   not hand the scheduled time to the job; the job runs within the misfire grace of it);
2. acquires the lease ``pipeline:<name>``. A replica that finds it held keeps waiting for it
   until shortly before its next tick (at most ``max_patience`` when set): the holder may be
   finishing the previous tick, or may have died in the middle of this one. The waiting replica
   sleeps until the holding expires, asking again at least every ``poll_seconds`` (a twentieth
   of the lease period, at most 1 s) so that a release, or a holder gone from this machine
   (``sync.leases.holder_gone``), is noticed at once. If the lease is still held when the wait
   ends, the replica skips the tick; a run that overruns a whole interval coalesces the ticks
   it overlaps;
3. reads the pipeline's last completed tick (``sync.leases.last_tick``) and skips when it is at or
   after this one: a replica that fires a little later than the first (its clock or its scheduler
   thread lags) finds the lease free again but the tick already done;
4. runs the pipeline with the fence while a heartbeat renews the lease every third of its period
   (a lost lease sets the run's stop event; the pipeline's fenced commits are refused anyway);
5. records the tick under the fence (a stale holder's record is refused) and releases the lease.

Steps 2-5 happen under one lease, and the tick record is written before the release, so no
tick is completed twice.

Failover. A tick whose runner dies stays unrecorded. Every other replica fired the same tick and
is waiting for its lease (step 2), so the first to find it free runs that tick again: at most one
lease period after the kill (a lease expires one period after its last renewal) plus one poll,
and at once when the dead holder was on this machine. Only when the lease outlives the
wait (a kill in the last lease period before the next tick) does the next tick run it instead,
which is no later. Ticks that fall while the lease is held by a dead replica are skipped: the
next run catches up from the pipeline's cursors.

Clocks: lease expiry is decided by the database's clock (``sync.leases``). A replica's own clock
only decides when its scheduler fires and which tick it works out; a replica whose clock is off
fires early or late but cannot run a recorded tick again. Keep replicas NTP-synced so that
ticks fire on time.

Upkeep. After each run the scheduler calls ``after_run`` (``Upkeep`` when built from a config):
it prunes the sync log of steps older than ``sync_log.retention`` (on the first run, then once
a day) and evaluates the alerts (``sync.alerts.monitor``), telling them whether the run kept
its lease. A failing upkeep is logged and never stops the schedule.

Wake-ups. Scheduled touches pipelines also run as soon as new touches of their source are
stored (a webhook, a file import: ``sync.wakeups``). A thread reads the sources' wake-up counters
every ``wake_poll_seconds`` (at once when this process's webhook receiver ``poke``s it); a pipeline
whose source's counter moved waits ``debounce_seconds`` for more, then ``run_wake`` runs it under
the same lease, skipping when a run that had read that counter already finished on any replica;
counters raised during a run make one follow-up run. One run of a pipeline at a time in this
process: scheduled ticks and wake-ups share a per-pipeline lock besides the lease.

Idle runs (nothing new stored, delivered or refused) keep no ``sync_run`` row: the runner deletes
it and updates the pipeline's last-checked time instead (``sync.pipelines.runner``). Each run is
told its tick (``pulled_since``), so a source another pipeline pulled at this tick is not pulled
again (``sync.pipelines.touches``).

``stop`` (SIGTERM in ``closedloop serve``) stops scheduling, sets the stop event of every running
pipeline so it finishes and commits its current batch, waits for them, and releases the leases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from sync import leases, wakeups

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.config import Config, Pipeline, Schedule
    from sync.connections import Connections
    from sync.pipelines.context import Fence

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MISFIRE_GRACE_SECONDS",
    "EPOCH",
    "PipelineRun",
    "PipelineScheduler",
    "RunResult",
    "SchedulerObserver",
    "TickOutcome",
    "Upkeep",
    "default_owner",
    "pipeline_runner",
    "pipeline_trigger",
    "tick_at",
]

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MISFIRE_GRACE_SECONDS = 30
# A replica finding the lease held waits for it until this long before its next tick fires (or
# a tenth of the interval when that is shorter), so the wait never delays the next tick.
NEXT_TICK_MARGIN_SECONDS = 1.0
LEASE_RETRY_SECONDS = 0.05
# How often the wake-up counters are read (a webhook stored by this process wakes it at once),
# and how long a wake-up waits for more before it runs, so a burst of touches makes one run.
DEFAULT_WAKE_POLL_SECONDS = 0.5
DEFAULT_DEBOUNCE_SECONDS = 0.2
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRUNE_EVERY_SECONDS = 86_400.0

_log = structlog.get_logger("closedloop.scheduler")


class RunResult(Protocol):
    """What the scheduler reads from a finished run (``sync.pipelines.runner.RunSummary``)."""

    @property
    def state(self) -> str: ...

    @property
    def api_calls(self) -> Mapping[str, Any]: ...

    @property
    def error(self) -> str | None: ...


PipelineRun = Callable[[str, "Fence", threading.Event], "RunResult | None"]
"""Runs pipeline ``name`` once under ``fence``, stopping after the current batch on ``stop``."""


class TickOutcome:
    """What one replica did with one tick of one pipeline (a label of metrics and logs)."""

    RAN = "ran"
    WOKEN = "woken"  # run at once for new touches of its source (``sync.wakeups``)
    HELD = "skipped_held"  # another runner holds the lease
    DONE = "skipped_done"  # the tick was already run (by another replica)
    STOPPING = "skipped_stopping"  # the process is shutting down
    BUDGET = "skipped_budget"  # its last run stopped at a daily API budget; not resumed yet
    FAILED = "failed"  # the ledger could not be asked (it is retried at the next tick)


class SchedulerObserver(Protocol):
    """Receives what the scheduler does (``sync.metrics.ServiceMetrics`` implements it)."""

    def tick(self, pipeline: str, tick: datetime, outcome: str, owner: str) -> None:
        """One tick of ``pipeline`` was handled with ``outcome`` by ``owner``."""

    def run_finished(
        self, pipeline: str, seconds: float, result: RunResult | None, error: str | None
    ) -> None:
        """A run ended after ``seconds``; ``error`` names the exception type when it raised."""


def default_owner() -> str:
    """A lease owner name unique to this process: machine, pid and a random suffix."""
    return leases.process_owner()


def pipeline_trigger(schedule: Schedule) -> Any:
    """The APScheduler trigger of ``schedule``; intervals are anchored at the Unix epoch so
    that every replica fires at the same instants."""
    interval = schedule.interval
    if interval is None:
        return schedule.trigger()
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=interval.total_seconds(), start_date=EPOCH, timezone=UTC)


def tick_at(trigger: Any, now: datetime, lookback: timedelta) -> datetime | None:
    """The latest fire time of ``trigger`` at or before ``now``, searched ``lookback`` back."""
    fire: datetime | None = trigger.get_next_fire_time(None, now - lookback)
    latest = None
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return latest


def pipeline_runner(
    config: Config, engine: Engine, *, connections: Connections | None = None
) -> PipelineRun:
    """The production ``PipelineRun``: ``sync.pipelines.runner.run_pipeline`` on ``config``."""
    from sync.pipelines.runner import run_pipeline

    def run(name: str, fence: Fence, stop: threading.Event) -> RunResult:
        # A source another pipeline pulled at this tick is not pulled again (fan-out).
        tick = None
        pipeline = config.pipelines.get(name)
        if pipeline is not None and pipeline.schedule is not None:
            # The latest tick (a cron schedule firing less than daily: none, so pull anyway).
            period = pipeline.schedule.interval or timedelta(days=1)
            lookback = period + timedelta(seconds=DEFAULT_MISFIRE_GRACE_SECONDS + 1)
            tick = tick_at(pipeline_trigger(pipeline.schedule), datetime.now(UTC), lookback)
        summary: RunResult = run_pipeline(
            config, name, engine, fence=fence, stop=stop, connections=connections,
            keep_idle=False, pulled_since=tick,
        )  # fmt: skip
        return summary

    return run


@dataclass
class _Job:
    name: str
    trigger: Any
    lookback: timedelta


class PipelineScheduler:
    """Runs the scheduled, enabled pipelines of a config on their triggers, under leases."""

    def __init__(
        self,
        engine: Engine,
        pipelines: Mapping[str, Pipeline],
        run: PipelineRun,
        *,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        misfire_grace_seconds: int = DEFAULT_MISFIRE_GRACE_SECONDS,
        max_patience: float | None = None,
        observer: SchedulerObserver | None = None,
        after_run: Callable[[str, bool], None] | None = None,
        wake_poll_seconds: float = DEFAULT_WAKE_POLL_SECONDS,
        debounce_seconds: float = DEFAULT_DEBOUNCE_SECONDS,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("the lease period must be positive")
        self.engine = engine
        self.run = run
        self.owner = owner or default_owner()
        self.lease_seconds = lease_seconds
        self.misfire_grace_seconds = misfire_grace_seconds
        self.max_patience = max_patience
        self.poll_seconds = min(1.0, max(LEASE_RETRY_SECONDS, lease_seconds / 20))
        self.observer = observer
        self.after_run = after_run
        self._lease_lost: dict[str, bool] = {}
        self.wake_poll_seconds = wake_poll_seconds
        self.debounce_seconds = debounce_seconds
        self.jobs: dict[str, _Job] = {}
        self.sources: dict[str, str] = {}  # touches pipeline -> the source it reads
        for name, pipeline in pipelines.items():
            if pipeline.enabled and pipeline.schedule is not None:
                self.jobs[name] = _Job(
                    name,
                    pipeline_trigger(pipeline.schedule),
                    timedelta(seconds=misfire_grace_seconds + 1),
                )
                if pipeline.kind == "touches" and pipeline.source is not None:
                    self.sources[name] = pipeline.source
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._active: dict[str, threading.Event] = {}
        # Pipeline -> when its budget frees up, after a run stopped with "budget reached".
        self._paused: dict[str, datetime] = {}
        self._scheduler: Any = None
        # One run of a pipeline at a time in this process (the lease is re-entrant per owner).
        self._local = {name: threading.Lock() for name in self.jobs}
        self._wanted: dict[str, int] = {}
        self._woken = {name: threading.Event() for name in self.sources}
        self._poke = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_config(
        cls,
        config: Config,
        engine: Engine,
        *,
        connections: Connections | None = None,
        **kwargs: Any,
    ) -> PipelineScheduler:
        """A scheduler for ``config``'s pipelines running them with the real pipeline runner."""
        run = pipeline_runner(config, engine, connections=connections)
        kwargs.setdefault("after_run", Upkeep(config, engine))
        return cls(engine, config.pipelines, run, **kwargs)

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop`` while the scheduler thread is alive."""
        return self._scheduler is not None and bool(self._scheduler.running) and not self.stopping

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Start firing the jobs (idempotent)."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=max(1, len(self.jobs)))},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.misfire_grace_seconds,
            },
            timezone=UTC,
        )
        for job in self.jobs.values():
            scheduler.add_job(
                self._fire, job.trigger, args=[job.name], id=job.name, name=f"pipeline {job.name}"
            )
        scheduler.start()
        self._scheduler = scheduler
        if self.sources:
            self._threads = [
                threading.Thread(target=self._watch, name="closedloop-wake-watch", daemon=True)
            ] + [
                threading.Thread(target=self._wake_loop, args=[name], name=f"wake {name}",
                                 daemon=True)
                for name in sorted(self._woken)
            ]  # fmt: skip
            for thread in self._threads:
                thread.start()
        _log.info(
            "scheduler started",
            owner=self.owner,
            pipelines=sorted(self.jobs),
            lease_seconds=self.lease_seconds,
        )

    def poke(self) -> None:
        """Read the wake-up counters now (this process just raised one)."""
        self._poke.set()

    def _watch(self) -> None:
        """Read the wake-up counters every ``wake_poll_seconds`` (or when poked) and wake the
        pipelines of every source whose counter moved (all of them once at start)."""
        seen: dict[str, int] = {}
        while not self.stopping:
            self._poke.clear()
            try:
                current = wakeups.generations(self.engine)
            except Exception as exc:  # noqa: BLE001 - the ledger may be down: poll again
                _log.warning("wake-up counters not read", error=type(exc).__name__)
                current = {}
            for source, generation in current.items():
                if generation <= seen.get(source, 0):
                    continue
                seen[source] = generation
                for name, read in self.sources.items():
                    if read == source:
                        with self._lock:
                            self._wanted[name] = max(generation, self._wanted.get(name, 0))
                        self._woken[name].set()
            self._poke.wait(self.wake_poll_seconds)

    def _wake_loop(self, name: str) -> None:
        """Run ``name`` once per burst of wake-ups: wait ``debounce_seconds`` after the first,
        then run for the newest counter; wake-ups during the run make one follow-up run."""
        woken = self._woken[name]
        while True:
            woken.wait()
            if self._stopping.wait(self.debounce_seconds):
                return
            woken.clear()
            with self._lock:
                generation = self._wanted.get(name, 0)
            try:
                outcome = self.run_wake(name, generation)
            except Exception as exc:  # noqa: BLE001 - the ledger may be down: try again later
                _log.error("wake-up failed", pipeline=name, error=type(exc).__name__)
                outcome = TickOutcome.FAILED
                woken.set()
                if self._stopping.wait(self.poll_seconds):
                    return
            if outcome != TickOutcome.WOKEN:
                _log.debug("wake-up skipped", pipeline=name, outcome=outcome)
            if self.observer is not None:
                self.observer.tick(name, datetime.now(UTC), outcome, self.owner)
            if self.stopping:
                return

    def request_stop(self) -> list[str]:
        """Start no new run and ask the running ones to stop after their batch; no waiting."""
        self._stopping.set()
        self._poke.set()
        for woken in self._woken.values():
            woken.set()
        with self._lock:
            for event in self._active.values():
                event.set()
            return sorted(self._active)

    def stop(self, *, wait: bool = True) -> None:
        """Stop scheduling, ask running pipelines to finish their batch, wait, release leases."""
        running = self.request_stop()
        if self._scheduler is None:
            return
        _log.info("scheduler stopping", owner=self.owner, running=running)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        if wait:
            for thread in self._threads:
                thread.join()
        _log.info("scheduler stopped", owner=self.owner)

    def run_tick(self, name: str, tick: datetime, *, patience: float = 0.0) -> str:
        """Handle ``tick`` of pipeline ``name`` on this replica; returns a ``TickOutcome``.

        A held lease is waited for up to ``patience`` seconds: its holder may be about to
        finish the previous tick, or may have died and its holding be about to expire.
        """

        def done() -> bool:
            last = leases.last_tick(self.engine, name)
            return last is not None and last >= tick

        def record(fence: Fence) -> None:
            leases.record_tick(self.engine, fence, name, tick)

        return self._guarded(name, tick.isoformat(), patience, done, record, TickOutcome.RAN)

    def run_wake(self, name: str, generation: int, *, patience: float | None = None) -> str:
        """Run pipeline ``name`` for the wake-up counter ``generation`` of its source, unless a
        run that read that counter already finished (here or on another replica). A held lease
        is waited for up to ``patience`` seconds (None: as long as it is held)."""
        source = self.sources[name]

        def done() -> bool:
            return wakeups.handled(self.engine, name) >= generation

        seen = {"generation": generation}

        def record(fence: Fence) -> None:
            wakeups.record_handled(self.engine, fence, name, seen["generation"])

        def before() -> None:  # the counter as the run starts: later touches wake it again
            seen["generation"] = max(generation, wakeups.generation_of(self.engine, source))

        wait = float("inf") if patience is None else patience
        label = f"wake {generation}"
        return self._guarded(name, label, wait, done, record, TickOutcome.WOKEN, before=before)

    def _hold(self, name: str, patience: float) -> Fence | None:
        """Take pipeline ``name``: its lock in this process, then its lease in the ledger,
        waiting up to ``patience`` seconds; None when not taken (or the process is stopping)."""
        local = self._local[name]
        lease = leases.lease_name(name)
        deadline = time.monotonic() + patience
        while True:
            held = None
            if local.acquire(blocking=False):
                try:
                    fence = leases.acquire(self.engine, lease, self.owner, self.lease_seconds)
                    if fence is None:
                        held = leases.holding(self.engine, lease)
                except BaseException:
                    local.release()
                    raise
                if fence is not None:
                    return fence
                local.release()
            wait = min(self.poll_seconds, deadline - time.monotonic())
            if held is not None:  # wake when it expires, if that comes first
                wait = min(wait, held.expires_in + 0.01)
            if wait <= 0 or self._stopping.wait(max(wait, 0.01)):
                return None

    def _guarded(  # noqa: PLR0917 - private, called twice
        self,
        name: str,
        label: str,
        patience: float,
        done: Callable[[], bool],
        record: Callable[[Fence], None],
        ran: str,
        *,
        before: Callable[[], None] | None = None,
    ) -> str:
        """Under the lease: skip when ``done``, else run, ``record`` and release."""
        if self.stopping:
            return TickOutcome.STOPPING
        with self._lock:
            paused = self._paused.get(name)
        if paused is not None and datetime.now(UTC) < paused:
            return TickOutcome.BUDGET
        fence = self._hold(name, patience)
        if fence is None:
            return TickOutcome.HELD
        finished: dict[str, Any] | None = None
        did_run = False
        try:
            if done():
                return TickOutcome.DONE
            if before is not None:
                before()
            stop = threading.Event()
            with self._lock:
                if self.stopping:
                    return TickOutcome.STOPPING
                self._active[name] = stop
            try:
                did_run = True
                finished = self._run(name, label, fence, stop, record)
            finally:
                with self._lock:
                    self._active.pop(name, None)
            return ran
        finally:
            try:
                leases.release(self.engine, fence)
            except Exception as exc:  # noqa: BLE001 - the lease then simply expires
                _log.warning("lease release failed", lease=fence.name, error=type(exc).__name__)
            finally:
                self._local[name].release()
            if finished is not None:  # logged once the lease is free again
                _log.info("tick finished", pipeline=name, tick=label, **finished)
            if did_run:
                self._upkeep(name)

    def _upkeep(self, name: str) -> None:
        """Call ``after_run`` for a finished run of ``name``; its failure is only logged."""
        lost = self._lease_lost.pop(name, False)
        if self.after_run is None:
            return
        try:
            self.after_run(name, lost)
        except Exception as exc:  # noqa: BLE001 - upkeep must not stop the schedule
            _log.warning("upkeep after run failed", pipeline=name, error=type(exc).__name__)

    def _run(
        self,
        name: str,
        label: str,
        fence: Fence,
        stop: threading.Event,
        record: Callable[[Fence], None],
    ) -> dict[str, Any] | None:
        """Run the pipeline under a heartbeat and ``record`` it; what to log when it ends."""
        from sync.pipelines.context import FenceLost

        log = _log.bind(pipeline=name, tick=label, owner=self.owner, fence=fence.token)
        log.info("tick running")
        started = time.monotonic()
        result: RunResult | None = None
        error: str | None = None
        with leases.Heartbeat(self.engine, fence, self.lease_seconds, on_lost=stop.set) as beat:
            try:
                result = self.run(name, fence, stop)
            except FenceLost:
                error = "FenceLost"
                log.error("run lost its lease; another replica took over")
            except Exception as exc:  # one failed run must not stop the schedule
                error = type(exc).__name__
                log.exception("run raised")
        seconds = time.monotonic() - started
        self._pause_at_budget(name, result)
        if self.observer is not None:
            self.observer.run_finished(name, seconds, result, error)
        if beat.lost.is_set() or error == "FenceLost":
            self._lease_lost[name] = True
            return None
        try:
            record(fence)
        except FenceLost:
            log.error("tick not recorded: the lease was taken over")
            self._lease_lost[name] = True
            return None
        return {
            "owner": self.owner,
            "fence": fence.token,
            "state": None if result is None else result.state,
            "seconds": round(seconds, 3),
            "error": error or (None if result is None else result.error),
        }

    def _pause_at_budget(self, name: str, result: RunResult | None) -> None:
        """Skip ``name``'s ticks until its budget frees up when its run stopped at one
        (``sync.budgets``: "budget reached; resumes at ..."); other pipelines of the same
        connection keep their own turn, as their priority may still leave them calls."""
        resume = getattr(result, "resume_at", None)
        error = None if result is None else result.error
        with self._lock:
            if isinstance(resume, datetime) and (error or "").startswith("budget reached"):
                self._paused[name] = resume
            else:
                self._paused.pop(name, None)

    def patience(self, tick: datetime, upcoming: datetime | None, now: datetime) -> float:
        """How long a replica firing ``tick`` at ``now`` waits for a held lease: until a
        margin before the ``upcoming`` tick (a tenth of the interval, at most 1 s), capped by
        ``max_patience``."""
        if upcoming is None:
            return 0.0
        margin = min(NEXT_TICK_MARGIN_SECONDS, (upcoming - tick).total_seconds() / 10)
        wait = max(0.0, (upcoming - now).total_seconds() - margin)
        return wait if self.max_patience is None else min(wait, self.max_patience)

    def _fire(self, name: str) -> None:
        job = self.jobs[name]
        now = datetime.now(UTC)
        tick = tick_at(job.trigger, now, job.lookback)
        if tick is None:
            return
        upcoming = job.trigger.get_next_fire_time(tick, now)
        patience = self.patience(tick, upcoming, now)
        try:
            outcome = self.run_tick(name, tick, patience=patience)
        except Exception as exc:  # noqa: BLE001 - the ledger may be down; try at the next tick
            _log.error(
                "tick failed", pipeline=name, tick=tick.isoformat(), error=type(exc).__name__
            )
            outcome = TickOutcome.FAILED
        if outcome != TickOutcome.RAN:
            _log.debug("tick skipped", pipeline=name, tick=tick.isoformat(), outcome=outcome)
        if self.observer is not None:
            self.observer.tick(name, tick, outcome, self.owner)


class Upkeep:
    """After runs: prune the sync log past its retention (first, then once a day) and evaluate
    the alerts; one evaluation at a time in this process."""

    def __init__(self, config: Config, engine: Engine) -> None:
        from sync.alerts.monitor import AlertMonitor

        self.engine = engine
        self.retention = config.sync_log.keep
        self.monitor = AlertMonitor(config, engine)
        self._lock = threading.Lock()
        self._pruned_at: float | None = None

    def __call__(self, pipeline: str, lease_lost: bool) -> None:
        """What the scheduler calls after a run of ``pipeline``."""
        with self._lock:
            self.prune()
            self.monitor.after_run(pipeline, lease_lost=lease_lost)

    def after_runs(self) -> None:
        """What ``closedloop sync`` calls after its runs; failures are only logged."""
        with self._lock:
            try:
                self.prune()
                self.monitor.evaluate()
            except Exception as exc:  # noqa: BLE001 - the runs' own outcome stands
                _log.warning("upkeep after runs failed", error=type(exc).__name__)

    def prune(self) -> int:
        """Delete sync log steps older than the retention, at most once a day; rows deleted."""
        from sync import synclog
        from sync.ledger.types import utcnow

        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return 0
        self._pruned_at = now
        with self.engine.begin() as conn:
            deleted = synclog.prune(conn, utcnow() - self.retention)
        if deleted:
            _log.info("sync log pruned", deleted=deleted, retention=str(self.retention))
        return deleted
