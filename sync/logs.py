"""structlog configuration: JSON lines when not on a TTY, readable on a TTY, secrets redacted.

The level of a ``closedloop`` command, first found wins: ``--log-level``, then
``CLOSEDLOOP_LOG_LEVEL``, then ``logging.level`` of the config the command loads (``info`` when
the config does not say), then ``warning`` for commands that load no config. The config's
``logging.format`` applies whenever the command loads a config. The CLI calls ``begin_command``
with the flag / environment level (None when neither is given) and ``end_command`` when the
command ends; ``sync.config.load_config`` calls ``config_loaded``, which does nothing outside a
command (library use and tests keep their own logging).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

__all__ = [
    "DEFAULT_LEVEL",
    "REDACTED",
    "SecretRedactor",
    "begin_command",
    "config_loaded",
    "configure_logging",
    "end_command",
    "redact",
    "register_secret",
    "scoped_secrets",
]

REDACTED = "**redacted**"
# A command's level when neither the flag, the environment nor a config names one.
DEFAULT_LEVEL = "warning"

# Keys whose values are secrets wherever they appear in an event.
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api[_-]?key|authorization|session[_-]?id|private[_-]?key"
    r"|client[_-]?secret|security[_-]?token|signature)",
    re.IGNORECASE,
)


class SecretRedactor:
    """A structlog processor that masks known secret keys and every registered secret value."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = {v for v in values if v and len(v) >= 4}

    def add(self, value: str) -> None:
        """Mask ``value`` wherever it appears from now on (short values would mask too much)."""
        if value and len(value) >= 4:
            self._values.add(value)

    def scrub(self, value: Any) -> Any:
        """Return ``value`` with secret values replaced, recursing into containers."""
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        return value

    def _scrub_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        return self.scrub(value)

    def __call__(
        self, _logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._scrub_item(key, event_dict[key])
        return event_dict


_redactor = SecretRedactor()


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line from now on (called for each secret the config loads)."""
    _redactor.add(value)


@contextmanager
def scoped_secrets() -> Iterator[None]:
    """Forget, when the block ends, the secrets registered inside it (each test's own config;
    a process that loads one config keeps its secrets for good)."""
    before = set(_redactor._values)
    try:
        yield
    finally:
        _redactor._values = before


def redact(value: Any) -> Any:
    """``value`` with every registered secret masked (text the ledger keeps: the sync log)."""
    return _redactor.scrub(value)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Set up structlog (and stdlib logging through it) once for the process."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    # httpx logs full request URLs at INFO; Marketo's token request carries the client secret
    # in its query string, so keep those records out of the logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Look sys.stderr up per logger, not once: tests and tools swap it out and close it.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


@dataclass
class _Command:
    """The logging choices of the running CLI command."""

    level: str | None  # from --log-level or CLOSEDLOOP_LOG_LEVEL; None: the config decides


_command: _Command | None = None


def begin_command(level: str | None) -> None:
    """A command starts: log at ``level`` (flag or environment) or the default until it loads a
    config."""
    global _command  # noqa: PLW0603 - one command per process at a time
    _command = _Command(level.lower() if level else None)
    configure_logging(_command.level or DEFAULT_LEVEL)


def config_loaded(level: str, fmt: str) -> None:
    """The running command loaded a config: its ``logging`` section applies, except a level the
    flag or the environment gave."""
    if _command is None:
        return
    configure_logging(_command.level or level, json=None if fmt == "auto" else fmt == "json")


def end_command() -> None:
    """The command ended: later config loads (tests, library use) leave logging alone."""
    global _command  # noqa: PLW0603 - one command per process at a time
    _command = None
