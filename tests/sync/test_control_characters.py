"""No stored text holds a control character, and SQLite and PostgreSQL store the same text.

PostgreSQL refuses U+0000 in text and JSONB (psycopg DataError), SQLite takes it: the ledger's
column types clean every text on the way in (``sync.ledger.types``), one-line text losing its
control characters (tabs and line breaks as spaces), multi-line text keeping tab, LF and CR, and
evidence (raw payloads, dead letters, the ids of a touch key) keeping them as visible escapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from connectors.base import Person, PersonKind, Touch, TouchKind
from connectors.errors import RecordRejected
from sync.ingest import insert_rejects, insert_touches
from sync.ledger import LEDGER_METADATA, DeadLetterRow, DispositionRow, PersonRow, TouchRow
from sync.ledger.types import EmailAddress, JsonDocument, LineText, LongText
from sync.pipelines.rows import upsert_people

WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _row(engine: Engine, table: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(table)).one()


def test_a_touch_with_control_characters_in_every_field_is_stored_clean_or_escaped(
    ledger_engine: Engine,
) -> None:
    touch = Touch(
        source="marketo",
        source_id="guid\x00-7",
        kind=TouchKind.EMAIL_OPEN,
        occurred_at=WHEN,
        email=" Ann\x00@Example.com\r\n",
        person_ref="10\x0042",
        campaign="Spring\x00 Webinar\t2026",
        channel="em\x1bail",
        asset="News\u0085letter M\udcfcller",
        attributes={"notes": "line 1\nline 2\x00\x07", "k\x00ey": ["a\x00", 1.5, None]},
        raw={"primaryAttributeValue": "News\x00letter", "bytes": "M\udcfcller"},
    )

    with ledger_engine.begin() as conn:
        stored = insert_touches(conn, [touch])

    row = _row(ledger_engine, TouchRow.__table__)  # type: ignore[attr-defined]
    assert stored.inserted_keys == {"marketo:guid\\x00-7"}
    assert (row.key, row.source_id) == ("marketo:guid\\x00-7", "guid\\x00-7")
    assert row.email == "ann@example.com"
    assert row.person_ref == "1042"
    assert row.campaign == "Spring Webinar 2026"
    assert row.channel == "email"
    assert row.asset == "News letter M\ufffdller"
    assert row.attributes == {"notes": "line 1\nline 2", "key": ["a", 1.5, None]}
    assert row.raw == {"primaryAttributeValue": "News\\x00letter", "bytes": "M\\udcfcller"}


def test_storing_the_same_poisoned_touch_again_is_a_duplicate(ledger_engine: Engine) -> None:
    touch = Touch("marketo", "g\x00", TouchKind.FORM_FILL, WHEN, "ann@example.com")

    with ledger_engine.begin() as conn:
        first = insert_touches(conn, [touch])
    with ledger_engine.begin() as conn:
        again = insert_touches(conn, [touch])

    assert (first.inserted, again.inserted, again.duplicates) == (1, 0, 1)


def test_people_and_dispositions_pulled_from_a_crm_are_stored_clean(
    ledger_engine: Engine,
) -> None:
    person = Person(
        source="salesforce",
        external_id="00Q000000000001AAA",
        kind=PersonKind.LEAD,
        email="bo@example.com",
        first_name="Bo\x00",
        last_name="Li\tu",
        company="ACME\nInc\x1f",
        status="Working\x00",
        fields={"Title": "VP\x00 Sales", "Notes__c": "first line\nsecond\x0b"},
    )
    with ledger_engine.begin() as conn:
        upsert_people(conn, "salesforce", [person])
        conn.execute(
            insert(DispositionRow.__table__),  # type: ignore[attr-defined]
            {
                "crm": "salesforce",
                "object_type": "lead",
                "object_id": person.external_id,
                "field": "Status",
                "old_value": "Open\x00",
                "new_value": "Disqualified",
                "reason": "No budget:\n\tnext year\x00\x07",
                "changed_at": WHEN,
            },
        )

    stored = _row(ledger_engine, PersonRow.__table__)  # type: ignore[attr-defined]
    assert (stored.first_name, stored.last_name, stored.company) == ("Bo", "Li u", "ACME Inc")
    assert stored.status == "Working"
    assert stored.fields == {"Title": "VP Sales", "Notes__c": "first line\nsecond"}
    change = _row(ledger_engine, DispositionRow.__table__)  # type: ignore[attr-defined]
    assert change.old_value == "Open"
    assert change.reason == "No budget:\n\tnext year"  # a reason may hold lines and tabs


def test_a_dead_letter_keeps_its_evidence_visible(ledger_engine: Engine) -> None:
    refused = RecordRejected(
        "Marketo activity g\x00 has an unreadable activityDate '2026\x00'",
        code="BAD_DATE",
        key="marketo:g\x00",
        payload={"marketoGUID": "g\x00", "activityDate": "2026\x00", "note": "a\nb"},
    )

    with ledger_engine.begin() as conn:
        new = insert_rejects(conn, "marketo-to-salesforce", "pull", [refused])
    with ledger_engine.begin() as conn:
        again = insert_rejects(conn, "marketo-to-salesforce", "pull", [refused])

    letter = _row(ledger_engine, DeadLetterRow.__table__)  # type: ignore[attr-defined]
    assert (new, again) == (1, 0)
    assert letter.record_key == "marketo:g\\x00"
    assert letter.reason == "Marketo activity g\\x00 has an unreadable activityDate '2026\\x00'"
    assert letter.payload == {"marketoGUID": "g\\x00", "activityDate": "2026\\x00", "note": "a\nb"}


def test_every_text_column_of_the_ledger_is_guarded() -> None:
    unguarded = [
        f"{table.name}.{column.name}"
        for table in LEDGER_METADATA.tables.values()
        for column in table.columns
        if column.type.python_type is str
        and not isinstance(column.type, LineText | EmailAddress | JsonDocument)
    ]
    assert unguarded == []
    reason = DeadLetterRow.__table__.c.reason.type  # type: ignore[attr-defined]
    assert isinstance(reason, LongText)
