"""Streaming CSV / JSONL reader: one file in, ``Touch`` and ``Reject`` records out, in file order.

The file is read one physical line at a time in binary and decoded line by line, so a 1 GB
export never sits in memory and one bad byte rejects one row, not the file. Lines longer than
``MAX_LINE_BYTES`` are skipped unread (a rejected row), CSV cells are capped by the csv module's
field limit. Every row is checked completely (all cells, not just the mapped ones) and a bad row
becomes a ``Reject`` with its 1-based line number (the line a record starts on, counting the
header), a machine code and a reason; the caller stores those as dead letters.

Only the file itself can stop the import (``ConfigError``): unreadable, an unknown format, a CSV
header without the mapped columns.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from connectors.base import Touch
from connectors.errors import ConfigError
from connectors.files.fields import (
    ID_MAX,
    FieldError,
    check_json_value,
    check_text,
    hashed_source_id,
    parse_email,
    parse_kind,
    parse_occurred_at,
)
from connectors.files.settings import FilesSettings

__all__ = ["MAX_LINE_BYTES", "Reject", "detect_format", "read_file"]

MAX_LINE_BYTES = 1024 * 1024
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
# How much of a rejected row is kept in its dead letter.
_PAYLOAD_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that could not become a touch: where it was, why, and what it said."""

    line: int
    reason: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    code: str = "invalid"
    key: str = ""


def detect_format(path: Path, explicit: str | None) -> str:
    """``csv`` or ``jsonl`` from ``explicit`` or the file's suffix; ConfigError if neither says."""
    if explicit:
        return explicit
    found = _SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ConfigError(
            f"cannot tell the format of {path.name}: pass --format csv or --format jsonl"
        )
    return found


def read_file(
    path: Path, source: str, settings: FilesSettings, *, now: datetime | None = None
) -> Iterator[Touch | Reject]:
    """Yield a Touch or a Reject for every record of ``path`` (see the module docstring)."""
    fmt = detect_format(path, settings.format)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    builder = _RowBuilder(source, settings, now or datetime.now(UTC), path.name)
    with handle:
        if fmt == "jsonl":
            yield from _read_jsonl(handle, builder)
        else:
            yield from _read_csv(handle, builder, settings, path.name)


def _physical_lines(handle: IO[bytes], overlong: list[int]) -> Iterator[bytes]:
    """Lines of at most MAX_LINE_BYTES; longer ones are drained and yielded as an empty line."""
    lineno = 0
    while True:
        try:
            chunk = handle.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the file after line {lineno}: {exc.strerror or exc}"
            ) from None
        if not chunk:
            return
        lineno += 1
        if len(chunk) > MAX_LINE_BYTES:
            while chunk and not chunk.endswith(b"\n"):
                chunk = handle.readline(MAX_LINE_BYTES)
            overlong.append(lineno)
            yield b"\n"
            continue
        yield chunk


def _overlong_reject(line: int) -> Reject:
    return Reject(
        line,
        f"line {line}: longer than {MAX_LINE_BYTES} bytes; not read",
        {"line": line},
        "too_long",
        f"line:{line}",
    )


def _read_jsonl(handle: IO[bytes], builder: _RowBuilder) -> Iterator[Touch | Reject]:
    overlong: list[int] = []
    for line, chunk in enumerate(_physical_lines(handle, overlong), start=1):
        if overlong:
            yield _overlong_reject(overlong.pop())
            continue
        if not chunk.strip():
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield builder.reject(
                line,
                "non_utf8",
                f"bytes {exc.start}-{exc.end} are not valid UTF-8",
                {"text": _escaped_bytes(chunk)},
            )
            continue
        if line == 1:
            text = text.removeprefix("\ufeff")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield builder.reject(
                line, "invalid_json", f"not JSON: {exc.msg} at column {exc.colno}", {"text": text}
            )
            continue
        except RecursionError:
            yield builder.reject(line, "too_deep", "JSON nested too deep", {"text": text[:200]})
            continue
        except ValueError:
            # Python reads integers of at most 4,300 digits (sys.get_int_max_str_digits()).
            reason = "not JSON that can be read: a number has more than 4,300 digits"
            yield builder.reject(line, "invalid_json", reason, {"text": text[:200]})
            continue
        if not isinstance(value, dict):
            yield builder.reject(
                line, "wrong_type", "expected a JSON object on each line", {"text": text}
            )
            continue
        yield builder.build(line, value, typed=True)


