"""Systematically generated malformed rows (CSV and JSONL), each with the reject code it must get.

Shared by the reader tests and the ledger tests (tests/sync/test_ingest.py): valid rows are
interleaved with the bad ones so every test can also check that the good rows still land.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CSV_HEADER = b"email,occurred_at,kind,campaign,company\n"
CSV_MAPPING = {
    "columns": {
        "email": "email",
        "occurred_at": "occurred_at",
        "kind": "kind",
        "campaign": "campaign",
    }
}
JSONL_MAPPING = CSV_MAPPING

GOOD_DATE = "2024-05-01T10:00:00Z"
GOOD_KIND = "webinar_attended"

BAD_EMAILS = [
    "plainaddress",
    "@no-local.com",
    "no-at.example.com",
    "two@@example.com",
    "a@b",
    "a@b.c",
    "a b@example.com",
    "a@exa mple.com",
    "a@-example.com",
    "a@example-.com",
    "a..b@example.com",
    "a@example..com",
    "a@example.c0m",
    "x" * 65 + "@example.com",
    "a@example.com, b@example.com",
    "<a@example.com>",
    "a@example.com.",
    "mailto:a@example.com",
    "a@[127.0.0.1]",
    "\u00e4@example.com",
]
BAD_DATES = [
    "yesterday",
    "2024-13-01",
    "2024-02-30",
    "2024-05-01T25:00:00",
    "01/05/2024",
    "2024/05/01",
    "1899-01-01",
    "1989-12-31T23:59:59Z",
    "2999-01-01",
    "12345",
    "2024-05-01T10:00:00+25:00",
    "2024-05-01T10:00:00Zjunk",
    "NaN",
    "0000-00-00",
    "May 1st",
    "2024-05-01 10:00:00 PST",
]
BAD_KINDS = [
    "webinar",
    "attended",
    "EMAIL-OPEN",
    "email open",
    "form-fill",
    "pageview",
    "click",
    "unknown",
    "42",
    "list import",
]
# C0 controls except tab, LF and CR (legitimate inside a quoted cell), DEL, some C1.
CONTROL_CHARS = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + [
    "\x7f",
    "\x80",
    "\x85",
    "\x9f",
]
BAD_BYTES = [
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xa0\xa1",
    b"\xe2\x28\xa1",
    b"\xf0\x28\x8c\xbc",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\x80",
    b"\xf8\xa1\xa1\xa1\xa1",
]


@dataclass(frozen=True)
class Case:
    """One physical record of a test file and the reject code it must get (None: valid)."""

    record: bytes
    code: str | None


def _cell(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_row(
    email: str = "ann@example.com",
    occurred_at: str = GOOD_DATE,
    kind: str = GOOD_KIND,
    campaign: str = "Spring webinar",
    company: str = "Acme",
) -> bytes:
    """One CSV line with the test header's five columns."""
    cells = [email, occurred_at, kind, campaign, company]
    return (",".join(_cell(c) for c in cells) + "\n").encode("utf-8")


def valid_csv(index: int) -> Case:
    """A valid row, unique per index."""
    return Case(csv_row(email=f"person{index}@example.com", company=f"Acme {index}"), None)


def bad_csv_cases() -> list[Case]:
    """Every malformed CSV record the importer must reject, with its code."""
    cases: list[Case] = []
    cases += [Case(csv_row(email=e), "missing_email") for e in ("", "   ")]
    cases += [Case(csv_row(email=e), "invalid_email") for e in BAD_EMAILS]
    cases.append(Case(csv_row(email="a@" + "b" * 250 + ".com"), "too_long"))
    cases.append(Case(csv_row(occurred_at=""), "missing_date"))
    cases += [Case(csv_row(occurred_at=d), "bad_date") for d in BAD_DATES]
    cases.append(Case(csv_row(kind=""), "missing_kind"))
    cases += [Case(csv_row(kind=k), "unknown_kind") for k in BAD_KINDS]
    for char in CONTROL_CHARS:
        cases.append(Case(csv_row(email=f"ann{char}@example.com"), "control_character"))
        cases.append(Case(csv_row(company=f"Acme{char}Corp"), "control_character"))
    for raw in BAD_BYTES:
        email_line = csv_row(email="ZZZ@example.com").replace(b"ZZZ", b"ann" + raw)
        company_line = csv_row(company="ZZZ").replace(b"ZZZ", b"M" + raw + b"ller")
        cases += [Case(email_line, "non_utf8"), Case(company_line, "non_utf8")]
    cases.append(Case(csv_row(company="x" * 1001), "too_long"))
    cases.append(Case(csv_row(campaign="c" * 1001), "too_long"))
    cases.append(Case(b"ann@example.com," + GOOD_DATE.encode() + b"\n", "wrong_column_count"))
    cases.append(Case(csv_row().replace(b"\n", b",extra,cells\n"), "wrong_column_count"))
    cases.append(Case(b"x" * (1024 * 1024 + 10) + b"\n", "too_long"))
    cases.append(Case(csv_row(company='"' + "q" * 140_000), "malformed_csv"))
    return cases


