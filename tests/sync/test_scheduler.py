"""The scheduler: ticks anchored alike in every replica, each tick run once, clean stops."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from sync import leases, wakeups
from sync.config import Pipeline, Schedule
from sync.ledger import LeaseRow
from sync.pipelines.context import Fence
from sync.scheduler import (
    PipelineScheduler,
    RunResult,
    TickOutcome,
    pipeline_trigger,
    tick_at,
)
from tests.sync.test_leases import shared_ledger

TICK = datetime(2030, 1, 1, 9, 0, 0, tzinfo=UTC)


def every(duration: str, *, enabled: bool = True) -> Pipeline:
    return Pipeline(
        kind="dispositions", source="crm", schedule=Schedule(every=duration), enabled=enabled
    )


@dataclass
class Done:
    state: str = "succeeded"
    api_calls: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Journal:
    """A pipeline stand-in that notes who ran it with which fence (the scheduler is under test)."""

    runs: list[tuple[str, Fence]] = field(default_factory=list)
    action: Callable[[str, Fence, threading.Event], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, name: str, fence: Fence, stop: threading.Event) -> RunResult:
        if self.action is not None:
            self.action(name, fence, stop)
        with self.lock:
            self.runs.append((name, fence))
        return Done()


@dataclass
class Ticks:
    """A scheduler observer that keeps every (pipeline, tick, outcome, owner)."""

    seen: list[tuple[str, datetime, str, str]] = field(default_factory=list)
    finished: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def tick(self, pipeline: str, tick: datetime, outcome: str, owner: str) -> None:
        with self.changed:
            self.seen.append((pipeline, tick, outcome, owner))
            self.changed.notify_all()

    def run_finished(
        self,
        pipeline: str,
        seconds: float,  # noqa: ARG002 - part of the observer protocol
        result: RunResult | None,  # noqa: ARG002
        error: str | None,
    ) -> None:
        with self.lock:
            self.finished.append((pipeline, error))

    def ran(self) -> list[tuple[str, datetime, str]]:
        with self.changed:
            return [(p, t, o) for p, t, outcome, o in self.seen if outcome == TickOutcome.RAN]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), f"timed out; seen {self.seen}"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def ledger(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One ledger per backend for this module (tests use pipeline names of their own)."""
    with shared_ledger(request, tmp_path_factory) as engine:
        yield engine


@pytest.fixture
def p() -> str:
    """A pipeline name of this test's own."""
    return f"p-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def schedulers() -> Iterator[list[PipelineScheduler]]:
    """Schedulers made by a test; all stopped after it."""
    made: list[PipelineScheduler] = []
    yield made
    for scheduler in made:
        scheduler.stop()


# --- ticks ------------------------------------------------------------------------------------


def test_interval_ticks_fall_on_the_same_instants_in_every_replica() -> None:
    trigger = pipeline_trigger(Schedule(every="15m"))
    late_start = datetime(2030, 1, 1, 9, 7, 31, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, late_start)
    assert fire == datetime(2030, 1, 1, 9, 15, tzinfo=UTC)
    assert tick_at(trigger, late_start, timedelta(minutes=30)) == datetime(
        2030, 1, 1, 9, 0, tzinfo=UTC
    )


def test_the_tick_of_a_job_is_the_latest_fire_time_not_after_now() -> None:
    trigger = pipeline_trigger(Schedule(every="1s"))
    now = TICK + timedelta(milliseconds=350)
    assert tick_at(trigger, now, timedelta(seconds=31)) == TICK
    assert tick_at(trigger, TICK, timedelta(seconds=31)) == TICK


def test_cron_ticks_follow_the_cron_expression() -> None:
    trigger = pipeline_trigger(Schedule(cron="*/5 * * * *"))
    now = datetime(2030, 1, 1, 9, 12, 40, tzinfo=UTC)
    assert tick_at(trigger, now, timedelta(minutes=10)) == datetime(2030, 1, 1, 9, 10, tzinfo=UTC)


def test_only_enabled_pipelines_with_a_schedule_get_a_job(ledger: Engine, p: str) -> None:
    pipelines = {
        "scheduled": every("1m"),
        "disabled": every("1m", enabled=False),
        "manual": Pipeline(kind="dispositions", source="crm"),
    }
    scheduler = PipelineScheduler(ledger, pipelines, Journal())
    assert sorted(scheduler.jobs) == ["scheduled"]


# --- one tick ---------------------------------------------------------------------------------


