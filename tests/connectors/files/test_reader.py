"""The file reader: valid rows become touches, every malformed row a reject with its line number."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Touch, TouchKind
from connectors.errors import ConfigError
from connectors.files import FilesSettings, Reject, read_file
from tests.connectors.files.malformed import (
    CSV_MAPPING,
    JSONL_MAPPING,
    NOW,
    bad_csv_cases,
    bad_jsonl_cases,
    interleave,
    valid_csv,
    valid_jsonl,
    write_csv,
    write_jsonl,
)


def _read(path: Path, mapping: Mapping[str, Any], source: str = "list") -> list[Touch | Reject]:
    return list(read_file(path, source, FilesSettings.model_validate(mapping), now=NOW))


def test_every_malformed_csv_row_is_rejected_with_its_line_and_reason(tmp_path: Path) -> None:
    bad = bad_csv_cases()
    valid = [valid_csv(i) for i in range(40)]
    expected = write_csv(tmp_path / "list.csv", interleave(bad, valid))

    records = _read(tmp_path / "list.csv", CSV_MAPPING)

    rejects = {r.line: r for r in records if isinstance(r, Reject)}
    touches = [r for r in records if isinstance(r, Touch)]
    assert len(bad) >= 130
    assert {line: r.code for line, r in rejects.items()} == {
        line: code for line, code in expected.items() if code is not None
    }
    assert all(
        r.reason.startswith(f"line {r.line}: ") and len(r.reason) > 12 for r in rejects.values()
    )
    expected_emails = sorted(f"person{i}@example.com" for i in range(40))
    assert sorted(str(t.email) for t in touches) == expected_emails


def test_every_malformed_jsonl_record_is_rejected_with_its_line_and_reason(tmp_path: Path) -> None:
    bad = bad_jsonl_cases()
    valid = [valid_jsonl(i) for i in range(30)]
    expected = write_jsonl(tmp_path / "list.jsonl", interleave(bad, valid))

    records = _read(tmp_path / "list.jsonl", JSONL_MAPPING)

    rejects = {r.line: r.code for r in records if isinstance(r, Reject)}
    assert len(bad) >= 50
    assert rejects == {line: code for line, code in expected.items() if code is not None}
    assert sum(isinstance(r, Touch) for r in records) == 30


def test_reject_payloads_keep_undecodable_bytes_as_escaped_text(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(
        b"email,occurred_at,kind,campaign,company\nann\xff@x.com,2024-05-01,form_fill,c,d\n"
    )

    (reject,) = _read(path, {**CSV_MAPPING, "encoding": "utf-8"})

    assert isinstance(reject, Reject)
    assert reject.code == "non_utf8"
    assert reject.payload["row"]["email"] == "ann\\xff@x.com"
    assert reject.payload["line"] == 2


def test_a_badge_scan_export_maps_columns_kinds_and_local_time(tmp_path: Path) -> None:
    path = tmp_path / "badges.csv"
    path.write_text(
        "E-Mail;Scanned;Booth;Title\n"
        "Ann.Lee@Example.COM ;14.05.2024 09:30;Hall 2;CTO\n"
        "bob@example.org;14.05.2024 17:05;Hall 2;\n",
        encoding="utf-8",
    )
    settings = {
        "delimiter": ";",
        "columns": {"email": "E-Mail", "occurred_at": "Scanned", "campaign": "Booth"},
        "kind": "event_attended",
        "date_formats": ["%d.%m.%Y %H:%M"],
        "timezone": "Europe/Berlin",
    }

    ann, bob = _read(path, settings, source="berlin_booth")

    assert isinstance(ann, Touch)
    assert isinstance(bob, Touch)
    assert ann.email == "ann.lee@example.com"
    assert ann.occurred_at == datetime(2024, 5, 14, 7, 30, tzinfo=UTC)
    assert ann.kind is TouchKind.EVENT_ATTENDED
    assert ann.campaign == "Hall 2"
    # The title column is also the person's title, for a Lead created for a new email.
    assert ann.attributes == {"Title": "CTO", "person": {"title": "CTO"}}
    assert ann.raw["E-Mail"] == "Ann.Lee@Example.COM "
    assert bob.attributes == {}
    assert ann.key.startswith("berlin_booth:h-")


def test_webinar_status_words_translate_to_kinds_and_ids_come_from_a_column(tmp_path: Path) -> None:
    path = tmp_path / "webinar.csv"
    path.write_text(
        "Registrant ID,Email,Join Time,Status\n"
        "r-1,ann@example.com,2024-05-01T14:00:00+02:00,Attended\n"
        "r-2,bob@example.com,2024-05-01T14:00:00+02:00,registered\n"
        "r-3,cy@example.com,2024-05-01T14:00:00+02:00,No-show\n",
        encoding="utf-8",
    )
    settings = {
        "columns": {
            "email": "Email",
            "occurred_at": "Join Time",
            "kind": "Status",
            "source_id": "Registrant ID",
        },
        "kind_values": {"Attended": "webinar_attended", "Registered": "webinar_registered"},
    }

    ann, bob, cy = _read(path, settings, source="webinar")

    assert isinstance(ann, Touch)
    assert isinstance(bob, Touch)
    assert (ann.kind, ann.key) == (TouchKind.WEBINAR_ATTENDED, "webinar:r-1")
    assert (bob.kind, bob.key) == (TouchKind.WEBINAR_REGISTERED, "webinar:r-2")
    assert ann.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert isinstance(cy, Reject)
    assert cy.code == "unknown_kind"
    assert cy.line == 4


def test_hashed_keys_ignore_case_whitespace_and_time_zone_notation(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    second = tmp_path / "b.csv"
    first.write_text("email,when\nAnn@Example.com,2024-05-01T12:00:00+02:00\n", encoding="utf-8")
    second.write_text("email,when\n ann@example.com ,2024-05-01T10:00:00Z\n", encoding="utf-8")
    mapping = {"columns": {"email": "email", "occurred_at": "when"}}

    (a,) = _read(first, mapping)
    (b,) = _read(second, mapping)

    assert isinstance(a, Touch)
    assert isinstance(b, Touch)
    assert a.key == b.key


def test_the_same_person_at_another_time_is_another_touch(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "email,when\nann@example.com,2024-05-01T10:00:00Z\nann@example.com,2024-05-02T10:00:00Z\n",
        encoding="utf-8",
    )

    a, b = _read(path, {"columns": {"email": "email", "occurred_at": "when"}})

    assert isinstance(a, Touch)
    assert isinstance(b, Touch)
    assert a.key != b.key


def test_a_fixed_trade_show_date_applies_to_every_row(tmp_path: Path) -> None:
    path = tmp_path / "cards.csv"
    path.write_text("email,name\nann@example.com,Ann\n", encoding="utf-8-sig")

    (touch,) = _read(path, {"occurred_at": "2024-05-14T09:00:00+02:00", "campaign": "Expo"})

    assert isinstance(touch, Touch)
    assert touch.kind is TouchKind.LIST_IMPORT
    assert touch.campaign == "Expo"
    assert touch.occurred_at == datetime(2024, 5, 14, 7, tzinfo=UTC)


def test_a_header_without_the_mapped_columns_stops_the_import_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("E-mail,Date\nann@example.com,2024-05-01\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"email='Email' \(did you mean 'E-mail'\?\)"):
        _read(path, {"columns": {"email": "Email", "occurred_at": "Date"}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"email,email,when\n", "twice"),
        (b"em\xffail,when\n", "not valid UTF-8"),
    ],
)
def test_an_unusable_header_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)

    # Declared UTF-8: a byte that is not is an error, not a reason to guess another encoding.
    with pytest.raises(ConfigError, match=message):
        _read(path, {"columns": {"email": "email", "occurred_at": "when"}, "encoding": "utf-8"})


def test_a_missing_file_or_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    mapping = {"columns": {"email": "email", "occurred_at": "when"}}
    with pytest.raises(ConfigError, match="cannot read"):
        _read(tmp_path / "absent.csv", mapping)
    (tmp_path / "list.xlsx").write_bytes(b"PK")
    with pytest.raises(ConfigError, match="--format csv"):
        _read(tmp_path / "list.xlsx", mapping)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"columns": {"email": "e"}}, "say when the touches happened"),
        ({"occurred_at": "2024-05-01T10:00:00"}, "time zone"),
        ({"occurred_at": "2024-05-01T10:00:00Z", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"occurred_at": "2024-05-01T10:00:00Z", "kind": "webinar"}, "kind"),
        ({"occurred_at": "2024-05-01T10:00:00Z", "kind_values": {"A": "form_fill"}}, "kind_values"),
        ({"occurred_at": "2024-05-01T10:00:00Z", "delimiter": ";;"}, "delimiter"),
        ({"occurred_at": "2024-05-01T10:00:00Z", "colums": {}}, "colums"),
    ],
)
def test_bad_mappings_are_refused_by_the_settings_model(
    mapping: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        FilesSettings.model_validate(mapping)


def test_the_reader_streams_rows_instead_of_reading_the_whole_file_first(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("wb") as handle:
        handle.write(b"email,when\n")
        for i in range(2_000):
            handle.write(f"p{i}@example.com,2024-05-01T10:00:00Z\n".encode())
    settings = FilesSettings.model_validate({"columns": {"occurred_at": "when"}})
    records = read_file(path, "big", settings)

    first = next(records)
    with path.open("ab") as handle:  # rows appended after reading began are still read
        handle.write(b"late@example.com,2024-05-01T10:00:00Z\n")
    rest = list(records)

    assert isinstance(first, Touch)
    assert first.email == "p0@example.com"
    assert len(rest) == 2_000
    assert isinstance(rest[-1], Touch)
    assert rest[-1].email == "late@example.com"
