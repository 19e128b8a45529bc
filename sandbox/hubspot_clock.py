"""The forward-only store clock of the HubSpot and Marketo emulators.

Record timestamps (HubSpot ``createdate``/``hs_lastmodifieddate``, Marketo ``updatedAt`` and
activity dates) come from this clock rather than from the wall clock so that windowed incremental
pulls are testable: tests pin it (``set``) and move it (``advance``); it never runs backwards.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

__all__ = ["StoreClock", "format_iso_ms", "iso_ms", "to_ms"]


class StoreClock:
    """Runs with wall time from a base, or stands still when frozen; never goes back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base = datetime.now(UTC)
        self._started = time.monotonic()
        self._frozen = False
        self._last = self._base

    def now(self) -> datetime:
        """The current store time (UTC, never earlier than any earlier answer)."""
        with self._lock:
            if self._frozen:
                current = self._base
            else:
                current = self._base + timedelta(seconds=time.monotonic() - self._started)
            self._last = max(self._last, current)
            return self._last

    def set(self, moment: datetime, *, frozen: bool = True) -> None:
        """Move the clock to ``moment`` (not earlier than now); frozen clocks move only by hand."""
        current = self.now()
        if moment.tzinfo is None:
            raise ValueError("the store clock needs a timezone-aware datetime")
        if moment < current:
            raise ValueError("the store clock only moves forward")
        self._place(moment, frozen)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` (and freeze it there); returns the new time."""
        if seconds < 0:
            raise ValueError("the store clock only moves forward")
        moment = self.now() + timedelta(seconds=seconds)
        self._place(moment, True)
        return moment

    def rebase(self, moment: datetime, *, frozen: bool = False) -> None:
        """Restart the clock at ``moment``, even in the past (a store reload or reset)."""
        with self._lock:
            self._last = moment
        self._place(moment, frozen)

    def _place(self, moment: datetime, frozen: bool) -> None:
        with self._lock:
            self._base = moment.astimezone(UTC)
            self._started = time.monotonic()
            self._frozen = frozen
            self._last = max(self._last, self._base)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, the unit HubSpot and Marketo timestamps use."""
    return int(moment.timestamp() * 1000)


def format_iso_ms(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as HubSpot writes datetimes (uncached)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# Record stamps repeat (a batch shares one moment); values written by clients rarely do, so
# those go through ``format_iso_ms`` and leave this cache to the stamps.
iso_ms = lru_cache(maxsize=4096)(format_iso_ms)