def test_a_tick_runs_once_even_when_a_second_replica_fires_after_the_first_finished(
    ledger: Engine, p: str
) -> None:
    journal = Journal()
    first = PipelineScheduler(ledger, {p: every("1s")}, journal, owner="replica-a")
    second = PipelineScheduler(ledger, {p: every("1s")}, journal, owner="replica-b")

    assert first.run_tick(p, TICK) == TickOutcome.RAN
    assert second.run_tick(p, TICK) == TickOutcome.DONE
    assert first.run_tick(p, TICK) == TickOutcome.DONE
    assert second.run_tick(p, TICK + timedelta(seconds=1)) == TickOutcome.RAN

    assert [fence.owner for _, fence in journal.runs] == ["replica-a", "replica-b"]
    assert leases.last_tick(ledger, p) == TICK + timedelta(seconds=1)


def test_a_replica_skips_the_tick_while_another_holds_the_lease(ledger: Engine, p: str) -> None:
    journal = Journal()
    replica = PipelineScheduler(ledger, {p: every("1s")}, journal, owner="replica-b")
    holder = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)
    assert holder is not None

    assert replica.run_tick(p, TICK) == TickOutcome.HELD
    assert journal.runs == []


def test_a_replica_waits_for_a_holder_finishing_the_previous_tick(ledger: Engine, p: str) -> None:
    journal = Journal()
    replica = PipelineScheduler(ledger, {p: every("1s")}, journal, owner="replica-b")
    holder = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)
    assert holder is not None
    finishing = threading.Timer(0.3, leases.release, args=(ledger, holder))
    finishing.start()

    assert replica.run_tick(p, TICK, patience=10) == TickOutcome.RAN
    finishing.join()
    assert [fence.owner for _, fence in journal.runs] == ["replica-b"]


def test_the_run_gets_the_fence_and_the_lease_is_released_after_it(ledger: Engine, p: str) -> None:
    journal = Journal()
    scheduler = PipelineScheduler(ledger, {p: every("1s")}, journal, owner="replica-a")

    assert scheduler.run_tick(p, TICK) == TickOutcome.RAN
    [(name, fence)] = journal.runs
    assert (name, fence.name, fence.owner) == (p, f"pipeline:{p}", "replica-a")
    # Released: another owner gets it at once, with the next token.
    after = leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60)
    assert after is not None
    assert after.token == fence.token + 1


def test_a_run_whose_lease_was_taken_over_does_not_record_its_tick(ledger: Engine, p: str) -> None:
    table = LeaseRow.__table__  # type: ignore[attr-defined]

    def taken_over(_name: str, _fence: Fence, _stop: threading.Event) -> None:
        with ledger.begin() as conn:  # a replica took over while this one was paused
            conn.execute(
                update(table)
                .where(table.c.name == f"pipeline:{p}")
                .values(owner="replica-b", fencing_token=table.c.fencing_token + 1)
            )

    scheduler = PipelineScheduler(
        ledger, {p: every("1s")}, Journal(action=taken_over), owner="replica-a"
    )
    assert scheduler.run_tick(p, TICK) == TickOutcome.RAN
    assert leases.last_tick(ledger, p) is None


def test_a_failing_run_still_counts_its_tick_and_the_next_tick_runs(ledger: Engine, p: str) -> None:
    calls: list[datetime] = []

    def explode(_name: str, _fence: Fence, _stop: threading.Event) -> None:
        calls.append(datetime.now(UTC))
        if len(calls) == 1:
            raise RuntimeError("boom")

    ticks = Ticks()
    scheduler = PipelineScheduler(ledger, {p: every("1s")}, Journal(action=explode), observer=ticks)
    assert scheduler.run_tick(p, TICK) == TickOutcome.RAN
    assert scheduler.run_tick(p, TICK) == TickOutcome.DONE
    assert scheduler.run_tick(p, TICK + timedelta(seconds=1)) == TickOutcome.RAN
    assert ticks.finished == [(p, "RuntimeError"), (p, None)]


# --- the scheduler thread ---------------------------------------------------------------------


def test_two_replicas_on_one_ledger_run_every_tick_exactly_once(
    ledger: Engine, p: str, schedulers: list[PipelineScheduler]
) -> None:
    ticks = Ticks()
    pipelines = {f"{p}-alpha": every("1s"), f"{p}-beta": every("1s")}
    for owner in ("replica-a", "replica-b"):
        scheduler = PipelineScheduler(
            ledger, pipelines, Journal(), owner=owner, lease_seconds=5, observer=ticks
        )
        schedulers.append(scheduler)
        scheduler.start()

    # Both replicas have reported on 4 ticks of both pipelines.
    ticks.wait_for(lambda: len(ticks.seen) >= 2 * 2 * 4)
    for scheduler in schedulers:
        scheduler.stop()

    answered = (TickOutcome.RAN, TickOutcome.HELD, TickOutcome.DONE)
    for pipeline in pipelines:
        ran = sorted(t for p, t, _ in ticks.ran() if p == pipeline)
        assert len(ran) == len(set(ran)), f"{pipeline}: a tick ran twice: {ran}"
        handled = sorted(
            {t for p, t, outcome, _ in ticks.seen if p == pipeline and outcome in answered}
        )
        assert ran == handled, f"{pipeline}: ticks without a run: {set(handled) - set(ran)}"
        steps = {b - a for a, b in itertools.pairwise(ran)}
        assert steps == {timedelta(seconds=1)}


