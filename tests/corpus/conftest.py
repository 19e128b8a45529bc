"""The size of the corpus, reported at the end of a run that counted it."""

from __future__ import annotations

from typing import Any

# Cases per folder, filled by the test that counts the corpus.
CORPUS_SIZES: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line: the corpus's cases, in all and per folder."""
    if CORPUS_SIZES:
        parts = ", ".join(f"{folder} {n}" for folder, n in CORPUS_SIZES.items())
        terminalreporter.write_line(
            f"corpus of bad inputs: {sum(CORPUS_SIZES.values())} cases ({parts})"
        )