def _read_csv(
    handle: IO[bytes], builder: _RowBuilder, settings: FilesSettings, name: str
) -> Iterator[Touch | Reject]:
    overlong: list[int] = []
    lines = (
        chunk.decode("utf-8", errors="surrogateescape")
        for chunk in _physical_lines(handle, overlong)
    )
    reader = csv.reader(lines, delimiter=settings.delimiter, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"{name} is empty: expected a header line") from None
    except csv.Error as exc:
        raise ConfigError(f"{name}: cannot read the header line: {exc}") from None
    header = _check_header(header, settings, name)
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = previous + 1
            previous = reader.line_num
            yield builder.reject(start, "malformed_csv", f"unreadable CSV: {exc}", {})
            continue
        start = previous + 1
        previous = reader.line_num
        while overlong:
            yield _overlong_reject(overlong.pop(0))
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        raw = {column: _escaped(cell) for column, cell in zip(header, row, strict=False)}
        if len(row) != len(header):
            extra = {"cells": [_escaped(cell) for cell in row]}
            yield builder.reject(
                start,
                "wrong_column_count",
                f"expected {len(header)} columns, got {len(row)}",
                extra,
            )
            continue
        yield builder.build(start, dict(zip(header, row, strict=True)), typed=False, raw=raw)
    while overlong:
        yield _overlong_reject(overlong.pop(0))


def _check_header(header: list[str], settings: FilesSettings, name: str) -> list[str]:
    if header:
        header[0] = header[0].removeprefix("\ufeff")
    cleaned: list[str] = []
    for index, column in enumerate(header, start=1):
        try:
            cleaned.append(check_text(f"header column {index}", column, max_len=ID_MAX))
        except FieldError as exc:
            raise ConfigError(f"{name}: bad header line: {exc.reason}") from None
    duplicates = sorted({c for c in cleaned if cleaned.count(c) > 1})
    if duplicates:
        raise ConfigError(f"{name}: the header names {', '.join(map(repr, duplicates))} twice")
    wanted = settings.columns.mapped()
    if settings.attribute_columns:
        wanted.update({f"attribute {c!r}": c for c in settings.attribute_columns})
    missing = [f"{field}={column!r}" for field, column in wanted.items() if column not in cleaned]
    if missing:
        import difflib

        hints = []
        for item in missing:
            column = item.split("=", 1)[1].strip("'")
            close = difflib.get_close_matches(column, cleaned, n=1, cutoff=0.6)
            hints.append(item + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{name}: the column mapping names columns that are not in the header: "
            f"{', '.join(hints)}; the header has: {', '.join(map(repr, cleaned))}"
        )
    return cleaned


def _escaped(text: str) -> str:
    """Text as stored in a dead letter: undecodable bytes as ``\\xNN``, capped in length."""
    if any("\udc80" <= char <= "\udcff" for char in text):
        text = text.encode("utf-8", errors="surrogateescape").decode(
            "utf-8", errors="backslashreplace"
        )
    if any("\ud800" <= char <= "\udfff" for char in text):
        text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text if len(text) <= _PAYLOAD_CHARS else text[:_PAYLOAD_CHARS] + "..."


def _escaped_bytes(raw: bytes) -> str:
    return _escaped(raw.decode("utf-8", errors="backslashreplace"))


def _jsonable(value: Any) -> Any:
    """A JSON value made safe to store in a dead letter (bad text escaped, size capped)."""
    if isinstance(value, str):
        return _escaped(value)
    if isinstance(value, dict):
        return {_escaped(str(k)): _jsonable(v) for k, v in list(value.items())[:200]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value[:200]]
    if isinstance(value, float) and (not math.isfinite(value)):
        return repr(value)
    return value