def test_stop_lets_the_running_pipeline_finish_and_releases_its_lease(
    ledger: Engine, p: str, schedulers: list[PipelineScheduler]
) -> None:
    started = threading.Event()
    finished: list[bool] = []

    def long_batch(_name: str, _fence: Fence, stop: threading.Event) -> None:
        started.set()
        finished.append(stop.wait(30))  # "finish the current batch" once asked to stop

    scheduler = PipelineScheduler(
        ledger, {p: every("1s")}, Journal(action=long_batch), owner="replica-a"
    )
    schedulers.append(scheduler)
    scheduler.start()
    assert scheduler.running
    assert started.wait(10)

    scheduler.stop()

    assert finished == [True]
    assert not scheduler.running
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60) is not None
    assert leases.last_tick(ledger, p) is not None


def test_a_lost_lease_sets_the_stop_event_of_the_run(ledger: Engine, p: str) -> None:
    table = LeaseRow.__table__  # type: ignore[attr-defined]
    told_to_stop: list[bool] = []

    def paused(_name: str, _fence: Fence, stop: threading.Event) -> None:
        with ledger.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.name == f"pipeline:{p}")
                .values(owner="replica-b", fencing_token=table.c.fencing_token + 1)
            )
        told_to_stop.append(stop.wait(10))

    scheduler = PipelineScheduler(
        ledger,
        {p: every("1s")},
        Journal(action=paused),
        owner="replica-a",
        lease_seconds=0.3,
    )
    assert scheduler.run_tick(p, TICK) == TickOutcome.RAN
    assert told_to_stop == [True]
    assert leases.last_tick(ledger, p) is None


# --- failover ---------------------------------------------------------------------------------


def test_a_replica_waits_for_a_held_lease_until_just_before_its_next_tick(
    ledger: Engine, p: str
) -> None:
    scheduler = PipelineScheduler(ledger, {p: every("20s")}, Journal(), owner="replica-b")
    upcoming = TICK + timedelta(seconds=20)

    assert scheduler.patience(TICK, upcoming, TICK + timedelta(seconds=0.2)) == pytest.approx(18.8)
    assert scheduler.patience(TICK, upcoming, TICK + timedelta(seconds=19.5)) == 0
    assert scheduler.patience(TICK, TICK + timedelta(seconds=1), TICK) == pytest.approx(0.9)
    assert scheduler.patience(TICK, None, TICK) == 0
    capped = PipelineScheduler(ledger, {p: every("20s")}, Journal(), max_patience=5)
    assert capped.patience(TICK, upcoming, TICK) == 5


def test_a_holder_killed_on_another_machine_is_replaced_within_one_lease_period(
    ledger: Engine, p: str
) -> None:
    # The worst case: the holder renewed its lease just before it died, on a machine this
    # replica cannot look into, early in a 20 s interval. Its tick must still run, as soon as
    # the lease expires, not at the next tick (20 s) or after a second period.
    lease_seconds = 3.0
    started: list[float] = []
    replica = PipelineScheduler(
        ledger,
        {p: every("20s")},
        Journal(action=lambda *_: started.append(time.monotonic())),
        owner="replica-b",
        lease_seconds=lease_seconds,
    )
    assert leases.acquire(ledger, f"pipeline:{p}", "elsewhere:4242:dead", lease_seconds)
    killed = time.monotonic()

    now = TICK + timedelta(seconds=0.1)
    outcome = replica.run_tick(
        p, TICK, patience=replica.patience(TICK, TICK + timedelta(seconds=20), now)
    )

    assert outcome == TickOutcome.RAN
    assert len(started) == 1
    failover = started[0] - killed
    assert lease_seconds - 0.1 <= failover <= 1.5 * lease_seconds, f"failover took {failover:.2f} s"
    assert leases.last_tick(ledger, p) == TICK


