"""The SOQL subset the Salesforce emulator understands: tokenizer, parser, evaluator.

Supported: ``SELECT`` fields (with relationship paths such as ``Owner.Name``) or ``COUNT()`` /
``COUNT(field)``, ``FROM`` one object, ``WHERE`` with AND/OR/NOT and parentheses, the comparison
operators, ``IN``/``NOT IN``, ``LIKE``, literals (strings with escapes, numbers, true/false/null,
dates, datetimes, TODAY/YESTERDAY/TOMORROW/LAST_N_DAYS:n/NEXT_N_DAYS:n), ``ORDER BY`` with
ASC/DESC and NULLS FIRST/LAST, ``LIMIT`` and ``OFFSET``. Anything else is a ``MALFORMED_QUERY``,
as it would be from Salesforce, with the real "ERROR at Row:R:Column:C" message shape.

SOQL semantics kept on purpose: text comparisons and ORDER BY are case-insensitive; ``!=`` and
``NOT IN`` match nulls; AND and OR cannot be mixed at one level without parentheses; OFFSET is at
most 2,000.

Rows are plain dicts holding wire values: dates as ``YYYY-MM-DD`` and datetimes as
``YYYY-MM-DDTHH:MM:SS.000+0000`` (UTC), so both compare correctly as strings.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sandbox.salesforce_schema import OBJECTS, STRING_TYPES, FieldDef, ObjectDef

__all__ = [
    "MAX_OFFSET",
    "MAX_QUERY_LENGTH",
    "CompiledQuery",
    "Query",
    "SoqlError",
    "compile_query",
    "format_datetime",
    "id_with_checksum",
    "normalize_id",
    "parse",
    "parse_datetime",
    "tokenize",
]

MAX_QUERY_LENGTH = 100_000  # characters of SOQL text, a hard platform limit
MAX_OFFSET = 2_000

Row = Mapping[str, Any]
# Resolves a record id to (sObject name, row), for relationship paths; None when absent.
Resolver = Callable[[str], "tuple[str, Row] | None"]

_KEYWORDS = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "TRUE",
        "FALSE",
        "NULL",
        "GROUP",
        "HAVING",
        "WITH",
        "FOR",
        "USING",
        "TYPEOF",
        "INCLUDES",
        "EXCLUDES",
    ]
)
_DATE_FUNCTIONS = frozenset({"TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS"})
_N_DATE_FUNCTIONS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS"})
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_UPPERCASE_FLAGS = str.maketrans(
    string.ascii_uppercase + string.ascii_lowercase + string.digits, "1" * 26 + "0" * 36
)


class SoqlError(Exception):
    """A query Salesforce would refuse: ``code`` is the errorCode, ``message`` its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def id_with_checksum(base: str) -> str:
    """The 18-character id of a 15-character ``base``: its case-checksum suffix appended."""
    flags = base.translate(_UPPERCASE_FLAGS)
    # Each suffix character encodes which of 5 characters are upper case, first one as bit 0.
    return (
        base
        + _CHECKSUM_CHARS[int(flags[4::-1], 2)]
        + _CHECKSUM_CHARS[int(flags[9:4:-1], 2)]
        + _CHECKSUM_CHARS[int(flags[14:9:-1], 2)]
    )


@lru_cache(maxsize=65_536)
def normalize_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character Salesforce id, or None if malformed."""
    if len(value) not in (15, 18) or not (value.isascii() and value.isalnum()):
        return None
    return id_with_checksum(value[:15])


def format_datetime(moment: datetime) -> str:
    """A datetime in Salesforce's wire format, ``2024-01-01T00:00:00.000+0000`` (UTC)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime | None:
    """Parse an ISO-8601 datetime with a zone (Z, +01:00 or +0100); None when it is not one."""
    candidate = text.strip()
    if len(candidate) < 19 or candidate[10] != "T":
        return None
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    elif len(candidate) >= 5 and candidate[-5] in "+-" and candidate[-4:].isdigit():
        candidate = candidate[:-2] + ":" + candidate[-2:]
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class Token:
    """One lexical token; ``pos`` is its offset in the query text (for error positions)."""

    kind: str  # ident | keyword | string | number | date | datetime | op | ( | ) | , | : | eof
    value: str
    pos: int


