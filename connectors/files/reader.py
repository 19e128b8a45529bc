"""Streaming CSV / JSONL reader: one file in, ``Touch`` and ``Reject`` records out, in file order.

The file is read one physical line at a time in binary and decoded line by line, so a 1 GB
export never sits in memory and one bad byte rejects one row, not the file. Lines longer than
``MAX_LINE_BYTES`` are skipped unread (a rejected row), CSV cells are capped by the csv module's
field limit. Every row is checked completely (all cells, not just the mapped ones) and a bad row
becomes a ``Reject`` with its 1-based line number (the line a record starts on, counting the
header), a machine code and a reason; the caller stores those as dead letters.

Only the file itself can stop the import (``ConfigError``): unreadable, an unknown format, a CSV
header without the mapped columns.

CSV files as Excel and event apps write them (``detect_encoding``, ``detect_delimiter``):

- Encoding: the ``encoding`` setting when given; else a byte-order mark (UTF-8, UTF-16 as in
  Excel's "Unicode text", UTF-32); else UTF-8 when the first MiB is UTF-8 (a stray bad byte
  later still rejects only its row), else cp1252 (Excel's "CSV" on Western Windows) when every
  byte above ASCII reads as a letter or a usual mark in it, else what charset-normalizer
  finds. A UTF-8 BOM in front of text that is not UTF-8 is skipped and the text detected; a
  file declared UTF-8 with a stray byte is never guessed at. A row rejected for bytes of the
  wrong encoding says which encoding was assumed and the setting that changes it.
- Delimiter: the ``delimiter`` setting when given; else the one of ``,`` ``;`` tab ``|`` that
  splits the header line into the most mapped columns, then the most columns (Excel writes
  ``;`` where the decimal separator is a comma).
- Person columns (first and last name, company, title, phone): the ``columns`` setting when
  given, else a header of a usual name (``PERSON_HEADERS``); their values travel with the touch
  as ``attributes["person"]`` to the Lead or Contact created for an unknown email.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import IO, Any

from connectors.base import Touch
from connectors.errors import ConfigError, did_you_mean
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
from connectors.files.settings import PERSON_FIELDS, PERSON_HEADERS, FilesSettings

__all__ = [
    "MAX_LINE_BYTES",
    "PERSON_KEY",
    "CsvLayout",
    "Encoding",
    "Reject",
    "csv_layout",
    "detect_delimiter",
    "detect_encoding",
    "detect_format",
    "read_file",
]

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
SAMPLE_BYTES = 1024 * 1024  # what the encoding is told from
DELIMITERS = (",", ";", "\t", "|")
PERSON_KEY = "person"  # the touch attribute holding the row's person fields
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a file's bytes are read: the codec, the bytes of mark to skip, and how it was found."""

    name: str
    skip: int = 0
    found_by: str = "given"  # given, byte-order mark, UTF-8, detected

    @property
    def wide(self) -> bool:
        """UTF-16 / UTF-32: lines cannot be split on the byte 0x0A."""
        return self.name.startswith(("utf-16", "utf-32", "utf_16", "utf_32"))


