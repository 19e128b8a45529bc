"""The one retry policy: how every vendor client, and the engine's calls to a CRM, repeat a call.

A ``RetryPolicy`` says, as data, everything that differs between callers:

- ``transient``: which failures a later attempt may not see; they are repeated after an
  exponential backoff (``backoff_s``, doubling, between ``backoff_min_s`` and ``backoff_max_s``)
  until ``attempts`` attempts have failed;
- ``stale`` and ``refresh``: which failures fresh credentials may cure, and how to get them; the
  call is then repeated once at once (``refresh_is_attempt``: whether that attempt counts
  against ``attempts`` and the backoff);
- ``before_attempt``: what runs before every attempt (a budget check, a rate-limit slot, a
  login); what it raises ends the call, never repeated;
- ``sleep``: how to wait (tests pass a fake).

An attempt that has done its own waiting (a vendor's rate-limit interval) raises ``RepeatNow``:
repeated at once, counted as an attempt, bounded by the attempt itself. Anything else ends the
call with the exception the last attempt raised. Built on tenacity: ``retrying()`` is a
``tenacity.Retrying`` (``for attempt in policy.retrying(): with attempt: ...``), ``call`` runs a
function under it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from tenacity import RetryCallState, Retrying, TryAgain, stop_never

from connectors.errors import Transient

__all__ = ["RepeatNow", "RetryPolicy", "is_transient"]

P = ParamSpec("P")
T = TypeVar("T")


class RepeatNow(TryAgain):
    """Raised by an attempt that has waited already (a rate-limit hold): repeat it at once."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``Transient`` (the default of ``RetryPolicy.transient``)."""
    return isinstance(exc, Transient)


def _never(_exc: BaseException) -> bool:
    return False


def _time_sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so a patched time.sleep is honoured


@dataclass(frozen=True)
class RetryPolicy:
    """How one kind of call is repeated (see the module docstring)."""

    attempts: int
    backoff_s: float
    backoff_max_s: float = math.inf
    backoff_min_s: float = 0.0
    transient: Callable[[BaseException], bool] = is_transient
    stale: Callable[[BaseException], bool] = _never
    refresh: Callable[[], None] | None = None
    refresh_is_attempt: bool = False
    before_attempt: Callable[[], None] | None = None
    sleep: Callable[[float], None] = _time_sleep

    def backoff(self, failed: int) -> float:
        """The wait after the ``failed``-th counted failure (1 for the first)."""
        doubled: int = 2 ** (failed - 1)
        return max(self.backoff_min_s, min(self.backoff_s * doubled, self.backoff_max_s))

    def retrying(self) -> Retrying:
        """A tenacity ``Retrying`` for one call under this policy (it holds that call's state)."""
        run = _Run(self)
        return Retrying(
            retry=run.repeat,
            stop=stop_never,  # ``repeat`` counts the attempts; RepeatNow is bounded by its caller
            wait=run.wait,
            before=run.before,
            before_sleep=run.before_sleep,
            sleep=run.sleep,
            reraise=True,
        )

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` under this policy."""
        result: T = self.retrying()(fn, *args, **kwargs)
        return result


class _Run:
    """One call's state: whether it refreshed, the attempts that do not count, the next wait."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.refreshed = False
        self.refreshing = False
        self.uncounted = 0
        self.backing_off = False

    def before(self, _state: RetryCallState) -> None:
        self.backing_off = False
        if self.policy.before_attempt is not None:
            self.policy.before_attempt()

    def repeat(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is None:
            return False
        policy = self.policy
        if policy.refresh is not None and not self.refreshed and policy.stale(exc):
            self.refreshed = self.refreshing = True
            self.uncounted += 0 if policy.refresh_is_attempt else 1
            return True
        if policy.transient(exc) and self._counted(state) < policy.attempts:
            self.backing_off = True
            return True
        return False

    def _counted(self, state: RetryCallState) -> int:
        return state.attempt_number - self.uncounted

    def wait(self, state: RetryCallState) -> float:
        return self.policy.backoff(self._counted(state)) if self.backing_off else 0.0

    def before_sleep(self, _state: RetryCallState) -> None:
        if self.refreshing and self.policy.refresh is not None:
            self.refreshing = False
            self.policy.refresh()

    def sleep(self, seconds: float) -> None:
        # A refresh or a RepeatNow goes again at once: no call to the sleep at all.
        if self.backing_off:
            self.policy.sleep(seconds)