def _error_at(text: str, pos: int, detail: str, code: str = "MALFORMED_QUERY") -> SoqlError:
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    col = pos - line_start + 1
    caret = " " * (col - 1) + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{col}\n{detail}")


def _scan_number(text: str, start: int) -> tuple[Token, int]:
    """A number, date (2024-01-01) or datetime (2024-01-01T00:00:00Z) literal at ``start``."""
    n = len(text)
    i = start + 1
    while i < n and text[i].isdigit():
        i += 1
    if i - start == 4 and i < n and text[i] == "-":
        while i < n and (text[i].isdigit() or text[i] in "-T:.Z+"):
            i += 1
        literal = text[start:i]
        if len(literal) == 10:
            try:
                date.fromisoformat(literal)
            except ValueError:
                raise _error_at(text, start, f"invalid date literal: {literal}") from None
            return Token("date", literal, start), i
        moment = parse_datetime(literal)
        if moment is None:
            raise _error_at(text, start, f"unexpected token: {literal}")
        return Token("datetime", format_datetime(moment), start), i
    if i < n and text[i] == ".":
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    return Token("number", text[start:i], start), i


def _scan_string(text: str, start: int) -> tuple[Token, int]:
    """A single-quoted string literal at ``start``, with SOQL's backslash escapes."""
    n = len(text)
    i = start + 1
    chars: list[str] = []
    while True:
        if i >= n:
            raise _error_at(text, start, "line 1:0 mismatched character '<EOF>' expecting \"'\"")
        c = text[i]
        if c == "'":
            return Token("string", "".join(chars), start), i + 1
        if c != "\\":
            chars.append(c)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt in _ESCAPES:
            chars.append(_ESCAPES[nxt])
        elif nxt in ("%", "_"):
            chars.append("\\" + nxt)  # kept for LIKE; unescaped elsewhere
        else:
            raise _error_at(text, i, f"Invalid string literal '\\{nxt}'")
        i += 2


