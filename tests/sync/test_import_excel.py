"""``closedloop import`` of lists as Excel and event apps write them: cp1252 or UTF-8 with or
without a byte-order mark, UTF-16 "Unicode text", ``;`` / tab / ``,`` delimiters, and the
person's name, company and title columns carried with each touch."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sync.cli import app
from sync.ledger import make_engine
from sync.ledger.models import DeadLetterRow, TouchRow

PEOPLE = [
    ("juergen.mueller@example.de", "Jürgen", "Müller", "Bäcker & Söhne GmbH", "Geschäftsführer"),
    ("renee@example.fr", "Renée", "Lefèvre", "Société Générale", "Directrice \u2013 Marketing"),
    ("bo@example.com", "Bo", "O'Brien", "Acme, Inc.", "CTO"),
]
HEADER = ("E-Mail", "Vorname", "Nachname", "Firma", "Position")


def _lines(delimiter: str) -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if delimiter in value or '"' in value else value

    rows = [delimiter.join(HEADER)]
    rows += [delimiter.join(cell(v) for v in person) for person in PEOPLE]
    return "\r\n".join(rows) + "\r\n"


# name -> (the file's bytes, the encoding and delimiter the import must say it read it with)
VARIANTS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "excel-csv-cp1252": (lambda: _lines(";").encode("cp1252"), "cp1252 (detected)", ";"),
    "excel-csv-utf8-bom": (
        lambda: codecs.BOM_UTF8 + _lines(";").encode("utf-8"),
        "utf-8 (byte-order mark)",
        ";",
    ),
    "cp1252-behind-a-utf8-bom": (
        lambda: codecs.BOM_UTF8 + _lines(";").encode("cp1252"),
        "cp1252 (detected)",
        ";",
    ),
    "excel-unicode-text": (lambda: _lines("\t").encode("utf-16"), "utf-16 (byte-order mark)", "\t"),
    "utf8-comma": (lambda: _lines(",").encode("utf-8"), "utf-8 (UTF-8)", ","),
}


def _import(folder: Path, name: str, *extra: str) -> tuple[int, str]:
    args = ["import", str(folder / name), "--source", "expo", "--email-column", "E-Mail"]
    args += ["--occurred-at", "2024-05-14T09:00:00+02:00", "--campaign", "Messe Köln"]
    args += ["--database-url", f"sqlite:///{folder / 'ledger.db'}", *extra]
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return 2, str(result.exception)
    return result.exit_code, result.output


def _stored(folder: Path) -> tuple[list[dict[str, object]], list[str]]:
    engine = make_engine(f"sqlite:///{folder / 'ledger.db'}")
    try:
        with engine.connect() as conn:
            touches = conn.execute(select(TouchRow.email, TouchRow.campaign, TouchRow.attributes))
            people = [
                {"email": email, "campaign": campaign, **(attributes or {}).get("person", {})}
                for email, campaign, attributes in touches
            ]
            reasons = [r[0] for r in conn.execute(select(DeadLetterRow.reason))]
    finally:
        engine.dispose()
    return sorted(people, key=lambda p: str(p["email"])), reasons


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_an_excel_export_imports_with_names_whatever_its_encoding_and_delimiter(
    tmp_path: Path, variant: str
) -> None:
    content, read_as, delimiter = VARIANTS[variant]
    (tmp_path / "scans.csv").write_bytes(content())

    code, output = _import(tmp_path, "scans.csv")

    assert code == 0, output
    assert f"read as {read_as}, delimiter {delimiter!r} (found)" in output
    assert "first_name='Vorname', last_name='Nachname', company='Firma', title='Position'" in output
    assert "imported                3" in output
    assert "rejected                0" in output
    people, reasons = _stored(tmp_path)
    assert reasons == []
    expected = [
        {"email": e, "campaign": "Messe Köln", "first_name": f, "last_name": ln, "company": c,
         "title": t}
        for e, f, ln, c, t in PEOPLE
    ]  # fmt: skip
    assert people == sorted(expected, key=lambda p: str(p["email"]))


def test_a_late_cp1252_row_says_which_option_reads_it_and_the_option_does(tmp_path: Path) -> None:
    # A megabyte of plain ASCII rows, then one name in cp1252: the start reads as UTF-8.
    filler = "".join(f"p{i}@example.com;Ann;Lee;Acme;CEO\r\n" for i in range(40_000))
    late = "juergen.mueller@example.de;Jürgen;Müller;Bäcker GmbH;Chef\r\n"
    data = (";".join(HEADER) + "\r\n" + filler + late).encode("cp1252")
    assert len(data) > 1024 * 1024
    (tmp_path / "big.csv").write_bytes(data)

    code, output = _import(tmp_path, "big.csv")

    assert code == 0, output
    assert "rejected                1" in output
    _, reasons = _stored(tmp_path)
    (reason,) = reasons
    assert "not valid UTF-8" in reason
    assert "read as utf-8 (UTF-8)" in reason
    assert "--encoding" in reason

    code, output = _import(tmp_path, "big.csv", "--encoding", "cp1252")

    assert code == 0, output
    assert "read as cp1252 (given)" in output
    people, _ = _stored(tmp_path)
    assert {"first_name": "Jürgen", "last_name": "Müller"}.items() <= next(
        p for p in people if p["email"] == "juergen.mueller@example.de"
    ).items()


def test_a_wrong_delimiter_or_encoding_option_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "scans.csv").write_bytes(_lines(";").encode("cp1252"))

    code, message = _import(tmp_path, "scans.csv", "--delimiter", ",")
    assert code == 2
    assert "the header has: 'E-Mail;Vorname;Nachname;Firma;Position'" in message
    assert "delimiter ','" in message
    assert "--delimiter" in message

    code, message = _import(tmp_path, "scans.csv", "--encoding", "klingon")
    assert code == 2
    assert "--encoding: unknown encoding 'klingon'" in message