def test_a_pipeline_stopped_at_its_budget_is_skipped_until_the_resume_time(
    ledger: Engine, p: str
) -> None:
    @dataclass
    class AtBudget(Done):
        resume_at: datetime | None = None

    results = [
        AtBudget("interrupted", error="budget reached; resumes at 2999-01-01 00:00 UTC: ...",
                 resume_at=datetime(2999, 1, 1, tzinfo=UTC)),
    ]  # fmt: skip
    ran: list[str] = []

    def run(name: str, _fence: Fence, _stop: threading.Event) -> RunResult:
        ran.append(name)
        return results.pop(0) if results else Done()

    scheduler = PipelineScheduler(ledger, {p: every("1s")}, run, owner="replica-a")
    assert scheduler.run_tick(p, TICK) == TickOutcome.RAN
    assert scheduler.run_tick(p, TICK + timedelta(seconds=1)) == TickOutcome.BUDGET
    assert ran == [p]  # no run, no call, until the budget frees up
    # Once the resume time has passed, the next tick runs again.
    scheduler._paused[p] = datetime.now(UTC) - timedelta(seconds=1)
    assert scheduler.run_tick(p, TICK + timedelta(seconds=2)) == TickOutcome.RAN
    assert scheduler.run_tick(p, TICK + timedelta(seconds=3)) == TickOutcome.RAN
    assert ran == [p, p, p]


# --- wake-ups ---------------------------------------------------------------------------------


def touches_every(duration: str, source: str) -> Pipeline:
    return Pipeline(kind="touches", source=source, sink="crm", schedule=Schedule(every=duration))


def test_a_wake_up_runs_once_across_replicas_and_a_newer_one_runs_again(
    ledger: Engine, p: str
) -> None:
    journal = Journal()
    source = f"{p}-hooks"
    pipelines = {p: touches_every("1h", source)}
    first = PipelineScheduler(ledger, pipelines, journal, owner="replica-a")
    second = PipelineScheduler(ledger, pipelines, journal, owner="replica-b")
    wakeups.notify(ledger, [source])

    assert first.run_wake(p, 1) == TickOutcome.WOKEN
    assert second.run_wake(p, 1) == TickOutcome.DONE
    wakeups.notify(ledger, [source])  # touches stored after that run read the counter
    assert second.run_wake(p, 2) == TickOutcome.WOKEN
    assert first.run_wake(p, 2) == TickOutcome.DONE

    assert [fence.owner for _, fence in journal.runs] == ["replica-a", "replica-b"]
    assert wakeups.handled(ledger, p) == 2


def test_a_run_records_the_counter_it_started_from_so_later_touches_get_a_follow_up(
    ledger: Engine, p: str
) -> None:
    source = f"{p}-hooks"

    def touched_meanwhile(_name: str, _fence: Fence, _stop: threading.Event) -> None:
        wakeups.notify(ledger, [source])  # a webhook stored while the run goes on

    journal = Journal(action=touched_meanwhile)
    replica = PipelineScheduler(ledger, {p: touches_every("1h", source)}, journal)
    wakeups.notify(ledger, [source])

    assert replica.run_wake(p, 1) == TickOutcome.WOKEN
    assert wakeups.handled(ledger, p) == 1  # not 2: the run may have missed those touches
    assert wakeups.generation_of(ledger, source) == 2
    assert replica.run_wake(p, 2) == TickOutcome.WOKEN


def test_only_scheduled_enabled_touches_pipelines_are_woken_by_their_source(
    ledger: Engine, p: str
) -> None:
    pipelines = {
        f"{p}-a": touches_every("1h", "hooks"),
        f"{p}-b": touches_every("1h", "scans"),
        f"{p}-c": every("1h"),
        f"{p}-d": Pipeline(kind="touches", source="hooks", sink="crm"),
    }
    replica = PipelineScheduler(ledger, pipelines, Journal())
    assert replica.sources == {f"{p}-a": "hooks", f"{p}-b": "scans"}


def test_wake_ups_waiting_when_a_replica_starts_make_one_run(
    ledger: Engine, p: str, schedulers: list[PipelineScheduler]
) -> None:
    source = f"{p}-hooks"
    ticks = Ticks()
    for _ in range(20):  # e.g. imports while no replica was running
        wakeups.notify(ledger, [source])
    replica = PipelineScheduler(
        ledger, {p: touches_every("24h", source)}, Journal(), observer=ticks
    )
    schedulers.append(replica)
    replica.start()
    ticks.wait_for(lambda: any(o == TickOutcome.WOKEN for _p, _t, o, _w in ticks.seen))
    replica.stop()
    woken = [t for _p, t, outcome, _w in ticks.seen if outcome == TickOutcome.WOKEN]
    assert len(woken) == 1
    assert wakeups.handled(ledger, p) == 20
