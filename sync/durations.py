"""Durations as the config file writes them: ``30s``, ``15m``, ``2h``, ``1d`` or combinations
(``1h30m``). The config's sections and the alerts' triggers read them through this one parser.

(Mapping files have their own lifecycle durations, ``sync.mapping.model.parse_duration``: weeks
to minutes, as SLA agreements are written.)
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

__all__ = ["duration_text", "parse_duration"]

_DURATION = re.compile(r"(?:\d+[smhd])+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``1d`` or combinations (``1h30m``) as a timedelta."""
    compact = text.strip()
    if not _DURATION.fullmatch(compact):
        raise ValueError("expected a duration such as 30s, 15m, 2h or 1d")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(compact))
    if seconds <= 0:
        raise ValueError("expected a duration greater than zero")
    return timedelta(seconds=seconds)


def duration_text(value: Any) -> str:
    """A pydantic before-validator: ``value`` when it is a duration, stripped."""
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 15m, 2h or 1d")
    parse_duration(value)
    return value.strip()
