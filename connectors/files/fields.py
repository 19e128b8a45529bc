"""Field rules shared by the file importer and the webhook receiver: what a valid touch is.

Every inbound value passes through here before it becomes a ``Touch``: emails are checked and
lower-cased, dates become aware UTC, kinds must be ``TouchKind`` values, text must be free of
control characters and within length limits. Failures raise ``FieldError`` with a short
``code`` (stored as the dead letter's code) and a reason a person can act on.

Stable keys without a source id (``hashed_source_id``): the SHA-256 of the identifying fields,
normalised and joined with U+001F::

    email (lower-cased) | kind | occurred_at (UTC, ISO 8601, seconds) | campaign | asset

and written as ``h-`` plus the first 32 hex digits (128 bits). Whitespace around values, the
case of the email and the time zone the time was written in do not change the key, so importing
the same list again (or re-sending the same webhook item) creates nothing new, while two scans of
the same person at different times or booths stay two touches.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from connectors.base import TouchKind

__all__ = [
    "EMAIL_MAX",
    "ID_MAX",
    "TEXT_MAX",
    "FieldError",
    "check_json_value",
    "check_text",
    "escape_undecodable",
    "hashed_source_id",
    "parse_email",
    "parse_kind",
    "parse_occurred_at",
]

EMAIL_MAX = 254  # RFC 5321 path limit
ID_MAX = 255
TEXT_MAX = 1000

# Deliberately simple: one @, no whitespace or control characters, a dotted domain of
# letters/digits/hyphens. Full RFC 5322 (quoted local parts, IP literals) never appears in
# marketing lists and would only let typos through.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
# Tab, LF and CR are legitimate inside a quoted CSV cell (an address, a note); the rest of
# C0, DEL and C1 are not text.
# Category Cc is exactly U+0000-U+001F and U+007F-U+009F; surrogates mean undecodable input.
_BAD_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_FUTURE_SLACK = timedelta(days=1)


class FieldError(ValueError):
    """One field of one record is invalid; ``code`` names the rule, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = message


def escape_undecodable(raw: bytes) -> str:
    """Bytes as text for a dead letter: valid UTF-8 kept, anything else as ``\\xNN`` escapes."""
    return raw.decode("utf-8", errors="backslashreplace")


