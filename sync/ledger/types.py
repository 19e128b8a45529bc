"""Column types of the ledger that behave the same on SQLite and PostgreSQL.

- ``UtcDateTime``: timezone-aware UTC ``datetime`` in and out. PostgreSQL stores
  ``timestamptz``; SQLite stores the UTC wall time as text. Naive input is refused, because
  a naive time in a sync ledger is a bug waiting for the next daylight-saving change.
- ``JsonDocument``: JSON on SQLite, JSONB on PostgreSQL (comparable, indexable, no
  duplicate keys kept); Python ``None`` is SQL NULL, not the JSON text ``null``.
- ``EmailAddress``: text stored trimmed and lower-cased, and compared the same way, so
  ``where(TouchRow.email == "Ann@Example.COM")`` finds ``ann@example.com``.
- ``LineText`` / ``LongText``: every other text column (``guard_text_columns`` gives them to
  the whole ledger), stored free of control characters.

Control characters, the same on both databases: PostgreSQL text and JSONB cannot hold U+0000
(psycopg raises DataError), SQLite can, and neither encodes a lone surrogate (the stand-in for
an undecodable byte). So every text the ledger stores is cleaned on the way in, one rule per
kind of column (``clean_text``):

- single-line text (names, ids, codes, e-mails, campaigns, assets: ``LineText``,
  ``EmailAddress``, JSON object keys): TAB, LF, VT, FF, CR and NEL become a space; every other
  control character (C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F) is removed;
- multi-line text (reasons, errors, descriptions: ``LongText``, the columns named in
  ``MULTI_LINE``, and string values inside JSON documents): TAB, LF and CR are kept, as a
  Salesforce Description or a disqualification reason may legitimately hold them; the other
  control characters are removed;
- a lone surrogate becomes U+FFFD (the replacement character), anywhere.

Evidence is the exception: a record's raw payload and a dead letter's reason and payload keep
what arrived, visibly, as ``\\xNN`` escapes (``escape_controls``, applied by ``sync.ingest``
before the column sees them), and so do the ids a touch key is made of, so that two ids which
differ only by a control character stay two touches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, MetaData, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel.sql.sqltypes import AutoString

__all__ = [
    "MULTI_LINE",
    "EmailAddress",
    "JsonDocument",
    "LineText",
    "LongText",
    "UtcDateTime",
    "aggregate_time",
    "clean_json",
    "clean_text",
    "escape_controls",
    "guard_text_columns",
    "utcnow",
]

# Text columns (table.column) that may hold several lines although their type is a plain string.
MULTI_LINE = frozenset({"disposition.reason"})

_CONTROLS = "\x00-\x1f\x7f-\x9f"
_SURROGATES = "\ud800-\udfff"
_UNCLEAN = re.compile(f"[{_CONTROLS}{_SURROGATES}]")
_BREAKS = frozenset("\t\n\x0b\x0c\r\x85")
_KEPT_IN_LINES = frozenset("\t\n\r")
_DEPTH = 64


def _clean_char(char: str, multiline: bool) -> str:
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"
    if multiline and char in _KEPT_IN_LINES:
        return char
    return " " if char in _BREAKS and not multiline else ""


def clean_text(value: str, *, multiline: bool = False) -> str:
    """``value`` without control characters or lone surrogates (see the module docstring)."""
    if _UNCLEAN.search(value) is None:
        return value
    return _UNCLEAN.sub(lambda m: _clean_char(m.group(), multiline), value)


def escape_controls(value: str, *, keep: str = "\t\n\r") -> str:
    """``value`` with control characters (except ``keep``) as ``\\xNN`` and lone surrogates as
    ``\\udcNN`` escapes: evidence that shows what arrived and can be stored anywhere."""
    if _UNCLEAN.search(value) is None:
        return value

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        if "\ud800" <= char <= "\udfff":
            return f"\\u{ord(char):04x}"
        return f"\\x{ord(char):02x}"

    return _UNCLEAN.sub(escape, value)


def clean_json(value: Any, depth: int = 0) -> Any:
    """A JSON document both databases store alike: strings cleaned (``multiline`` rule; keys
    single-line), non-finite numbers as text, anything else JSON lacks as its text."""
    if isinstance(value, str):
        return clean_text(value, multiline=True)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > _DEPTH:
        return clean_text(repr(value)[:200])
    if isinstance(value, Mapping):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [clean_json(v, depth + 1) for v in items]
    if isinstance(value, datetime):
        return value.isoformat()
    return clean_text(str(value), multiline=True)


def aggregate_time(value: Any) -> datetime | None:
    """A ``UtcDateTime`` read through an aggregate (``MIN``/``MAX`` bypass the column type, and
    SQLite then answers text) as an aware UTC datetime; None stays None."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"not a time: {value!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the only kind the ledger accepts)."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that only accepts aware datetimes and returns aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; convert aware ones to UTC (naive UTC text on SQLite)."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} given to the ledger: "
                "pass a timezone-aware datetime (e.g. datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - signature fixed by TypeDecorator
    ) -> datetime | None:
        """Return every stored time as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JsonDocument(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL; documents cleaned on the way in (``clean_json``)."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(
        self,
        value: Any,
        dialect: Dialect,  # noqa: ARG002 - signature fixed by TypeDecorator
    ) -> Any:
        """The document as both databases can hold it (None stays SQL NULL)."""
        return None if value is None else clean_json(value)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Pick JSONB on PostgreSQL so documents compare and index; plain JSON elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))


class EmailAddress(TypeDecorator[str]):
    """An email address kept trimmed and lower-cased (identity matching is case-blind)."""

    impl = String
    cache_ok = True

    def process_bind_param(
        self,
        value: str | None,
        dialect: Dialect,  # noqa: ARG002 - signature fixed by TypeDecorator
    ) -> str | None:
        """Clean, trim and lower-case; an empty address is no address."""
        if value is None:
            return None
        value = clean_text(value).strip().lower()
        return value or None


class LineText(TypeDecorator[str]):
    """A one-line text column: control characters never stored (see the module docstring)."""

    impl = String
    cache_ok = True
    multiline = False

    def process_bind_param(
        self,
        value: str | None,
        dialect: Dialect,  # noqa: ARG002 - signature fixed by TypeDecorator
    ) -> str | None:
        """The text without control characters (tabs and line breaks as spaces, or kept in a
        multi-line column)."""
        if value is None or not isinstance(value, str):
            return value
        return clean_text(value, multiline=self.multiline)


class LongText(LineText):
    """A text column that may hold several lines: tabs and line breaks kept, other controls not."""

    impl = Text
    cache_ok = True
    multiline = True


class _MultiLineString(LineText):
    """``LongText`` rules on a column declared as a plain (VARCHAR) string."""

    cache_ok = True
    multiline = True


def guard_text_columns(metadata: MetaData) -> None:
    """Give every plain text column of ``metadata`` the ledger's text rule (``LineText``, or
    ``LongText`` for Text columns and those in ``MULTI_LINE``); the DDL stays the same."""
    for table in metadata.tables.values():
        for column in table.columns:
            current = column.type
            if isinstance(current, Enum):
                continue
            if isinstance(current, AutoString) or type(current) is String:
                length = getattr(current, "length", None)
                if f"{table.name}.{column.name}" in MULTI_LINE:
                    column.type = _MultiLineString(length)
                else:
                    column.type = LineText(length)
            elif type(current) is Text:
                column.type = LongText(current.length)
