"""The ledger's bulk writes answer alike on SQLite and PostgreSQL, below and above the size from
which PostgreSQL takes its bulk path (COPY, one UPDATE over unnested arrays)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, text

from sync.ledger.dialect import BULK_FROM, update_each
from sync.ledger.models import DeadLetterRow, DeliveryRow

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]


def _deliveries(engine: Engine, touches: int) -> None:
    """``touches`` touches, each with an intended delivery to salesforce and to hubspot."""
    with engine.begin() as conn:
        for n in range(1, touches + 1):
            conn.execute(
                text(
                    "INSERT INTO touch (id, key, source, source_id, kind, occurred_at, attributes, "
                    "raw, pulled_at) VALUES (:id, :key, 'files', :sid, 'email_open', :at, '{}', "
                    "'{}', :at)"
                ),
                {"id": n, "key": f"files:{n}", "sid": str(n), "at": WHEN.replace(tzinfo=None)},
            )
            for sink in ("salesforce", "hubspot"):
                conn.execute(
                    text(
                        "INSERT INTO delivery (touch_id, sink, state, attempts, last_error, "
                        "intended_at) VALUES (:id, :sink, 'intended', 1, 'was pending', :at)"
                    ),
                    {"id": n, "sink": sink, "at": WHEN.replace(tzinfo=None)},
                )


@pytest.mark.parametrize("size", [3, BULK_FROM * 2])
def test_each_row_takes_its_own_values_and_only_the_matching_rows_change(
    ledger_engine: Engine, size: int
) -> None:
    _deliveries(ledger_engine, size + 5)
    confirmed_at = WHEN + timedelta(hours=1)
    with ledger_engine.begin() as conn:
        update_each(
            conn,
            _DELIVERY,
            "touch_id",
            [{"touch_id": n, "crm_id": f"00T{n}"} for n in range(1, size + 1)],
            where={"sink": "salesforce"},
            fixed={"state": "confirmed", "confirmed_at": confirmed_at, "last_error": None},
        )
    with ledger_engine.connect() as conn:
        rows = {(r.touch_id, r.sink): r for r in conn.execute(select(_DELIVERY)).all()}

    for n in range(1, size + 1):
        done = rows[n, "salesforce"]
        assert (done.state, done.crm_id, done.last_error) == ("confirmed", f"00T{n}", None)
        assert done.confirmed_at == confirmed_at
        other = rows[n, "hubspot"]  # another sink: untouched
        assert (other.state, other.crm_id, other.last_error) == ("intended", None, "was pending")
    for n in range(size + 1, size + 6):  # not in the update
        assert rows[n, "salesforce"].state == "intended"


def test_a_lookup_by_many_values_is_one_statement_whatever_their_count(
    ledger_engine: Engine,
) -> None:
    """``AnyOf``: the lookups of a batch (emails, touch ids, any count up to a chunk) send the
    database the same statement every time, so a connection prepares and keeps one, not one per
    count; and they find exactly the rows whose value is among those given."""
    from sqlalchemy import event

    from sync.ledger.dialect import AnyOf

    _deliveries(ledger_engine, 40)
    sent: list[str] = []

    def record(*args: object) -> None:
        if "touch_id" in str(args[2]):
            sent.append(str(args[2]))

    event.listen(ledger_engine, "before_cursor_execute", record)
    found: list[list[int]] = []
    with ledger_engine.connect() as conn:
        for wanted in ([7], [1, 2, 3], list(range(5, 41, 5)), [99, 3]):
            query = select(_DELIVERY.c.touch_id).where(
                _DELIVERY.c.sink == "hubspot", AnyOf(_DELIVERY.c.touch_id, wanted)
            )
            found.append(sorted(conn.execute(query).scalars()))
        names = select(_DELIVERY.c.touch_id).where(
            AnyOf(_DELIVERY.c.sink, ["hubspot", "nowhere"]), _DELIVERY.c.touch_id <= 2
        )
        by_sink = sorted(conn.execute(names).scalars())
    event.remove(ledger_engine, "before_cursor_execute", record)

    assert found == [[7], [1, 2, 3], [5, 10, 15, 20, 25, 30, 35, 40], [3]]
    assert by_sink == [1, 2]
    assert len(sent) == 5
    assert len(set(sent[:4])) == 1, sent[:4]

    # A column whose type cleans what it is given (a dead letter's key loses control characters)
    # compares the cleaned values, as a plain comparison would.
    dead = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with ledger_engine.begin() as conn:
        conn.execute(
            insert(dead).values(
                pipeline="p", stage="push", record_key="files:1\ta", code="c", reason="r",
                payload={}, created_at=WHEN, status="open", attempts=1,
            )
        )  # fmt: skip
        keys = conn.execute(
            select(dead.c.record_key).where(AnyOf(dead.c.record_key, ["files:1\ta", "files:2"]))
        ).scalars()
        assert list(keys) == ["files:1 a"]