def _utf8_text(data: bytes) -> bool:
    """Whether ``data`` is UTF-8: valid (a sequence cut at the end is fine), or valid multibyte
    sequences beside a few bad bytes (a UTF-8 file with a corrupt byte, not a legacy one)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return True
        text = data.decode("utf-8", errors="surrogateescape")
        return any(ord(c) >= 0x80 and not 0xDC80 <= ord(c) <= 0xDCFF for c in text)
    return True


def detect_encoding(head: bytes, given: str | None = None) -> Encoding:
    """The encoding of a file that starts with ``head`` (module docstring)."""
    mark, marked = next(((b, name) for b, name in _BOMS if head.startswith(b)), (b"", None))
    if given is not None:
        family = codecs.lookup(given).name.replace("_", "-").removesuffix("-sig")
        skip = len(mark) if marked == family and marked == "utf-8" else 0
        return Encoding(given, skip, "given")
    if marked in ("utf-16", "utf-32"):
        return Encoding(marked, 0, "byte-order mark")  # the codec reads the mark itself
    rest = head[len(mark) :]
    if _utf8_text(rest):
        return Encoding("utf-8", len(mark), "byte-order mark" if mark else "UTF-8")
    if _plausible_cp1252(rest):
        return Encoding("cp1252", len(mark), "detected")
    from charset_normalizer import from_bytes

    best = from_bytes(rest).best()
    name = codecs.lookup(best.encoding).name if best is not None else "cp1252"
    return Encoding(name, len(mark), "detected")


# Besides letters, what Western text in cp1252 has above ASCII: currency, dashes, quotes, ...
_CP1252_MARKS = frozenset("\u20ac\u2013\u2014\u2018\u2019\u201a\u201c\u201d\u201e\u2026\u2022"
                          "\u00b0\u00a7\u00ab\u00bb\u00b4\u00b7\u00d7\u00f7\u00a3\u00a5\u00a9\u00ae"
                          "\u2122\u00a0\u00bf\u00a1\u00aa\u00ba")  # fmt: skip


def _plausible_cp1252(data: bytes) -> bool:
    """Whether ``data`` reads as cp1252 text, Excel's "CSV" on Western Windows: every byte above
    ASCII a letter or a usual mark. Short samples fool statistical detection (one "é" looks as
    much like cp1006 as cp1252), so the common case is tried first."""
    import unicodedata

    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return all(
        c in _CP1252_MARKS or unicodedata.category(c).startswith("L") for c in text if c >= "\x80"
    )


def detect_delimiter(header_line: str, wanted: Collection[str]) -> str:
    """The delimiter that splits ``header_line`` into the most ``wanted`` columns, then the most
    columns; ``,`` when none splits it."""
    best: tuple[int, int] = (-1, -1)
    chosen = ","
    for delimiter in DELIMITERS:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        names = {cell.strip().removeprefix("\ufeff").strip() for cell in cells}
        score = (sum(1 for column in wanted if column in names), len(cells))
        if score > best:
            best, chosen = score, delimiter
    return chosen


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
    path: Path,
    source: str,
    settings: FilesSettings,
    *,
    now: datetime | None = None,
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
            try:
                head = handle.read(SAMPLE_BYTES)
                handle.seek(0)
            except OSError as exc:
                raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
            encoding = detect_encoding(head, settings.encoding)
            builder.encoding = encoding
            yield from _read_csv(handle, builder, settings, path.name, encoding)


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


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """How a CSV file is read: its encoding, delimiter, and the person columns found."""

    encoding: Encoding
    delimiter: str
    person_columns: dict[str, str]

    def describe(self, settings: FilesSettings) -> str:
        """One line for the import's output: what was found, and which setting changes it."""
        found = settings.delimiter is None
        text = (
            f"read as {self.encoding.name} ({self.encoding.found_by}), delimiter "
            f"{self.delimiter!r}{' (found)' if found else ''}"
        )
        if self.person_columns:
            people = ", ".join(f"{k}={v!r}" for k, v in self.person_columns.items())
            text += f"; person columns: {people}"
        return text


