"""The Salesforce emulator's org clock: wall time, shifted to the world's present, or frozen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["StoreClock"]


class StoreClock:
    """The org's clock: wall time (shifted by ``rebase``) unless frozen by a test; it never goes
    backwards except on ``rebase``."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._last: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The current org time (UTC), never earlier than any time returned before."""
        current = self._frozen or datetime.now(UTC) + self._offset
        if self._last is not None and current < self._last:
            current = self._last
        self._last = current
        return current

    def set(self, moment: datetime) -> None:
        """Freeze the clock at ``moment``; moving it backwards is refused."""
        moment = moment.astimezone(UTC)
        if self._last is not None and moment < self._last:
            raise ValueError("the sandbox clock only moves forward")
        self._frozen = moment
        self._last = moment

    def advance(self, delta: timedelta) -> datetime:
        """Freeze the clock ``delta`` after the current org time; returns the new time."""
        target = self.now() + delta
        self.set(target)
        return target

    def release(self) -> None:
        """Run on again (still never going backwards)."""
        self._frozen = None

    def rebase(self, moment: datetime) -> None:
        """Restart the clock at ``moment``, even in the past, running on from there (a world
        load: the org's present is the world's ``now``)."""
        moment = moment.astimezone(UTC)
        self._offset = moment - datetime.now(UTC)
        self._frozen = None
        self._last = moment