class _RowBuilder:
    """Turns one row (CSV cells or a JSON object) into a Touch or a Reject."""

    def __init__(self, source: str, settings: FilesSettings, now: datetime, file_name: str) -> None:
        self.source = source
        self.settings = settings
        self.now = now
        self.file_name = file_name
        self.columns = settings.columns
        self.mapped_columns = set(settings.columns.mapped().values())
        self.zone = settings.zone

    def reject(self, line: int, code: str, reason: str, payload: Mapping[str, Any]) -> Reject:
        """A Reject keyed by file, line and the row's content, so re-imports do not repeat it."""
        body = json.dumps(_jsonable(dict(payload)), sort_keys=True, ensure_ascii=True)
        digest = hashlib.sha256(body.encode("ascii")).hexdigest()[:12]
        stored = {"file": self.file_name, "line": line, **_jsonable(dict(payload))}
        return Reject(
            line, f"line {line}: {reason}", stored, code, f"{self.file_name}:{line}:{digest}"
        )

    def build(
        self, line: int, row: dict[str, Any], *, typed: bool, raw: Mapping[str, Any] | None = None
    ) -> Touch | Reject:
        """Validate every value of ``row`` and build its Touch; the first problem rejects it."""
        try:
            return self._build(row, typed=typed)
        except FieldError as exc:
            return self.reject(line, exc.code, exc.reason, {"row": raw if raw is not None else row})

    def _text(self, row: dict[str, Any], name: str, *, typed: bool, max_len: int) -> str | None:
        column = getattr(self.columns, name)
        if column is None:
            return None
        value = row.get(column)
        if value is None:
            return None
        if typed and isinstance(value, int) and not isinstance(value, bool) and name == "source_id":
            value = str(value)
        if not isinstance(value, str):
            raise FieldError("wrong_type", f"{column}: expected text, got {_type_name(value)}")
        text = check_text(column, value, max_len=max_len)
        return text or None

    def _build(self, row: dict[str, Any], *, typed: bool) -> Touch:
        settings = self.settings
        limit = settings.max_field_chars
        # Every cell is checked, mapped or not: a row with a broken cell is a broken row.
        for column, value in row.items():
            if column in self.mapped_columns:
                continue
            if typed:
                check_json_value(value, str(column))
            elif isinstance(value, str):
                check_text(str(column), value, max_len=limit, single_line=False)
        email_column = self.columns.email
        email_value = row.get(email_column)
        if isinstance(email_value, str) and not email_value.strip():
            email_value = None
        email = parse_email(email_value, email_column)
        if self.columns.kind is not None:
            kind_value = row.get(self.columns.kind)
            if isinstance(kind_value, str) and not kind_value.strip():
                kind_value = None
            kind = parse_kind(kind_value, self.columns.kind, aliases=settings.kind_values)
        else:
            kind = settings.fixed_kind
        if self.columns.occurred_at is not None:
            value = row.get(self.columns.occurred_at)
            if isinstance(value, str) and not value.strip():
                value = None
            occurred_at = parse_occurred_at(
                value,
                self.columns.occurred_at,
                formats=settings.date_formats,
                default_tz=self.zone,
                now=self.now,
                allow_epoch=typed,
            )
        else:
            assert settings.occurred_at is not None  # guaranteed by FilesSettings
            occurred_at = settings.occurred_at.astimezone(UTC)
        campaign = self._text(row, "campaign", typed=typed, max_len=limit) or settings.campaign
        asset = self._text(row, "asset", typed=typed, max_len=limit) or settings.asset
        channel = self._text(row, "channel", typed=typed, max_len=limit) or settings.channel
        person_ref = self._text(row, "person_ref", typed=typed, max_len=ID_MAX)
        if self.columns.source_id is not None:
            source_id = self._text(row, "source_id", typed=typed, max_len=ID_MAX)
            if source_id is None:
                raise FieldError("missing_id", f"{self.columns.source_id}: missing")
        else:
            source_id = hashed_source_id(email, kind, occurred_at, campaign, asset)
        if settings.attribute_columns is None:
            attributes = {
                k: v for k, v in row.items() if k not in self.mapped_columns and v not in (None, "")
            }
        else:
            attributes = {
                k: row[k] for k in settings.attribute_columns if row.get(k) not in (None, "")
            }
        return Touch(
            source=self.source,
            source_id=source_id,
            kind=kind,
            occurred_at=occurred_at,
            email=email,
            person_ref=person_ref,
            campaign=campaign,
            channel=channel,
            asset=asset,
            attributes=attributes,
            raw=row,
        )


def _type_name(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), type(value).__name__)
