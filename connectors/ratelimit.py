"""Client-side rate limiters shared by the connectors: call windows, concurrency, daily budgets.

Vendors state their limits as "N calls per W seconds" (Marketo: 100 per 20 s), "at most C calls
in flight" (Marketo: 10) and "D calls per day" (Marketo: 50,000, reset at midnight in the
vendor's time zone). Staying under them is cheaper than being told off: an over-limit call
still costs a round trip and, for some vendors, counts against the daily budget.

Every limiter is thread-safe and takes a ``Clock``, so tests drive time by hand (``ManualClock``)
and never sleep.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from connectors.errors import ConfigError, RateLimited

__all__ = [
    "Clock",
    "ConcurrencyLimiter",
    "DailyQuota",
    "ManualClock",
    "RollingWindowLimiter",
    "SystemClock",
]


class Clock(Protocol):
    """Time as the limiters see it: a monotonic reading, wall time, and a way to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def now(self) -> datetime:
        """The current UTC time (timezone-aware)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` (negative values are ignored)."""
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to: ``sleep`` advances it instantly (for tests, demos)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._mono = 1000.0
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The current reading."""
        with self._lock:
            return self._mono

    def now(self) -> datetime:
        """The current wall time."""
        with self._lock:
            return self._wall

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance time by it at once."""
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds <= 0:
            return
        with self._lock:
            self._mono += seconds
            self._wall += timedelta(seconds=seconds)


class RollingWindowLimiter:
    """At most ``calls`` acquisitions in any ``per_seconds`` window (a sliding log of call times).

    ``hold(seconds)`` blocks every caller for a while: used when the vendor reports the window is
    full even though we counted fewer calls (other integrations share the same budget).
    """

    def __init__(self, calls: int, per_seconds: float, clock: Clock | None = None) -> None:
        if calls < 1 or per_seconds <= 0:
            raise ConfigError(
                f"rate limit must allow at least 1 call per positive period, got {calls} per "
                f"{per_seconds} s"
            )
        self.calls = calls
        self.per_seconds = per_seconds
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self._held_until = 0.0

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.per_seconds:
            self._times.popleft()

    def try_acquire(self) -> float:
        """Take a slot if one is free (returns 0.0); otherwise the seconds until one frees."""
        with self._lock:
            now = self.clock.monotonic()
            if now < self._held_until:
                return self._held_until - now
            self._expire(now)
            if len(self._times) < self.calls:
                self._times.append(now)
                return 0.0
            return self._times[0] + self.per_seconds - now

    def acquire(self) -> float:
        """Wait for a slot and take it; returns the seconds spent waiting."""
        waited = 0.0
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return waited
            self.clock.sleep(wait)
            waited += wait

    def hold(self, seconds: float) -> None:
        """Admit nobody for ``seconds`` from now (extends, never shortens, a current hold)."""
        with self._lock:
            self._held_until = max(self._held_until, self.clock.monotonic() + seconds)

    def time_until_free(self) -> float:
        """Seconds until the oldest call in the window leaves it (a full window if none counted)."""
        with self._lock:
            now = self.clock.monotonic()
            self._expire(now)
            if not self._times:
                return self.per_seconds
            return max(0.0, self._times[0] + self.per_seconds - now)

    def in_window(self) -> int:
        """How many calls the current window holds."""
        with self._lock:
            self._expire(self.clock.monotonic())
            return len(self._times)


class ConcurrencyLimiter:
    """At most ``limit`` holders at a time; ``slot()`` is the context manager around one call."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ConfigError(f"concurrency limit must be at least 1, got {limit}")
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._active = 0
        self.peak = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` slots for the duration of the block (waits for one)."""
        self._semaphore.acquire()
        with self._lock:
            self._active += 1
            self.peak = max(self.peak, self._active)
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
            self._semaphore.release()

    @property
    def active(self) -> int:
        """How many slots are held right now."""
        with self._lock:
            return self._active


class DailyQuota:
    """A daily call budget that resets at local midnight in the vendor's time zone.

    ``spend()`` counts a call, raising ``RateLimited`` (with the reset time) once the budget is
    gone; ``exhaust()`` records that the vendor itself said the budget is gone.
    """

    def __init__(self, limit: int, tz: tzinfo, clock: Clock | None = None, name: str = "") -> None:
        if limit < 1:
            raise ConfigError(f"daily quota must be at least 1 call, got {limit}")
        self.limit = limit
        self.tz = tz
        self.name = name or "daily API quota"
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._day = self._today()
        self._used = 0

    def _today(self) -> str:
        return self.clock.now().astimezone(self.tz).date().isoformat()

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day = today
            self._used = 0

    def resets_at(self) -> datetime:
        """The next local midnight in the vendor's zone, as a UTC time."""
        local = self.clock.now().astimezone(self.tz)
        # Build midnight from the calendar date, not by adding 24 h: DST days last 23 or 25 h.
        tomorrow = local.date() + timedelta(days=1)
        midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=self.tz)
        return midnight.astimezone(UTC)

    def rate_limited(self) -> RateLimited:
        """The error that says the budget is gone until the reset."""
        resume_at = self.resets_at()
        retry_after = max(0.0, (resume_at - self.clock.now()).total_seconds())
        return RateLimited(
            f"{self.name} of {self.limit} calls is used up; it resets at {resume_at.isoformat()}",
            retry_after=retry_after,
            resume_at=resume_at,
        )

    def spend(self, calls: int = 1) -> None:
        """Count ``calls``; raises ``RateLimited`` instead when they would exceed the budget."""
        with self._lock:
            self._roll()
            if self._used + calls > self.limit:
                raise self.rate_limited()
            self._used += calls

    def exhaust(self) -> None:
        """Mark the budget spent for the rest of the vendor's day."""
        with self._lock:
            self._roll()
            self._used = self.limit

    def observe(self, used: int) -> None:
        """Adopt the vendor's own count of calls used today (it includes other integrations)."""
        with self._lock:
            self._roll()
            self._used = max(self._used, used)

    @property
    def used(self) -> int:
        """Calls counted today."""
        with self._lock:
            self._roll()
            return self._used

    @property
    def remaining(self) -> int:
        """Calls left today."""
        return max(0, self.limit - self.used)
