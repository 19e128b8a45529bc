"""The fault battery's figures: each case records what it injected and what it counted in the
sandbox, and the table is printed at the end of the pytest run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Figure:
    """One case of the battery as measured: what was injected, what the sandbox holds."""

    case: str
    injected: str  # e.g. "20 kills" or "37 x salesforce:429"
    lost: int
    doubled: int
    calls_ratio: float | None  # CRM calls of the case / of a fault-free run of the same data
    seconds: float


FIGURES: list[Figure] = []
# The most CRM calls a case may make, as a multiple of a fault-free run of its data: retries,
# re-reads after kills and settle searches cost something, runaway loops cost more.
MAX_CALLS_RATIO = 3.0


def assert_figure(figure: Figure) -> None:
    """Nothing lost, nothing doubled, and the calls within ``MAX_CALLS_RATIO`` of a clean run."""
    assert (figure.lost, figure.doubled) == (0, 0), figure
    assert figure.calls_ratio is not None, figure
    assert figure.calls_ratio <= MAX_CALLS_RATIO, figure


@pytest.fixture
def figures() -> list[Figure]:
    """Where a case appends its figures (kept for the summary even when the case fails)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The table of the battery's figures, when any case of it ran."""
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault battery figures")
    width = max(len(f.case) for f in FIGURES)
    injected = max(len("kills/faults injected"), *(len(f.injected) for f in FIGURES))
    write(
        f"{'case':<{width}}  {'kills/faults injected':<{injected}}  lost  doubled  "
        "calls ratio  seconds"
    )
    for f in FIGURES:
        ratio = "-" if f.calls_ratio is None else f"{f.calls_ratio:.2f}"
        write(
            f"{f.case:<{width}}  {f.injected:<{injected}}  {f.lost:>4}  {f.doubled:>7}  "
            f"{ratio:>11}  {f.seconds:>7.1f}"
        )
    write(
        f"total: {len(FIGURES)} cases, lost {sum(f.lost for f in FIGURES)}, "
        f"doubled {sum(f.doubled for f in FIGURES)}"
    )