def _describe_char(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def check_text(field: str, value: str, *, max_len: int = TEXT_MAX, single_line: bool = True) -> str:
    """``value`` stripped, or FieldError for control characters, undecodable bytes or length."""
    found = (_BAD_SINGLE_LINE if single_line else _BAD_MULTI_LINE).search(value)
    if found is not None:
        char = found.group()
        if "\udc80" <= char <= "\udcff":
            # surrogateescape's stand-in for an undecodable byte
            raise FieldError(
                "non_utf8",
                f"{field}: contains a byte that is not valid UTF-8 (0x{ord(char) - 0xDC00:02X})",
            )
        if "\ud800" <= char <= "\udfff":
            raise FieldError(
                "invalid_unicode", f"{field}: contains a lone surrogate {_describe_char(char)}"
            )
        raise FieldError(
            "control_character", f"{field}: contains control character {_describe_char(char)}"
        )
    text = value.strip()
    if len(text) > max_len:
        raise FieldError("too_long", f"{field}: {len(text)} characters, at most {max_len} allowed")
    return text


def parse_email(value: Any, field: str = "email") -> str:
    """A valid, lower-cased email address, or FieldError (missing, wrong type, malformed)."""
    if value is None:
        raise FieldError("missing_email", f"{field}: missing")
    if not isinstance(value, str):
        raise FieldError("wrong_type", f"{field}: expected text, got {_type_name(value)}")
    text = check_text(field, value, max_len=EMAIL_MAX)
    if not text:
        raise FieldError("missing_email", f"{field}: empty")
    if not _EMAIL.match(text) or ".." in text:
        raise FieldError("invalid_email", f"{field}: {_clip(text)!r} is not an email address")
    return text.lower()


def parse_kind(
    value: Any, field: str = "kind", aliases: Mapping[str, str] | None = None
) -> TouchKind:
    """The TouchKind named by ``value`` (after ``aliases``, case-insensitive), or FieldError."""
    if value is None:
        raise FieldError("missing_kind", f"{field}: missing")
    if not isinstance(value, str):
        raise FieldError("wrong_type", f"{field}: expected text, got {_type_name(value)}")
    text = check_text(field, value, max_len=100)
    if aliases:
        folded = {k.strip().casefold(): v for k, v in aliases.items()}
        text = folded.get(text.casefold(), text)
    try:
        return TouchKind(text.strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in TouchKind)
        raise FieldError(
            "unknown_kind", f"{field}: unknown kind {_clip(text)!r}; expected one of {known}"
        ) from None


def parse_occurred_at(
    value: Any,
    field: str = "occurred_at",
    *,
    formats: Sequence[str] = (),
    default_tz: tzinfo = UTC,
    now: datetime | None = None,
    allow_epoch: bool = False,
) -> datetime:
    """An aware UTC datetime from ISO 8601 text, one of ``formats``, or (if allowed) unix seconds.

    Naive times are read in ``default_tz``. Times before 1990 or more than a day after ``now``
    are refused: they are typing errors (a swapped day and year), not marketing activity.
    """
    if value is None:
        raise FieldError("missing_date", f"{field}: missing")
    parsed: datetime | None = None
    if isinstance(value, bool):
        raise FieldError("wrong_type", f"{field}: expected a date, got a boolean")
    if isinstance(value, int | float):
        if not allow_epoch:
            raise FieldError("wrong_type", f"{field}: expected a date as text, got a number")
        if not math.isfinite(value):
            raise FieldError("bad_date", f"{field}: {value!r} is not a time")
        try:
            parsed = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise FieldError("bad_date", f"{field}: {value!r} is out of range") from None
    elif isinstance(value, str):
        text = check_text(field, value, max_len=64)
        if not text:
            raise FieldError("missing_date", f"{field}: empty")
        parsed = _parse_date_text(text, formats)
        if parsed is None:
            expected = ", ".join(formats) if formats else "ISO 8601 (2024-05-01T14:30:00Z)"
            raise FieldError(
                "bad_date", f"{field}: {_clip(text)!r} is not a date; expected {expected}"
            )
    else:
        raise FieldError("wrong_type", f"{field}: expected a date, got {_type_name(value)}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    parsed = parsed.astimezone(UTC)
    current = now or datetime.now(UTC)
    if parsed < _EARLIEST:
        raise FieldError("bad_date", f"{field}: {parsed.date().isoformat()} is before 1990")
    if parsed > current + _FUTURE_SLACK:
        raise FieldError("bad_date", f"{field}: {parsed.isoformat()} is in the future")
    return parsed


def _parse_date_text(text: str, formats: Sequence[str]) -> datetime | None:
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)  # noqa: DTZ007 - zone applied by the caller
        except ValueError:
            continue
    if formats:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def hashed_source_id(
    email: str, kind: TouchKind, occurred_at: datetime, campaign: str | None, asset: str | None
) -> str:
    """The stable id of a record without one: ``h-`` + 128 bits of SHA-256 of its identity."""
    parts = [
        email.strip().lower(),
        kind.value,
        occurred_at.astimezone(UTC).replace(microsecond=0).isoformat(),
        (campaign or "").strip(),
        (asset or "").strip(),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return "h-" + digest[:32]


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_json_value(value: Any, field: str, *, depth: int = 0) -> None:
    """FieldError if a JSON value cannot be stored as is: bad text anywhere, or nested too deep.

    PostgreSQL refuses U+0000 and lone surrogates inside JSON, so they are refused here, at the
    record, instead of failing the whole batch at commit.
    """
    if depth > 32:
        raise FieldError("too_deep", f"{field}: nested more than 32 levels")
    if isinstance(value, str):
        check_text(field, value, max_len=1_000_000, single_line=False)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(f"{field} key", str(key), max_len=ID_MAX)
            check_json_value(item, f"{field}.{key}", depth=depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_value(item, f"{field}[{index}]", depth=depth + 1)
    elif isinstance(value, float) and (not math.isfinite(value)):
        raise FieldError("wrong_type", f"{field}: {value!r} is not a JSON number")
