"""The one error tree of closedloop, classified by what the engine does next.

::

    ClosedloopError
    ├── ConfigError          fatal: the configuration is wrong; stop and say where
    │   └── MappingError     a mapping file (or a record against it) is wrong; file:line, key path
    ├── AuthError            fatal: credentials rejected or missing; stop the pipeline
    ├── RateLimited          wait `retry_after` seconds (or until `resume_at`) and go on
    ├── Transient            retry with backoff (timeouts, 5xx, dropped connections)
    ├── RecordRejected       dead-letter this one record with its reason, continue the batch
    └── Fatal                anything else the engine cannot recover from

Vendor exceptions (requests, urllib3, httpx, SalesforceError, HubSpot ApiException) are
translated into these at the connector boundary; nothing above ``connectors/`` catches a
vendor type. Messages never carry secret values: build them from field names, not payloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process

__all__ = [
    "AuthError",
    "ClosedloopError",
    "ConfigError",
    "ConfigIssue",
    "Fatal",
    "MappingError",
    "RateLimited",
    "RecordRejected",
    "Transient",
    "did_you_mean",
]


class ClosedloopError(Exception):
    """Base of every error closedloop raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a YAML file, located for a human: file, line, column, key path."""

    file: str
    line: int | None
    column: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        path = self.key_path or "(top level)"
        return f"{where}: {path}: {self.message}"


class ConfigError(ClosedloopError):
    """The configuration cannot be used; carries every issue found, not just the first."""

    exit_code = 2

    def __init__(self, message: str, issues: list[ConfigIssue] | None = None) -> None:
        self.issues: list[ConfigIssue] = list(issues or [])
        if self.issues:
            message = message + "\n" + "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(message)


class MappingError(ConfigError):
    """A mapping file is invalid, or a record cannot be rendered through it."""


class AuthError(ClosedloopError):
    """Credentials are missing, wrong or expired beyond refresh: the pipeline stops."""

    exit_code = 3


class RateLimited(ClosedloopError):
    """The vendor (or our own budget) says wait; ``retry_after`` is in seconds."""

    exit_code = 4

    def __init__(self, message: str, retry_after: float, resume_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.resume_at = resume_at


class Transient(ClosedloopError):
    """A failure that a later attempt may not see: retry with backoff."""

    exit_code = 5


class RecordRejected(ClosedloopError):
    """The vendor refused one record; dead-letter it with ``code`` and go on."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        code: str = "REJECTED",
        key: str | None = None,
        fields: tuple[str, ...] = (),
        payload: dict[str, Any] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.key = key
        self.fields = fields
        self.payload = payload
        # "Not now" (a record still locked after the retries): pending, never a dead letter.
        self.retryable = retryable


class Fatal(ClosedloopError):
    """Unrecoverable: stop the pipeline and report."""

    exit_code = 1


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``choices`` to a misspelt ``word``, or ``""``.

    Closest by rapidfuzz's normalised edit similarity (the scorer the fuzzy account matcher uses
    too), at least 60 of 100: close enough for a typo, not for a different word.
    """
    best = process.extractOne(word, list(choices), scorer=fuzz.ratio, score_cutoff=60)
    return f" (did you mean {best[0]!r}?)" if best else ""
