"""What every corpus case shares: its manifest, a per-case time limit, the CLI as a user runs it."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from sandbox.server import SandboxServer
from sync.cli import main

CORPUS = Path(__file__).parent
# No case may take longer (a hang is a failure, not a stuck test run).
CASE_SECONDS = 20.0
POISON = "needs poison branch"
APIS = ("salesforce", "hubspot", "marketo")


@dataclass(frozen=True)
class YamlCase:
    """A config or mapping file whose first lines say what it must get."""

    path: Path
    about: str
    exit_code: int
    at: str  # "line:col"
    message: str

    @classmethod
    def read(cls, path: Path) -> YamlCase:
        head = path.read_bytes().split(b"\n", 4)[:4]
        lines = [line.decode("utf-8").removeprefix("# ") for line in head]
        fields = dict(line.split(": ", 1) for line in lines[1:])
        return cls(
            path, lines[0], int(fields["expect-exit"]), fields["expect-at"], fields["expect"]
        )


def yaml_cases(folder: str) -> list[Any]:
    """Every case of ``folder`` as a pytest param named after its file."""
    return [
        pytest.param(YamlCase.read(p), id=p.stem) for p in sorted((CORPUS / folder).glob("*.yaml"))
    ]


def json_cases(folder: str) -> list[Any]:
    """Every ``*.json`` case of ``folder`` as a pytest param; ``"needs": "poison"`` cases are
    expected to fail until the branch that dead-letters record-level problems is merged."""
    params = []
    for path in sorted((CORPUS / folder).glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        case["name"] = path.stem
        marks = (
            [pytest.mark.xfail(strict=True, reason=POISON)] if case.get("needs") == "poison" else []
        )
        params.append(pytest.param(case, id=path.stem, marks=marks))
    return params


class CaseTimeout(Exception):
    """A corpus case ran past ``CASE_SECONDS``."""


@contextmanager
def time_limit(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Raise CaseTimeout in the test if the block runs longer than ``seconds``."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise CaseTimeout(f"the case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    """Exit code and output of one ``closedloop`` run."""

    code: int
    out: str
    err: str

    def assert_no_crash(self) -> None:
        """A message and an exit code, never a traceback or an unexpected error."""
        both = self.out + self.err
        assert "Traceback" not in both, both
        assert "unexpected error" not in both, both


def closedloop(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    """``closedloop ARGS`` through the real entry point (its error handling included)."""
    capsys.readouterr()
    code = 0
    with time_limit():
        try:
            main(list(args))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def calls(sandbox: SandboxServer) -> dict[str, int]:
    """Calls the sandbox counted, as ``api.endpoint``."""
    return {k: v for k, v in sandbox.state.counts().items() if k.split(".")[0] in APIS}


def new_calls(before: dict[str, int], sandbox: SandboxServer) -> dict[str, int]:
    """Calls made since ``before``, as ``api.endpoint``."""
    after = calls(sandbox)
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