def tokenize(text: str) -> list[Token]:
    """Split SOQL text into tokens; an unknown character or an open string is MALFORMED_QUERY."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch.isalpha() or ch == "_":
            while i < n and (text[i].isalnum() or text[i] in "_."):
                i += 1
            word = text[start:i]
            kind = "keyword" if word.upper() in _KEYWORDS else "ident"
            tokens.append(Token(kind, word.upper() if kind == "keyword" else word, start))
            continue
        if ch.isdigit() or (ch in "-+" and i + 1 < n and text[i + 1].isdigit()):
            token, i = _scan_number(text, start)
            tokens.append(token)
            continue
        if ch == "'":
            token, i = _scan_string(text, start)
            tokens.append(token)
            continue
        matched = next((op for op in _OPERATORS if text.startswith(op, i)), None)
        if matched:
            tokens.append(Token("op", "!=" if matched == "<>" else matched, start))
            i += len(matched)
            continue
        if ch in "(),:":
            tokens.append(Token(ch, ch, start))
            i += 1
            continue
        raise _error_at(text, start, f"unexpected token: '{ch}'")
    tokens.append(Token("eof", "<EOF>", n))
    return tokens


# --------------------------------------------------------------------------------------------
# Abstract syntax


@dataclass(frozen=True)
class FieldRef:
    path: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class CountExpr:
    field: FieldRef | None
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | bool | null | date | datetime | date_fn
    value: Any
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # = != < <= > >= IN NOT IN LIKE
    value: Literal | tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    """A parsed SOQL statement."""

    text: str
    select: tuple[FieldRef | CountExpr, ...]
    sobject: str
    sobject_pos: int
    where: Any
    order: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, token: Token | None = None, detail: str | None = None) -> SoqlError:
        token = token or self.tok
        return _error_at(self.text, token.pos, detail or f"unexpected token: {token.value}")

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value in words

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.fail()
        return self.next()

    def expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.fail()
        return self.next()

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        select = [self.select_item()]
        while self.tok.kind == ",":
            self.next()
            select.append(self.select_item())
        self.expect_kw("FROM")
        obj = self.tok
        if obj.kind == "keyword" and obj.value == "GROUP":
            # The Group object (queues, public groups) shares its name with GROUP BY; Salesforce
            # reads a name right after FROM as the object.
            obj = Token("ident", self.text[obj.pos : obj.pos + 5], obj.pos)
        if obj.kind != "ident" or "." in obj.value:
            raise self.fail()
        self.next()
        where = None
        if self.is_kw("WHERE"):
            self.next()
            where = self.condition()
        order: list[OrderItem] = []
        if self.is_kw("ORDER"):
            self.next()
            self.expect_kw("BY")
            order.append(self.order_item())
            while self.tok.kind == ",":
                self.next()
                order.append(self.order_item())
        limit = offset = None
        if self.is_kw("LIMIT"):
            self.next()
            limit = self.integer()
        if self.is_kw("OFFSET"):
            self.next()
            offset = self.integer()
        if self.tok.kind != "eof":
            raise self.fail()
        return Query(
            self.text, tuple(select), obj.value, obj.pos, where, tuple(order), limit, offset
        )

    def integer(self) -> int:
        token = self.expect("number")
        if not token.value.isdigit():
            raise self.fail(token)
        return int(token.value)

    def field_ref(self) -> FieldRef:
        token = self.tok
        if (
            token.kind != "ident"
            or token.value.startswith(".")
            or token.value.endswith(".")
            or (".." in token.value)
        ):
            raise self.fail()
        self.next()
        return FieldRef(tuple(token.value.split(".")), token.pos)

    def select_item(self) -> FieldRef | CountExpr:
        token = self.tok
        if (
            token.kind == "ident"
            and token.value.upper() == "COUNT"
            and (self.tokens[self.i + 1].kind == "(")
        ):
            self.next()
            self.next()
            inner = None if self.tok.kind == ")" else self.field_ref()
            self.expect(")")
            return CountExpr(inner, token.pos)
        return self.field_ref()

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        descending = False
        if self.is_kw("ASC", "DESC"):
            descending = self.next().value == "DESC"
        nulls_first = not descending  # Salesforce's default: nulls first ascending, last descending
        if self.is_kw("NULLS"):
            self.next()
            if not self.is_kw("FIRST", "LAST"):
                raise self.fail()
            nulls_first = self.next().value == "FIRST"
        return OrderItem(ref, descending, nulls_first)

    def condition(self) -> Any:
        first = self.unary()
        if not self.is_kw("AND", "OR"):
            return first
        op = self.tok.value
        items = [first]
        while self.is_kw("AND", "OR"):
            if self.tok.value != op:
                # SOQL refuses "a AND b OR c": mixing needs parentheses.
                raise self.fail()
            self.next()
            items.append(self.unary())
        return BoolOp(op, tuple(items))

    def unary(self) -> Any:
        if self.is_kw("NOT"):
            self.next()
            return Not(self.unary())
        if self.tok.kind == "(":
            self.next()
            inner = self.condition()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        ref = self.field_ref()
        token = self.tok
        if token.kind == "op":
            self.next()
            return Comparison(ref, token.value, self.literal(), token.pos)
        if self.is_kw("LIKE"):
            self.next()
            value = self.literal()
            if value.kind != "string":
                raise self.fail(self.tokens[self.i - 1])
            return Comparison(ref, "LIKE", value, token.pos)
        negate = False
        if self.is_kw("NOT"):
            self.next()
            negate = True
        if self.is_kw("IN"):
            self.next()
            self.expect("(")
            if self.is_kw("SELECT"):
                raise self.fail(detail="semi-join sub-selects are not supported by the sandbox")
            values = [self.literal()]
            while self.tok.kind == ",":
                self.next()
                values.append(self.literal())
            self.expect(")")
            return Comparison(ref, "NOT IN" if negate else "IN", tuple(values), token.pos)
        raise self.fail()

    def literal(self) -> Literal:
        token = self.next()
        if token.kind == "string":
            return Literal("string", token.value, token.pos)
        if token.kind == "number":
            number: float | int = float(token.value) if "." in token.value else int(token.value)
            return Literal("number", number, token.pos)
        if token.kind in ("date", "datetime"):
            return Literal(token.kind, token.value, token.pos)
        if token.kind == "keyword" and token.value in ("TRUE", "FALSE"):
            return Literal("bool", token.value == "TRUE", token.pos)
        if token.kind == "keyword" and token.value == "NULL":
            return Literal("null", None, token.pos)
        if token.kind == "ident" and token.value.upper() in _DATE_FUNCTIONS:
            name = token.value.upper()
            amount = 0
            if name in _N_DATE_FUNCTIONS:
                self.expect(":")
                amount = self.integer()
            return Literal("date_fn", (name, amount), token.pos)
        raise self.fail(token)


def parse(text: str) -> Query:
    """Parse SOQL text into a Query; raises SoqlError(MALFORMED_QUERY) for anything unsupported."""
    if len(text) > MAX_QUERY_LENGTH:
        raise SoqlError(
            "MALFORMED_QUERY",
            f"SOQL statements cannot be longer than {MAX_QUERY_LENGTH} characters "
            f"(this one has {len(text)}).",
        )
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Binding and evaluation


def _string_key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


@dataclass
class _Path:
    """A bound field path: the relationship hops and the final field definition."""

    hops: tuple[tuple[str, FieldDef], ...]  # (canonical relationship name, reference field)
    field: FieldDef
    getter: Callable[[Row], Any]


@dataclass
class CompiledQuery:
    """A query bound to the schema: ready to filter, sort and project rows."""

    query: Query
    sobject: ObjectDef
    columns: list[_Path]
    count_only: bool
    count_alias: bool  # COUNT(field): an AggregateResult row instead of totalSize only
    predicate: Callable[[Row], bool]
    order: list[tuple[Callable[[Row], Any], bool, bool]]
    limit: int | None
    offset: int
    # (field name, normalized values) of an equality/IN filter on an indexed field, for the store.
    index_hint: tuple[str, list[Any]] | None = None
    resolver: Resolver = field(default=lambda _id: None)

    def sort(self, rows: list[Row]) -> list[Row]:
        """Apply ORDER BY (stable, last key first), then OFFSET and LIMIT."""
        for getter, descending, nulls_first in reversed(self.order):
            null_rank = 1 if nulls_first == descending else 0

            def key(
                row: Row, getter: Callable[[Row], Any] = getter, null_rank: int = null_rank
            ) -> Any:
                value = getter(row)
                if value is None:
                    return (null_rank, 0)
                return (1 - null_rank, _string_key(value))

            rows.sort(key=key, reverse=descending)
        end = None if self.limit is None else self.offset + self.limit
        return rows[self.offset : end]

    def project(self, row: Row, base_path: str) -> dict[str, Any]:
        """The record as the REST API returns it: attributes, then the selected fields."""
        record: dict[str, Any] = {"attributes": _attributes(self.sobject.name, row, base_path)}
        for path in self.columns:
            target: dict[str, Any] | None = record
            current: Row | None = row
            for rel_name, ref in path.hops:
                assert target is not None
                linked = None
                ref_id = current.get(ref.name) if current is not None else None
                if ref_id is not None:
                    linked = self.resolver(ref_id)
                if linked is None:
                    target.setdefault(rel_name, None)
                    target = None
                    break
                existing = target.get(rel_name)
                if existing is None:
                    existing = {"attributes": _attributes(linked[0], linked[1], base_path)}
                    target[rel_name] = existing
                target = existing
                current = linked[1]
            if target is not None and current is not None:
                target[path.field.name] = current.get(path.field.name)
        return record

    def flat(self, row: Row) -> list[Any]:
        """The selected values in column order (Bulk API CSV rows)."""
        return [path.getter(row) for path in self.columns]

    def headers(self) -> list[str]:
        """Column names as Bulk API results name them (``Owner.Name``)."""
        return [".".join([*(h[0] for h in p.hops), p.field.name]) for p in self.columns]


def _attributes(sobject: str, row: Row, base_path: str) -> dict[str, str]:
    return {"type": sobject, "url": f"{base_path}/sobjects/{sobject}/{row.get('Id')}"}


def _invalid_field(query: Query, ref: FieldRef, obj: str) -> SoqlError:
    name = ref.path[-1]
    return _error_at(
        query.text,
        ref.pos,
        f"No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, "
        "be sure to append the '__c' after the custom field name. Please reference your WSDL or "
        "the describe call for the appropriate names.",
        code="INVALID_FIELD",
    )


def _bind_path(
    query: Query,
    sobject: ObjectDef,
    ref: FieldRef,
    resolver: Resolver,
    schema: Mapping[str, ObjectDef] = OBJECTS,
) -> _Path:
    objects = [sobject]
    hops: list[tuple[str, FieldDef]] = []
    for segment in ref.path[:-1]:
        refs = [o.relationship_ci(segment) for o in objects]
        found = refs[0]
        if found is None or any(r is None or r.name != found.name for r in refs):
            raise _error_at(
                query.text,
                ref.pos,
                f"Didn't understand relationship '{segment}' in field path. If you are attempting "
                "to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
                code="INVALID_FIELD",
            )
        assert found.relationship_name is not None
        hops.append((found.relationship_name, found))
        objects = [schema[name] for name in found.reference_to]
    fields = [o.field_ci(ref.path[-1]) for o in objects]
    final = fields[0]
    if final is None or any(f is None for f in fields):
        raise _invalid_field(query, ref, objects[0].name)
    final_name = final.name

    if not hops:

        def getter(row: Row) -> Any:
            return row.get(final_name)

    else:
        ref_names = [h[1].name for h in hops]

        def getter(row: Row) -> Any:
            current: Row | None = row
            for ref_name in ref_names:
                ref_id = current.get(ref_name) if current is not None else None
                if ref_id is None:
                    return None
                linked = resolver(ref_id)
                if linked is None:
                    return None
                current = linked[1]
            return current.get(final_name) if current is not None else None

    return _Path(tuple(hops), final, getter)


def _type_error(query: Query, lit: Literal, f: FieldDef, expected: str) -> SoqlError:
    quoted = " and should not be enclosed in quotes" if lit.kind == "string" else ""
    return _error_at(
        query.text,
        lit.pos,
        f"value of filter criterion for field '{f.name}' must be of type {expected}{quoted}",
    )


def _date_range(lit: Literal, today: date, is_datetime: bool) -> tuple[str, str]:
    name, amount = lit.value
    if name == "TODAY":
        lo, hi = today, today + timedelta(days=1)
    elif name == "YESTERDAY":
        lo, hi = today - timedelta(days=1), today
    elif name == "TOMORROW":
        lo, hi = today + timedelta(days=1), today + timedelta(days=2)
    elif name == "LAST_N_DAYS":
        lo, hi = today - timedelta(days=amount), today + timedelta(days=1)
    else:  # NEXT_N_DAYS
        lo, hi = today + timedelta(days=1), today + timedelta(days=amount + 1)
    if is_datetime:
        return (lo.isoformat() + "T00:00:00.000+0000", hi.isoformat() + "T00:00:00.000+0000")
    return lo.isoformat(), hi.isoformat()


def _coerce(query: Query, lit: Literal, f: FieldDef) -> Any:
    """A literal as a comparable wire value for ``f`` (strings casefolded), or a type error."""
    if lit.kind == "null":
        return None
    kind = f.type
    if kind in ("id", "reference"):
        if lit.kind != "string":
            raise _type_error(query, lit, f, "id")
        normalized = normalize_id(lit.value)
        if normalized is None:
            raise _error_at(
                query.text,
                lit.pos,
                f"invalid ID field: {lit.value}",
                code="INVALID_QUERY_FILTER_OPERATOR",
            )
        return normalized
    if kind in STRING_TYPES:
        if lit.kind != "string":
            raise _type_error(query, lit, f, "string")
        return lit.value.replace("\\%", "%").replace("\\_", "_").casefold()
    if kind == "boolean":
        if lit.kind != "bool":
            raise _type_error(query, lit, f, "boolean")
        return lit.value
    if kind in ("int", "double", "currency", "percent"):
        if lit.kind != "number":
            raise _type_error(query, lit, f, "double" if kind != "int" else "int")
        return lit.value
    if kind == "date":
        if lit.kind != "date":
            raise _type_error(query, lit, f, "date")
        return lit.value
    if kind == "datetime":
        if lit.kind != "datetime":
            raise _type_error(query, lit, f, "dateTime")
        return lit.value
    raise _type_error(query, lit, f, kind)


def _like_matcher(pattern: str) -> Callable[[Any], bool]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    compiled = re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
    return lambda value: isinstance(value, str) and compiled.fullmatch(value) is not None


def _compile_comparison(
    query: Query,
    node: Comparison,
    sobject: ObjectDef,
    resolver: Resolver,
    today: date,
    *,
    schema: Mapping[str, ObjectDef],
) -> Callable[[Row], bool]:
    path = _bind_path(query, sobject, node.field, resolver, schema)
    f, getter = path.field, path.getter
    fold = f.type in STRING_TYPES

    def value_of(row: Row) -> Any:
        value = getter(row)
        return value.casefold() if fold and isinstance(value, str) else value

    if node.op == "LIKE":
        assert isinstance(node.value, Literal)
        if not fold:
            raise _error_at(
                query.text,
                node.pos,
                f"invalid operator on {f.type} field: LIKE",
                code="INVALID_QUERY_FILTER_OPERATOR",
            )
        matcher = _like_matcher(node.value.value)
        return lambda row: matcher(getter(row))
    if node.op in ("IN", "NOT IN"):
        assert isinstance(node.value, tuple)
        values = {_coerce(query, lit, f) for lit in node.value}
        if node.op == "IN":
            return lambda row: value_of(row) in values
        return lambda row: value_of(row) not in values
    assert isinstance(node.value, Literal)
    lit = node.value
    op = node.op
    if lit.kind == "date_fn":
        if f.type not in ("date", "datetime"):
            raise _type_error(query, lit, f, f.type)
        lo, hi = _date_range(lit, today, f.type == "datetime")
        ranged: dict[str, Callable[[Any], bool]] = {
            "=": lambda v: lo <= v < hi,
            "!=": lambda v: not lo <= v < hi,
            "<": lambda v: v < lo,
            "<=": lambda v: v < hi,
            ">": lambda v: v >= hi,
            ">=": lambda v: v >= lo,
        }
        test = ranged[op]
        if op == "!=":
            return lambda row: (v := getter(row)) is None or test(v)
        return lambda row: (v := getter(row)) is not None and test(v)
    target = _coerce(query, lit, f)
    if target is None:
        if op == "=":
            return lambda row: getter(row) is None
        if op == "!=":
            return lambda row: getter(row) is not None
        raise _error_at(
            query.text,
            lit.pos,
            f"invalid operator on null value: {op}",
            code="INVALID_QUERY_FILTER_OPERATOR",
        )
    if op == "=":
        return lambda row: value_of(row) == target
    if op == "!=":
        return lambda row: value_of(row) != target
    if f.type == "boolean":
        raise _error_at(
            query.text,
            node.pos,
            f"invalid operator on boolean field: {op}",
            code="INVALID_QUERY_FILTER_OPERATOR",
        )
    compare: dict[str, Callable[[Any], bool]] = {
        "<": lambda v: v < target,
        "<=": lambda v: v <= target,
        ">": lambda v: v > target,
        ">=": lambda v: v >= target,
    }
    check = compare[op]
    return lambda row: (v := value_of(row)) is not None and check(v)


def _compile_condition(
    query: Query,
    node: Any,
    sobject: ObjectDef,
    resolver: Resolver,
    today: date,
    *,
    schema: Mapping[str, ObjectDef],
) -> Callable[[Row], bool]:
    if isinstance(node, Comparison):
        return _compile_comparison(query, node, sobject, resolver, today, schema=schema)
    if isinstance(node, Not):
        inner = _compile_condition(query, node.item, sobject, resolver, today, schema=schema)
        return lambda row: not inner(row)
    assert isinstance(node, BoolOp)
    parts = [
        _compile_condition(query, item, sobject, resolver, today, schema=schema)
        for item in node.items
    ]
    if node.op == "AND":
        return lambda row: all(p(row) for p in parts)
    return lambda row: any(p(row) for p in parts)


def _index_hint(query: Query, node: Any, sobject: ObjectDef) -> tuple[str, list[Any]] | None:
    candidates = node.items if isinstance(node, BoolOp) and node.op == "AND" else (node,)
    for item in candidates:
        if not isinstance(item, Comparison) or item.op not in ("=", "IN"):
            continue
        if len(item.field.path) != 1:
            continue
        f = sobject.field_ci(item.field.path[0])
        if f is None or not (f.indexed or f.type == "id" or f.unique):
            continue
        literals = item.value if isinstance(item.value, tuple) else (item.value,)
        if any(lit.kind in ("null", "date_fn") for lit in literals):
            continue
        return f.name, [_coerce(query, lit, f) for lit in literals]
    return None


def compile_query(
    query: Query, resolver: Resolver, today: date, schema: Mapping[str, ObjectDef] = OBJECTS
) -> CompiledQuery:
    """Bind a parsed query to ``schema`` (an org's objects; default the standard ones);
    unknown objects or fields raise the real errors."""
    sobject = next((o for o in schema.values() if o.name.lower() == query.sobject.lower()), None)
    if sobject is None:
        raise _error_at(
            query.text,
            query.sobject_pos,
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
            "custom object, be sure to append the '__c' after the entity name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
            code="INVALID_TYPE",
        )
    counts = [item for item in query.select if isinstance(item, CountExpr)]
    if counts and len(query.select) > 1:
        raise _error_at(query.text, counts[0].pos, "Field must be grouped or aggregated: Id")
    columns: list[_Path] = []
    count_alias = False
    for item in query.select:
        if isinstance(item, CountExpr):
            if item.field is not None:
                _bind_path(query, sobject, item.field, resolver, schema)
                count_alias = True
            continue
        columns.append(_bind_path(query, sobject, item, resolver, schema))
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SoqlError(
            "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
        )
    predicate: Callable[[Row], bool] = lambda _row: True  # noqa: E731
    hint = None
    if query.where is not None:
        predicate = _compile_condition(query, query.where, sobject, resolver, today, schema=schema)
        hint = _index_hint(query, query.where, sobject)
    order = [
        (
            _bind_path(query, sobject, item.field, resolver, schema).getter,
            item.descending,
            item.nulls_first,
        )
        for item in query.order
    ]
    return CompiledQuery(
        query=query,
        sobject=sobject,
        columns=columns,
        count_only=bool(counts),
        count_alias=count_alias,
        predicate=predicate,
        order=order,
        limit=query.limit,
        offset=query.offset or 0,
        index_hint=hint,
        resolver=resolver,
    )
