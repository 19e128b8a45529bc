"""Leases with fencing tokens: one holder at a time, takeover on expiry, stale writers refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from sync import leases
from sync.ledger import LeaseRow, make_engine, open_ledger
from sync.pipelines.context import Fence, FenceLost
from tests.conftest import _scratch_database

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@contextmanager
def shared_ledger(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated ledger on the backend ``request.param``, for a whole test module.

    Cheaper than a fresh database per test; tests keep apart by using their own pipeline
    (and lease) names.
    """
    if request.param == "sqlite":
        engine = open_ledger(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    server = request.getfixturevalue("_postgres_server")
    template = request.getfixturevalue("_postgres_ledger_template")
    with _scratch_database(server, template=template) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def ledger(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One ledger per backend for this module."""
    with shared_ledger(request, tmp_path_factory) as engine:
        yield engine


@pytest.fixture
def p() -> str:
    """A pipeline name of this test's own."""
    return f"p-{uuid.uuid4().hex[:10]}"


class FakeClock:
    """A clock the test moves by hand (leases accept one instead of the database's)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def lease_row(engine: Engine, name: str) -> LeaseRow:
    table = LeaseRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.name == name)).one()
    return LeaseRow(**row._mapping)


def test_first_acquire_gets_token_one_and_another_owner_is_refused(ledger: Engine, p: str) -> None:
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)

    assert fence == Fence(name=f"pipeline:{p}", owner="replica-a", token=1)
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60) is None
    assert lease_row(ledger, f"pipeline:{p}").owner == "replica-a"


def test_leases_of_different_pipelines_are_independent(ledger: Engine, p: str) -> None:
    assert leases.acquire(ledger, f"pipeline:{p}-one", "replica-a", 60) is not None
    other = leases.acquire(ledger, f"pipeline:{p}-two", "replica-b", 60)
    assert other is not None
    assert other.token == 1


def test_the_holder_acquiring_again_keeps_its_token(ledger: Engine, p: str) -> None:
    first = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)
    again = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)
    assert first is not None
    assert again == first


def test_an_expired_lease_goes_to_the_next_owner_with_the_next_token(
    ledger: Engine, p: str
) -> None:
    clock = FakeClock()
    first = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 30, clock=clock)
    assert first is not None

    clock.advance(29)
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 30, clock=clock) is None

    clock.advance(2)
    stolen = leases.acquire(ledger, f"pipeline:{p}", "replica-b", 30, clock=clock)
    assert stolen == Fence(f"pipeline:{p}", "replica-b", first.token + 1)


def test_the_token_grows_with_every_new_holding(ledger: Engine, p: str) -> None:
    clock = FakeClock()
    tokens = []
    for owner in ("replica-a", "replica-b", "replica-a", "replica-a"):
        fence = leases.acquire(ledger, f"pipeline:{p}", owner, 10, clock=clock)
        assert fence is not None
        tokens.append(fence.token)
        assert leases.release(ledger, fence, clock=clock)
        clock.advance(1)

    # The same owner coming back after a release is a new holding too.
    assert tokens == [1, 2, 3, 4]


def test_release_lets_another_owner_in_at_once(ledger: Engine, p: str) -> None:
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)
    assert fence is not None
    assert leases.release(ledger, fence)

    taken = leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60)
    assert taken == Fence(f"pipeline:{p}", "replica-b", 2)
    # A second release by the old holder does nothing to the new holding.
    assert not leases.release(ledger, fence)
    assert lease_row(ledger, f"pipeline:{p}").owner == "replica-b"


def test_renewal_keeps_the_lease_and_fails_once_another_owner_took_it(
    ledger: Engine, p: str
) -> None:
    clock = FakeClock()
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 10, clock=clock)
    assert fence is not None

    clock.advance(8)
    assert leases.renew(ledger, fence, 10, clock=clock)
    clock.advance(8)  # 16 s after the acquire, 8 s after the renewal: still held
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 10, clock=clock) is None

    clock.advance(3)
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 10, clock=clock) is not None
    assert not leases.renew(ledger, fence, 10, clock=clock)


def test_the_database_clock_expires_a_lease(ledger: Engine, p: str) -> None:
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 0.2)
    assert fence is not None
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60) is None

    taken = None
    deadline = threading.Event()
    for _ in range(50):
        taken = leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60)
        if taken is not None:
            break
        deadline.wait(0.05)
    assert taken == Fence(f"pipeline:{p}", "replica-b", 2)


def test_a_stale_holders_tick_is_refused_after_a_takeover(ledger: Engine, p: str) -> None:
    clock = FakeClock()
    stale = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 5, clock=clock)
    assert stale is not None
    clock.advance(6)
    fresh = leases.acquire(ledger, f"pipeline:{p}", "replica-b", 5, clock=clock)
    assert fresh is not None

    tick = datetime(2030, 1, 1, 9, 0, 5, tzinfo=UTC)
    with pytest.raises(FenceLost, match="token 2"):
        leases.record_tick(ledger, stale, p, tick)
    assert leases.last_tick(ledger, p) is None

    leases.record_tick(ledger, fresh, p, tick)
    assert leases.last_tick(ledger, p) == tick


def test_a_stale_holders_fenced_transaction_writes_nothing(ledger: Engine, p: str) -> None:
    clock = FakeClock()
    stale = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 5, clock=clock)
    assert stale is not None
    clock.advance(6)
    assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 5, clock=clock) is not None

    table = LeaseRow.__table__  # type: ignore[attr-defined]

    def stale_write() -> None:
        with ledger.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.name == f"pipeline:{p}")
                .values(owner="written-by-stale-holder")
            )
            leases.check_fence(conn, stale)

    with pytest.raises(FenceLost):
        stale_write()
    assert lease_row(ledger, f"pipeline:{p}").owner == "replica-b"


def test_the_last_tick_moves_forward_with_each_record(ledger: Engine, p: str) -> None:
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 60)
    assert fence is not None
    assert leases.last_tick(ledger, p) is None
    for second in (1, 2, 3):
        tick = T0 + timedelta(seconds=second)
        leases.record_tick(ledger, fence, p, tick)
        assert leases.last_tick(ledger, p) == tick


def test_only_one_of_many_concurrent_acquirers_wins(ledger: Engine, p: str) -> None:
    url = ledger.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(6)]
    start = threading.Barrier(len(engines))
    won: list[Fence] = []

    def contend(index: int) -> None:
        start.wait()
        fence = leases.acquire(engines[index], f"pipeline:{p}", f"replica-{index}", 60)
        if fence is not None:
            won.append(fence)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()

    assert len(won) == 1
    assert won[0].token == 1
    assert lease_row(ledger, f"pipeline:{p}").owner == won[0].owner


def test_a_heartbeat_keeps_the_lease_beyond_its_period(ledger: Engine, p: str) -> None:
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 0.6)
    assert fence is not None
    with leases.Heartbeat(ledger, fence, 0.6) as beat:
        for _ in range(6):  # 1.2 s: twice the period
            threading.Event().wait(0.2)
            assert leases.acquire(ledger, f"pipeline:{p}", "replica-b", 60) is None
    assert not beat.lost.is_set()


def test_a_heartbeat_reports_when_another_owner_took_the_lease(ledger: Engine, p: str) -> None:
    fence = leases.acquire(ledger, f"pipeline:{p}", "replica-a", 0.3)
    assert fence is not None
    table = LeaseRow.__table__  # type: ignore[attr-defined]
    lost_called = threading.Event()
    with leases.Heartbeat(ledger, fence, 0.3, on_lost=lost_called.set) as beat:
        with ledger.begin() as conn:  # what a takeover after a long pause looks like
            conn.execute(
                update(table)
                .where(table.c.name == f"pipeline:{p}")
                .values(owner="replica-b", fencing_token=table.c.fencing_token + 1)
            )
        assert beat.lost.wait(5)
    assert lost_called.is_set()


def test_a_lease_period_must_be_positive(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with pytest.raises(ValueError, match="positive"):
        leases.acquire(engine, f"pipeline:{p}", "replica-a", 0)
    engine.dispose()


# --- a holder that is gone -------------------------------------------------------------------

HOLD = """
import sys, time
from sync import leases
from sync.ledger import make_engine
fence = leases.acquire(make_engine(sys.argv[1]), sys.argv[2], leases.process_owner(), 60)
print("held" if fence else "refused", flush=True)
time.sleep(120)
"""


@contextmanager
def holder_process(engine: Engine, name: str) -> Iterator[subprocess.Popen[str]]:
    """Another process of this machine that takes lease ``name`` for 60 s and keeps running."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, engine.url.render_as_string(hide_password=False), name],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


def test_a_lease_whose_holder_process_is_gone_is_taken_at_once(ledger: Engine, p: str) -> None:
    with holder_process(ledger, p) as holder:
        before = lease_row(ledger, p)
        assert leases.acquire(ledger, p, "replica-b", 60) is None  # alive: it keeps it
        holder.kill()
        holder.wait(10)

        fence = leases.acquire(ledger, p, "replica-b", 60)

    assert fence is not None, "the dead holder's 60 s lease was waited out"
    assert fence.token == before.fencing_token + 1
    assert leases.holder_gone(before.owner)


def test_a_killed_holder_not_yet_reaped_counts_as_gone(ledger: Engine, p: str) -> None:
    with holder_process(ledger, p) as holder:
        owner = lease_row(ledger, p).owner
        os.kill(holder.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not leases.holder_gone(owner):  # a zombie: this test has not waited for it
            assert time.monotonic() < deadline, "a killed process never counted as gone"
            time.sleep(0.01)

        assert leases.acquire(ledger, p, "replica-b", 60) is not None


def test_holders_on_another_machine_or_unnamed_are_never_called_gone(
    ledger: Engine, p: str
) -> None:
    remote = f"elsewhere:{2**22 + 7}:abcd1234"  # a pid that cannot exist here
    assert leases.acquire(ledger, p, remote, 60) is not None

    assert leases.acquire(ledger, p, "replica-b", 60) is None
    assert not leases.holder_gone(remote)
    assert not leases.holder_gone("replica-a")
    assert not leases.holder_gone(leases.process_owner())  # this very process


def test_holding_tells_who_holds_the_lease_and_for_how_long(ledger: Engine, p: str) -> None:
    assert leases.holding(ledger, p) is None
    fence = leases.acquire(ledger, p, "replica-a", 30)
    assert fence is not None

    held = leases.holding(ledger, p)

    assert held is not None
    assert (held.owner, held.token) == ("replica-a", fence.token)
    assert 25 < held.expires_in <= 30
    leases.release(ledger, fence)
    assert leases.holding(ledger, p) is None
