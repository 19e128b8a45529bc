"""Access tokens and the limits on calls of the Marketo emulator.

``CallLimits`` (mixed into ``marketo_store.MarketoStore``) issues and checks access tokens (600,
601, 602), accounts each call against the rolling rate window (606) and the daily quota (607),
counts calls in flight (615), reports the day's usage and mints request ids.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.hubspot_clock import StoreClock, to_ms
from sandbox.marketo_errors import MarketoError

__all__ = ["MARKETO_TZ", "SCOPE", "CallLimits"]

SCOPE = "closedloop-sandbox@example.com"  # the API-only user owning the custom service
# The bulk extract day (and the API quota day) ends at midnight US Central time.
MARKETO_TZ = ZoneInfo("America/Chicago")


class CallLimits:
    """Tokens and call accounting of one instance; the store sets the state up and resets it."""

    clock: StoreClock
    token_lifetime_s: float
    rate_max: int
    rate_window_s: float
    daily_quota: int
    max_concurrent: int
    in_flight: int
    _guard: threading.Lock
    _tokens: dict[str, float]
    _current: str | None
    _calls: deque[float]
    _daily: int
    _requests: itertools.count[int]

    # ------------------------------------------------------------------ tokens
    def issue_token(self) -> tuple[str, int]:
        """The instance's current access token (a new one once it expired) and its seconds left."""
        now = time.monotonic()
        with self._guard:
            current = self._current
            if current is not None and self._tokens.get(current, 0.0) > now + 1:
                return current, int(self._tokens[current] - now)
            token = f"{uuid.uuid4()}:sb"
            self._tokens[token] = now + self.token_lifetime_s
            self._current = token
            return token, max(0, int(self.token_lifetime_s) - 1)

    def revoke(self, token: str) -> None:
        """Expire ``token`` now (what an expired_token fault does)."""
        with self._guard:
            if token in self._tokens:
                self._tokens[token] = 0.0

    def check_token(self, token: str) -> None:
        """Raise 600/601/602 unless ``token`` is a live access token."""
        if not token:
            raise MarketoError("600", "Access token not specified")
        with self._guard:
            expiry = self._tokens.get(token)
        if expiry is None:
            raise MarketoError("601", "Access token invalid")
        if expiry <= time.monotonic():
            raise MarketoError("602", "Access token expired")

    def take_call(self) -> None:
        """Account one API call against the rolling window and the daily quota (606/607)."""
        now = time.monotonic()
        with self._guard:
            while self._calls and self._calls[0] <= now - self.rate_window_s:
                self._calls.popleft()
            if self._daily >= self.daily_quota:
                raise MarketoError("607", "Daily quota reached")
            if len(self._calls) >= self.rate_max:
                window = f"{self.rate_window_s:g}"
                raise MarketoError(
                    "606", f"Max rate limit '{self.rate_max}' exceeded with in '{window}' secs"
                )
            self._calls.append(now)
            self._daily += 1

    def refund(self) -> None:
        """Give back the last call taken: Marketo does not count calls answered with an error."""
        with self._guard:
            if self._calls:
                self._calls.pop()
            self._daily = max(0, self._daily - 1)

    def usage(self) -> dict[str, Any]:
        """GET /rest/v1/stats/usage.json: today's calls (the API user is the only caller)."""
        with self._guard:
            total = self._daily
        day = self.clock.now().astimezone(MARKETO_TZ).date().isoformat()
        users = [{"userId": SCOPE, "count": total}] if total else []
        return {"result": [{"date": day, "total": total, "users": users}]}

    def enter(self) -> bool:
        """Mark one request in flight; False when that exceeds ``max_concurrent`` (615)."""
        with self._guard:
            self.in_flight += 1
            return self.in_flight <= self.max_concurrent

    def leave(self) -> None:
        """The request is answered."""
        with self._guard:
            self.in_flight -= 1

    def request_id(self) -> str:
        """A Marketo-style request id."""
        return f"{next(self._requests):x}#{to_ms(self.clock.now()):x}"
