"""The one retry policy: attempts, backoff, refresh once, what is never repeated."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.errors import AuthError, RateLimited, Transient
from connectors.retry import RepeatNow, RetryPolicy


class Script:
    """A call that fails with the given exceptions, in order, then answers "done"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s")


def test_a_transient_failure_is_repeated_with_doubling_waits_until_the_attempts_run_out() -> None:
    waits: list[float] = []
    call = Script(*(Transient(f"down {n}") for n in range(10)))
    policy = RetryPolicy(attempts=4, backoff_s=0.5, sleep=waits.append)

    with pytest.raises(Transient, match="down 3"):
        policy.call(call)

    assert call.calls == 4
    assert waits == [0.5, 1.0, 2.0]


def test_the_waits_stay_between_the_floor_and_the_cap() -> None:
    waits: list[float] = []
    policy = RetryPolicy(
        attempts=7, backoff_s=1.0, backoff_min_s=3.0, backoff_max_s=10.0, sleep=waits.append
    )
    assert policy.call(Script(*(Transient("down") for _ in range(6)))) == "done"
    assert waits == [3.0, 3.0, 4.0, 8.0, 10.0, 10.0]


def test_a_call_that_recovers_returns_its_answer() -> None:
    waits: list[float] = []
    call = Script(Transient("blip"))
    assert RetryPolicy(attempts=3, backoff_s=0.0, sleep=waits.append).call(call) == "done"
    assert call.calls == 2
    assert waits == [0.0]  # a zero backoff still goes through the sleep (fakes count the waits)


@pytest.mark.parametrize("failure", [AuthError("no"), RateLimited("wait", 5.0), ValueError("bug")])
def test_what_is_not_transient_is_never_repeated(failure: Exception) -> None:
    waits: list[float] = []
    call = Script(failure)
    with pytest.raises(type(failure)):
        RetryPolicy(attempts=5, backoff_s=1.0, sleep=waits.append).call(call)
    assert call.calls == 1
    assert waits == []


def test_one_attempt_means_no_repeat() -> None:
    call = Script(Transient("down"))
    with pytest.raises(Transient):
        RetryPolicy(attempts=1, backoff_s=1.0, sleep=never_sleep).call(call)
    assert call.calls == 1


def test_transient_is_data_a_vendor_may_narrow() -> None:
    call = Script(Transient("maybe applied"))
    policy = RetryPolicy(attempts=3, backoff_s=1.0, transient=lambda _exc: False)
    with pytest.raises(Transient):
        policy.call(call)
    assert call.calls == 1


def test_stale_credentials_are_refreshed_once_without_waiting_and_the_call_repeated() -> None:
    waits: list[float] = []
    refreshes: list[int] = []
    call = Script(AuthError("expired"), AuthError("expired again"))
    policy = RetryPolicy(
        attempts=5,
        backoff_s=1.0,
        stale=lambda exc: isinstance(exc, AuthError),
        refresh=lambda: refreshes.append(call.calls),
        sleep=waits.append,
    )

    with pytest.raises(AuthError, match="expired again"):
        policy.call(call)

    assert call.calls == 2
    assert refreshes == [1]  # after the first failure, before the second attempt
    assert waits == []


def test_without_a_way_to_refresh_stale_credentials_end_the_call() -> None:
    call = Script(AuthError("expired"))
    policy = RetryPolicy(attempts=5, backoff_s=1.0, stale=lambda _exc: True)
    with pytest.raises(AuthError):
        policy.call(call)
    assert call.calls == 1


@pytest.mark.parametrize(("refresh_is_attempt", "calls", "waits"), [(False, 4, [1.0, 2.0]),
                                                                   (True, 3, [2.0])])  # fmt: skip
def test_a_refresh_counts_against_the_attempts_only_when_the_vendor_says_so(
    refresh_is_attempt: bool, calls: int, waits: list[float]
) -> None:
    slept: list[float] = []
    call = Script(AuthError("expired"), *(Transient("down") for _ in range(5)))
    policy = RetryPolicy(
        attempts=3,
        backoff_s=1.0,
        stale=lambda exc: isinstance(exc, AuthError),
        refresh=lambda: None,
        refresh_is_attempt=refresh_is_attempt,
        sleep=slept.append,
    )
    with pytest.raises(Transient):
        policy.call(call)
    assert call.calls == calls
    assert slept == waits


def test_before_attempt_runs_before_every_attempt_and_what_it_raises_is_not_repeated() -> None:
    budget = [2]
    call = Script(Transient("down"), Transient("down"), Transient("down"))

    def spend() -> None:
        if budget[0] == 0:
            raise Transient("budget spent")  # even a Transient: the hook is not the call
        budget[0] -= 1

    policy = RetryPolicy(attempts=5, backoff_s=0.0, before_attempt=spend, sleep=lambda _s: None)
    with pytest.raises(Transient, match="budget spent"):
        policy.call(call)
    assert call.calls == 2


def test_repeat_now_goes_again_at_once_and_counts_as_an_attempt() -> None:
    waits: list[float] = []
    call = Script(RepeatNow(), RepeatNow(), Transient("down"), Transient("down"))
    policy = RetryPolicy(attempts=4, backoff_s=1.0, sleep=waits.append)
    with pytest.raises(Transient):
        policy.call(call)
    assert call.calls == 4
    assert waits == [4.0]  # the third attempt's backoff; the repeats at once never sleep


def test_a_generator_under_the_policy_can_be_closed_early() -> None:
    def pages() -> Iterator[int]:
        for attempt in RetryPolicy(attempts=3, backoff_s=0.0).retrying():
            with attempt:
                yield from range(10)
                return

    reader = pages()
    assert next(reader) == 0
    reader.close()  # GeneratorExit is not a failure to repeat: no RuntimeError