def csv_layout(path: Path, settings: FilesSettings) -> CsvLayout:
    """The layout ``read_file`` reads a CSV file with (a ConfigError where it would stop)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    builder = _RowBuilder("layout", settings, datetime.now(UTC), path.name)
    with handle:
        builder.encoding = encoding = detect_encoding(handle.read(SAMPLE_BYTES), settings.encoding)
        handle.seek(0)
        _open_csv(handle, builder, settings, path.name, encoding=encoding, overlong=[])
    assert builder.delimiter is not None  # set by _open_csv
    return CsvLayout(encoding, builder.delimiter, dict(builder.person_columns))


def _wide_lines(handle: IO[bytes], encoding: str, overlong: list[int]) -> Iterator[str]:
    """Lines of a UTF-16 / UTF-32 file, decoded (over-long ones yielded as an empty line)."""
    text = io.TextIOWrapper(handle, encoding=encoding, errors="surrogateescape", newline="")
    lineno = 0
    try:
        while line := text.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(line) > MAX_LINE_BYTES:
                while line and not line.endswith("\n"):
                    line = text.readline(MAX_LINE_BYTES)
                overlong.append(lineno)
                yield "\n"
                continue
            yield line
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"cannot read the file as {encoding} after line {lineno}: {exc}"
        ) from None
    finally:
        text.detach()


def _text_lines(handle: IO[bytes], encoding: Encoding, overlong: list[int]) -> Iterator[str]:
    if encoding.wide:
        return _wide_lines(handle, encoding.name, overlong)
    handle.seek(encoding.skip)
    return (
        chunk.decode(encoding.name, errors="surrogateescape")
        for chunk in _physical_lines(handle, overlong)
    )


def _read_csv(
    handle: IO[bytes],
    builder: _RowBuilder,
    settings: FilesSettings,
    name: str,
    encoding: Encoding,
) -> Iterator[Touch | Reject]:
    overlong: list[int] = []
    reader, header = _open_csv(
        handle, builder, settings, name, encoding=encoding, overlong=overlong
    )
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


def _open_csv(
    handle: IO[bytes],
    builder: _RowBuilder,
    settings: FilesSettings,
    name: str,
    *,
    encoding: Encoding,
    overlong: list[int],
) -> tuple[Any, list[str]]:
    """A csv reader past the checked header line, and the header (sets the builder's
    delimiter and person columns)."""
    lines = _text_lines(handle, encoding, overlong)
    first = next(lines, None)
    if first is None:
        raise ConfigError(f"{name} is empty: expected a header line")
    delimiter = settings.delimiter or detect_delimiter(first, settings.columns.mapped().values())
    builder.delimiter = delimiter
    reader = csv.reader(chain([first], lines), delimiter=delimiter, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"{name} is empty: expected a header line") from None
    except csv.Error as exc:
        raise ConfigError(f"{name}: cannot read the header line: {exc}") from None
    header = _check_header(header, settings, name, builder.read_as())
    builder.person_columns = _person_columns(header, settings)
    return reader, header


def _header_key(column: str) -> str:
    return "".join(c for c in column.lower() if c not in " _-.")


def _person_columns(header: list[str], settings: FilesSettings) -> dict[str, str]:
    """Person field -> column: the configured ones, else one header of a usual name."""
    chosen = settings.columns.person()
    taken = set(settings.columns.mapped().values()) | set(chosen.values())
    for person_field in PERSON_FIELDS:
        if person_field in chosen:
            continue
        names = PERSON_HEADERS[person_field]
        found = [c for c in header if _header_key(c) in names and c not in taken]
        if len(found) == 1:
            chosen[person_field] = found[0]
            taken.add(found[0])
    return chosen


def _check_header(
    header: list[str], settings: FilesSettings, name: str, read_as: str = ""
) -> list[str]:
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
    wanted = {**settings.columns.mapped(), **settings.columns.person()}
    if settings.attribute_columns:
        wanted.update({f"attribute {c!r}": c for c in settings.attribute_columns})
    missing = [f"{field}={column!r}" for field, column in wanted.items() if column not in cleaned]
    if missing:
        hints = [item + did_you_mean(item.split("=", 1)[1].strip("'"), cleaned) for item in missing]
        raise ConfigError(
            f"{name}: the column mapping names columns that are not in the header: "
            f"{', '.join(hints)}; the header has: {', '.join(map(repr, cleaned))}"
            + (f" ({read_as})" if read_as else "")
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
        self.encoding: Encoding | None = None  # CSV: how the bytes were read
        self.delimiter: str | None = None  # CSV: the delimiter used
        self.person_columns: dict[str, str] = settings.columns.person()

    def read_as(self) -> str:
        """How the file was read and the settings that change it, for messages."""
        parts = []
        if self.encoding is not None:
            parts.append(f"read as {self.encoding.name} ({self.encoding.found_by})")
        if self.delimiter is not None:
            given = self.settings.delimiter is not None
            parts.append(f"delimiter {self.delimiter!r}{'' if given else ' (found)'}")
        if not parts:
            return ""
        return (
            ", ".join(parts) + "; if that is wrong, set encoding: / delimiter: in the "
            "connection (closedloop import: --encoding / --delimiter)"
        )

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
            reason = exc.reason
            if exc.code == "non_utf8" and self.encoding and self.encoding.found_by != "given":
                reason += f"; the file was {self.read_as()}"
            return self.reject(line, exc.code, reason, {"row": raw if raw is not None else row})

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

    def _person(self, row: dict[str, Any], *, typed: bool) -> dict[str, str]:
        """The row's person fields that have a value (first_name, last_name, company, ...)."""
        out: dict[str, str] = {}
        for person_field, column in self.person_columns.items():
            value = row.get(column)
            if value is None or (typed and not isinstance(value, str)):
                continue
            text = check_text(column, value, max_len=min(self.settings.max_field_chars, ID_MAX))
            if text:
                out[person_field] = text
        return out

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
        person = self._person(row, typed=typed)
        if person:
            attributes[PERSON_KEY] = person
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
