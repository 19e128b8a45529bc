"""Column types of the ledger that behave the same on SQLite and PostgreSQL.

- ``UtcDateTime``: timezone-aware UTC ``datetime`` in and out. PostgreSQL stores
  ``timestamptz``; SQLite stores the UTC wall time as text. Naive input is refused, because
  a naive time in a sync ledger is a bug waiting for the next daylight-saving change.
- ``JsonDocument``: JSON on SQLite, JSONB on PostgreSQL (comparable, indexable, no
  duplicate keys kept); Python ``None`` is SQL NULL, not the JSON text ``null``.
- ``EmailAddress``: text stored trimmed and lower-cased, and compared the same way, so
  ``where(TouchRow.email == "Ann@Example.COM")`` finds ``ann@example.com``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["EmailAddress", "JsonDocument", "UtcDateTime", "utcnow"]


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
    """JSON on SQLite, JSONB on PostgreSQL."""

    impl = JSON(none_as_null=True)
    cache_ok = True

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
        """Trim and lower-case; an empty address is no address."""
        if value is None:
            return None
        value = value.strip().lower()
        return value or None