def write_csv(path: Path, cases: list[Case]) -> dict[int, str | None]:
    """Write the header and ``cases``; returns line number -> expected code for each record."""
    expected: dict[int, str | None] = {}
    line = 1
    with path.open("wb") as handle:
        handle.write(CSV_HEADER)
        for case in cases:
            line += 1
            expected[line] = case.code
            handle.write(case.record)
            line += case.record.count(b"\n") - 1
    return expected


def interleave(bad: list[Case], valid: list[Case]) -> list[Case]:
    """Alternate valid and bad records so rejects sit between rows that must land."""
    out: list[Case] = []
    for index in range(max(len(bad), len(valid))):
        if index < len(valid):
            out.append(valid[index])
        if index < len(bad):
            out.append(bad[index])
    return out


def jsonl_record(**fields: object) -> bytes:
    """One JSONL line: a valid record updated with ``fields`` (a value of ... removes the key)."""
    base: dict[str, object] = {
        "email": "ann@example.com",
        "occurred_at": GOOD_DATE,
        "kind": GOOD_KIND,
        "campaign": "Spring webinar",
        "company": "Acme",
    }
    for key, value in fields.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return (json.dumps(base) + "\n").encode("utf-8")


def valid_jsonl(index: int) -> Case:
    """A valid JSONL record, unique per index."""
    return Case(jsonl_record(email=f"person{index}@example.com", company=f"Acme {index}"), None)


def bad_jsonl_cases() -> list[Case]:
    """Every malformed JSONL record the importer must reject, with its code."""
    cases: list[Case] = []
    cases.append(Case(jsonl_record(email=...), "missing_email"))
    cases.append(Case(jsonl_record(email=None), "missing_email"))
    wrong_emails: list[object] = [42, True, [], {}, 1.5, ["a@b.com"]]
    cases += [Case(jsonl_record(email=value), "wrong_type") for value in wrong_emails]
    cases += [Case(jsonl_record(email=e), "invalid_email") for e in BAD_EMAILS[:8]]
    wrong_dates: list[object] = [[], {}, True, "2024-05-01T10:00:00Z" + "x" * 70]
    for date in wrong_dates:
        code = "too_long" if isinstance(date, str) else "wrong_type"
        cases.append(Case(jsonl_record(occurred_at=date), code))
    epochs: list[object] = [-1e20, 1e300, 100, 4102444800]
    cases += [Case(jsonl_record(occurred_at=value), "bad_date") for value in epochs]
    cases += [Case(jsonl_record(occurred_at=d), "bad_date") for d in BAD_DATES[:6]]
    wrong_kinds: list[object] = [3, [], {"kind": "form_fill"}, False]
    cases += [Case(jsonl_record(kind=value), "wrong_type") for value in wrong_kinds]
    cases.append(Case(jsonl_record(kind="pageview"), "unknown_kind"))
    wrong_campaigns: list[object] = [5, {}, ["Spring"], True]
    cases += [Case(jsonl_record(campaign=value), "wrong_type") for value in wrong_campaigns]
    cases += [
        Case(b"[1, 2]\n", "wrong_type"),
        Case(b'"text"\n', "wrong_type"),
        Case(b"42\n", "wrong_type"),
        Case(b"null\n", "wrong_type"),
        Case(b"{bad json\n", "invalid_json"),
        Case(b"{'single': 'quotes'}\n", "invalid_json"),
        Case(b'{"email": "a@b.com",}\n', "invalid_json"),
        Case(b'{"email": "\xff@example.com"}\n', "non_utf8"),
        Case(b"[" * 100_000 + b"\n", "too_deep"),
        # A number longer than Python converts (4,300 digits): a ValueError, not a decode error.
        Case(jsonl_record().replace(b'"Acme"', b"9" * 5000), "invalid_json"),
        Case(jsonl_record(company="\ud800"), "invalid_unicode"),
        Case(jsonl_record(company="a\u0000b"), "control_character"),
        Case(jsonl_record(company=json.loads("[" * 40 + "]" * 40)), "too_deep"),
        Case(jsonl_record().replace(b'"Acme"', b"NaN"), "wrong_type"),
        Case(jsonl_record(company="y" * (1024 * 1024 + 5)), "too_long"),
    ]
    return cases


def write_jsonl(path: Path, cases: list[Case]) -> dict[int, str | None]:
    """Write ``cases`` one per line; returns line number -> expected code."""
    expected: dict[int, str | None] = {}
    with path.open("wb") as handle:
        for line, case in enumerate(cases, start=1):
            expected[line] = case.code
            handle.write(case.record)
    return expected
