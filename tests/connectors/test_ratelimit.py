"""The shared rate limiters, driven by a manual clock: no test sleeps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from connectors.errors import ConfigError, RateLimited
from connectors.ratelimit import ConcurrencyLimiter, DailyQuota, ManualClock, RollingWindowLimiter

CHICAGO = ZoneInfo("America/Chicago")


def test_window_admits_its_quota_then_waits_until_the_oldest_call_leaves() -> None:
    clock = ManualClock()
    limiter = RollingWindowLimiter(100, 20.0, clock)
    for _ in range(100):
        assert limiter.acquire() == 0.0
    clock.advance(5.0)
    waited = limiter.acquire()
    assert waited == pytest.approx(15.0)
    assert clock.sleeps == [pytest.approx(15.0)]
    assert limiter.in_window() == 1  # the 100 early calls left the window, the new one is in


def test_window_frees_slots_one_by_one_as_calls_age_out() -> None:
    clock = ManualClock()
    limiter = RollingWindowLimiter(3, 10.0, clock)
    for step in range(3):
        limiter.acquire()
        clock.advance(2.0 if step < 2 else 1.0)
    # Calls at t=0, 2, 4; now t=5: the first frees at t=10.
    assert limiter.try_acquire() == pytest.approx(5.0)
    clock.advance(5.0)
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(2.0)


def test_hold_blocks_every_caller_even_with_free_slots() -> None:
    clock = ManualClock()
    limiter = RollingWindowLimiter(100, 20.0, clock)
    limiter.acquire()
    limiter.hold(limiter.time_until_free())
    assert limiter.try_acquire() == pytest.approx(20.0)
    limiter.acquire()
    assert sum(clock.sleeps) == pytest.approx(20.0)


def test_window_counts_exactly_under_many_threads() -> None:
    clock = ManualClock()
    limiter = RollingWindowLimiter(200, 20.0, clock)

    def worker() -> None:
        for _ in range(50):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limiter.in_window() == 200
    assert clock.sleeps == []
    assert limiter.try_acquire() > 0


def test_concurrency_limiter_never_admits_more_than_its_limit() -> None:
    limiter = ConcurrencyLimiter(2)
    gate = threading.Event()
    entered = threading.Semaphore(0)

    def worker() -> None:
        with limiter.slot():
            entered.release()
            gate.wait()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    assert entered.acquire(timeout=5)
    assert entered.acquire(timeout=5)
    assert not entered.acquire(timeout=0.1)  # the third caller is still waiting
    assert limiter.active == 2
    gate.set()
    for thread in threads:
        thread.join()
    assert limiter.peak == 2
    assert limiter.active == 0


def test_daily_quota_runs_out_with_the_reset_time_at_central_midnight() -> None:
    # 2026-07-01 20:00 UTC is 15:00 CDT; the quota resets at 2026-07-02 00:00 CDT = 05:00 UTC.
    clock = ManualClock(datetime(2026, 7, 1, 20, 0, tzinfo=UTC))
    quota = DailyQuota(3, CHICAGO, clock)
    quota.spend(3)
    with pytest.raises(RateLimited) as caught:
        quota.spend()
    assert caught.value.resume_at == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)
    assert caught.value.retry_after == pytest.approx(9 * 3600)
    clock.advance(9 * 3600)
    quota.spend()
    assert quota.used == 1


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        # Standard time (CST, UTC-6) to daylight time: midnight stays local midnight.
        (datetime(2026, 3, 7, 23, 0, tzinfo=UTC), datetime(2026, 3, 8, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 8, 12, 0, tzinfo=UTC), datetime(2026, 3, 9, 5, 0, tzinfo=UTC)),
        # Just before midnight CST in winter.
        (datetime(2026, 1, 15, 5, 59, tzinfo=UTC), datetime(2026, 1, 15, 6, 0, tzinfo=UTC)),
    ],
)
def test_daily_quota_reset_follows_chicago_daylight_saving(now: datetime, reset: datetime) -> None:
    assert DailyQuota(10, CHICAGO, ManualClock(now)).resets_at() == reset


def test_exhausted_quota_refuses_calls_until_the_reset_and_adopts_vendor_counts() -> None:
    clock = ManualClock(datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    quota = DailyQuota(1000, CHICAGO, clock)
    quota.observe(400)
    assert quota.remaining == 600
    quota.exhaust()
    with pytest.raises(RateLimited):
        quota.spend()
    clock.advance(24 * 3600)
    assert quota.remaining == 1000


def test_limiters_reject_impossible_limits() -> None:
    with pytest.raises(ConfigError):
        RollingWindowLimiter(0, 20.0)
    with pytest.raises(ConfigError):
        ConcurrencyLimiter(0)
    with pytest.raises(ConfigError):
        DailyQuota(0, CHICAGO)
