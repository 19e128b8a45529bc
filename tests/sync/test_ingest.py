"""Storing touches and dead letters: idempotent on SQLite and PostgreSQL, through the file import
(library and CLI) and through the webhook service."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.exc import StatementError
from typer.testing import CliRunner

from connectors.base import Touch, TouchKind
from connectors.errors import ClosedloopError
from connectors.files import FilesSettings
from sync.cli.import_cmd import import_command, import_file
from sync.cli.serve_cmd import build_service_app
from sync.ingest import GroupCommitter, IngestResult, store_rejects, store_touches
from sync.ledger import make_engine, open_ledger
from sync.ledger.models import DeadLetterRow, TouchRow
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
from tests.connectors.webhook import sender
from tests.connectors.webhook.sender import Client, activity, encode, signed_headers


def _count(engine: Engine, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _touch(source_id: str, email: str = "Ann@Example.com", **extra: Any) -> Touch:
    return Touch(
        source="expo",
        source_id=source_id,
        kind=TouchKind.EVENT_ATTENDED,
        occurred_at=datetime(2024, 5, 14, 9, tzinfo=UTC),
        email=email,
        **extra,
    )


@dataclass(frozen=True)
class _Reject:
    key: str
    code: str = "bad_date"
    reason: str = "line 2: when: 'soon' is not a date"
    payload: dict[str, Any] = field(default_factory=dict)


# --- store_touches / store_rejects ---------------------------------------------------------------


def test_storing_the_same_touches_twice_creates_each_once(ledger_engine: Engine) -> None:
    touches = [_touch("a"), _touch("b"), _touch("a")]

    first = store_touches(ledger_engine, touches)
    second = store_touches(ledger_engine, [*touches, _touch("c")])

    assert (first.inserted, first.duplicates) == (2, 1)
    assert (second.inserted, second.duplicates) == (1, 3)
    assert second.inserted_keys == {"expo:c"}
    assert _count(ledger_engine, TouchRow) == 3
    with ledger_engine.connect() as conn:
        emails = set(conn.execute(select(TouchRow.email)).scalars())  # type: ignore[call-overload]
    assert emails == {"ann@example.com"}


def test_the_first_delivery_of_a_touch_wins(ledger_engine: Engine) -> None:
    store_touches(ledger_engine, [_touch("a", campaign="first")])
    store_touches(ledger_engine, [_touch("a", campaign="second")])

    with ledger_engine.connect() as conn:
        campaigns = list(conn.execute(select(TouchRow.campaign)).scalars())  # type: ignore[call-overload]
    assert campaigns == ["first"]


def test_sqlite_takes_a_thousand_touches_in_statements_of_at_most_a_hundred_rows(
    tmp_path: Path,
) -> None:
    """Each SQLite connection keeps the statements it prepared: a 1,000-row INSERT of touches
    holds ~2 MB there, so the import sends at most 100 rows a statement (and is told of every
    new touch all the same)."""
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    rows_per_insert: list[int] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if statement.startswith("INSERT INTO touch"):
            rows_per_insert.append(statement.count("), (") + 1)

    event.listen(engine, "before_cursor_execute", record)
    result = store_touches(
        engine, [_touch(f"t{n}", email=f"p{n}@example.com") for n in range(1_000)]
    )

    assert result.inserted == 1_000
    assert len(result.inserted_keys) == 1_000
    assert _count(engine, TouchRow) == 1_000
    assert sum(rows_per_insert) == 1_000
    assert max(rows_per_insert) <= 100, rows_per_insert
    engine.dispose()


def test_unstorable_text_in_raw_payloads_is_escaped_not_fatal(ledger_engine: Engine) -> None:
    touch = _touch("a", raw={"note": "nul\x00here", "bytes": "M\udcfcller", "n": float("nan")})

    assert store_touches(ledger_engine, [touch]).inserted == 1

    with ledger_engine.connect() as conn:
        raw = conn.execute(select(TouchRow.raw)).scalar_one()  # type: ignore[call-overload]
    assert raw == {"note": "nul\\x00here", "bytes": "M\\udcfcller", "n": "nan"}


def test_a_large_batch_tells_which_touches_were_new_and_stores_them_cleaned_in_order(
    ledger_engine: Engine,
) -> None:
    # 300 touches: past the size from which PostgreSQL stores them through COPY and one merge.
    store_touches(ledger_engine, [_touch(f"t{n}", campaign="first") for n in range(0, 300, 3)])
    batch = [
        _touch(f"t{n}", email=f"  Person{n}@Example.COM ", campaign=f"c{n}\x07",
               attributes={"n": n, "note": "tab\there"},
               raw={"note": "nul\x00here", "bytes": "M\udcfcller", "nan": float("nan")})
        for n in range(300)
    ]  # fmt: skip

    result = store_touches(ledger_engine, [*batch, batch[1]])

    assert result.inserted_keys == {f"expo:t{n}" for n in range(300) if n % 3}
    assert (result.inserted, result.duplicates) == (200, 101)
    with ledger_engine.connect() as conn:
        rows = conn.execute(select(TouchRow).order_by(TouchRow.id)).all()  # type: ignore[arg-type]
    fresh = [r for r in rows if r.key in result.inserted_keys]
    assert [r.source_id for r in fresh] == [f"t{n}" for n in range(300) if n % 3]
    first = fresh[0]
    assert (first.email, first.campaign) == ("person1@example.com", "c1")
    assert first.attributes == {"n": 1, "note": "tab\there"}
    assert first.raw == {"note": "nul\\x00here", "bytes": "M\\udcfcller", "nan": "nan"}
    assert first.occurred_at == datetime(2024, 5, 14, 9, tzinfo=UTC)
    assert {r.campaign for r in rows if r.key not in result.inserted_keys} == {"first"}


def test_dead_letters_are_written_once_while_open_and_never_hold_secrets(
    ledger_engine: Engine,
) -> None:
    payload = {"row": {"email": "ann\\xff@x.com"}, "signature": "sha256=abc", "token": "t0k3n"}
    rejects = [_Reject("list.csv:2:aa", payload=payload), _Reject("list.csv:3:bb")]

    assert store_rejects(ledger_engine, "import:expo", "pull", rejects) == 2
    assert store_rejects(ledger_engine, "import:expo", "pull", rejects) == 0
    assert store_rejects(ledger_engine, "import:other", "pull", rejects[:1]) == 1

    with ledger_engine.connect() as conn:
        row = conn.execute(
            select(DeadLetterRow).where(DeadLetterRow.record_key == "list.csv:2:aa")  # type: ignore[arg-type]
        ).first()
    assert row is not None
    assert row.payload["row"] == {"email": "ann\\xff@x.com"}
    assert row.payload["signature"] != "sha256=abc"
    assert "t0k3n" not in json.dumps(row.payload)
    assert (row.status, row.stage, row.code) == ("open", "pull", "bad_date")


# --- file import ---------------------------------------------------------------------------------


def test_a_csv_with_malformed_rows_lands_its_valid_rows_and_dead_letters_the_rest(
    ledger_engine: Engine, tmp_path: Path
) -> None:
    bad = bad_csv_cases()
    path = tmp_path / "expo.csv"
    write_csv(path, interleave(bad, [valid_csv(i) for i in range(60)]))
    settings = FilesSettings.model_validate(CSV_MAPPING)

    report = import_file(ledger_engine, path, "expo", settings, batch_size=50, now=NOW)

    assert (report.imported, report.known, report.rejected) == (60, 0, len(bad))
    assert report.read == 60 + len(bad)
    assert _count(ledger_engine, TouchRow, source="expo") == 60
    assert _count(ledger_engine, DeadLetterRow, pipeline="import:expo") == len(bad)
    assert [r.line for r in report.first_rejects] == [3, 5, 7, 9, 11, 13, 15, 17, 19, 21]


def test_reimporting_a_file_creates_no_touch_and_no_dead_letter(
    ledger_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "expo.jsonl"
    bad = bad_jsonl_cases()
    write_jsonl(path, interleave(bad, [valid_jsonl(i) for i in range(30)]))
    settings = FilesSettings.model_validate(JSONL_MAPPING)
    import_file(ledger_engine, path, "expo", settings, now=NOW)

    again = import_file(ledger_engine, path, "expo", settings, now=NOW)

    assert (again.imported, again.known, again.rejected, again.dead_letters) == (0, 30, len(bad), 0)
    assert _count(ledger_engine, TouchRow) == 30
    assert _count(ledger_engine, DeadLetterRow) == len(bad)


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """The closedloop root, as sync.cli mounts it."""

    app.command("import")(import_command)
    return app


def _run(args: list[str]) -> tuple[int, str]:
    """Run ``closedloop import ...``; closedloop errors become (exit code, message) like main()."""
    result = CliRunner().invoke(_cli(), ["import", *args])
    if isinstance(result.exception, ClosedloopError):
        return result.exception.exit_code, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLOSEDLOOP_CONFIG", raising=False)
    monkeypatch.delenv("CLOSEDLOOP_DATABASE_URL", raising=False)
    return tmp_path


def test_the_import_command_reports_counts_and_first_rejects(workdir: Path) -> None:
    (workdir / "cards.csv").write_text(
        "Email,Company\nann@example.com,Acme\n,NoMail\nbob@example\n", encoding="utf-8"
    )
    url = f"sqlite:///{workdir / 'ledger.db'}"
    args = ["cards.csv", "--source", "expo", "--email-column", "Email"]
    args += ["--occurred-at", "2024-05-14T09:00:00+02:00", "--database-url", url]

    code, output = _run(args)
    code_again, output_again = _run(args)

    assert code == 0
    assert "rows read               3" in output
    assert "imported                1" in output
    assert "rejected                2" in output
    assert "line 3: Email: missing" in output
    assert "line 4: expected 2 columns, got 1" in output
    assert code_again == 0
    assert "imported                0" in output_again
    assert "already known           1" in output_again


def test_the_import_command_reads_the_mapping_from_the_config(workdir: Path) -> None:
    (workdir / "closedloop.yaml").write_text(
        "version: 1\n"
        "ledger: {url: sqlite:///ledger.db}\n"
        "connections:\n"
        "  expo:\n"
        "    type: files\n"
        "    delimiter: ';'\n"
        "    columns: {email: E-Mail, occurred_at: Scanned}\n"
        "    kind: event_attended\n"
        "    timezone: Europe/Berlin\n",
        encoding="utf-8",
    )
    (workdir / "scans.csv").write_text(
        "E-Mail;Scanned\nann@example.com;2024-05-14T09:30:00\n", encoding="utf-8"
    )

    code, output = _run(["scans.csv", "--source", "expo"])

    assert code == 0, output
    assert "imported                1" in output
    engine = make_engine(f"sqlite:///{workdir / 'ledger.db'}")
    with engine.connect() as conn:
        kind, occurred = conn.execute(text("SELECT kind, occurred_at FROM touch")).one()
    engine.dispose()
    assert kind == "event_attended"
    assert str(occurred).startswith("2024-05-14 07:30:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["absent.csv", "--source", "x", "--occurred-at-column", "when"], "no such file"),
        (["list.csv", "--source", "x"], "--occurred-at-column or --occurred-at"),
        (["list.csv", "--source", "x", "--occurred-at-column", "When"], "did you mean 'when'"),
        (
            ["list.csv", "--source", "x", "--occurred-at-column", "when", "--kind", "webinar"],
            "--kind",
        ),
        (
            ["list.csv", "--source", "x", "--occurred-at-column", "when", "--format", "xls"],
            "--format",
        ),
        (
            [
                "list.csv",
                "--source",
                "x",
                "--timezone",
                "Mars/Base",
                "--occurred-at-column",
                "when",
            ],
            "time zone",
        ),
        (["list.csv", "--source", "x", "--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_a_bad_file_or_mapping_stops_with_a_message_and_a_nonzero_exit(
    workdir: Path, args: list[str], message: str
) -> None:
    (workdir / "list.csv").write_text("email,when\nann@example.com,2024-05-01\n", encoding="utf-8")

    code, output = _run([*args, "--database-url", f"sqlite:///{workdir / 'ledger.db'}"])

    assert code != 0
    assert message in output
    assert not (workdir / "ledger.db").exists()


# --- webhook service --------------------------------------------------------------------------


def _service(engine: Engine) -> Client:
    app = build_service_app(engine, {"events": sender.settings()}, clock=lambda: sender.NOW)
    return Client(app)


def test_a_webhook_batch_lands_valid_items_and_dead_letters_the_rest(ledger_engine: Engine) -> None:
    items = [activity(i) for i in range(20)]
    items += [activity(100, email="nope"), activity(101, kind="webinar"), {"id": 5}]
    body = encode(items)

    response = _service(ledger_engine).post(
        "/hooks/events", content=body, headers=signed_headers(body)
    )

    assert response.status_code == 207
    assert response.json()["accepted"] == 20
    assert _count(ledger_engine, TouchRow, source="events") == 20
    assert _count(ledger_engine, DeadLetterRow, pipeline="webhook:events") == 3


def test_redelivering_a_webhook_after_a_restart_creates_no_duplicate(ledger_engine: Engine) -> None:
    body = encode([activity(1), activity(2), activity(3, occurred_at="soon")])
    headers = signed_headers(body)

    first = _service(ledger_engine).post("/hooks/events", content=body, headers=headers)
    # A new app has an empty replay cache: only the ledger's keys stop the duplicate.
    again = _service(ledger_engine).post("/hooks/events", content=body, headers=headers)

    assert (first.status_code, again.status_code) == (207, 207)
    assert "X-Closedloop-Redelivery" not in again.headers
    assert _count(ledger_engine, TouchRow) == 2
    assert _count(ledger_engine, DeadLetterRow) == 1


def test_the_health_probes_report_liveness_and_ledger_readiness(
    ledger_engine: Engine, tmp_path: Path
) -> None:
    client = _service(ledger_engine)
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready"}

    broken = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ledger.db'}")
    response = _service(broken).get("/readyz")
    broken.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_concurrent_group_commits_land_once_and_a_bad_caller_fails_alone(
    ledger_engine: Engine,
) -> None:
    committer = GroupCommitter(ledger_engine, idle_seconds=0.2)
    naive = Touch("expo", "naive", TouchKind.FORM_FILL, datetime(2024, 5, 1), "x@example.com")  # noqa: DTZ001 - the bad caller

    def call(index: int) -> IngestResult | str:
        try:
            if index == 7:
                return committer.commit([naive])
            return committer.commit([_touch(f"t{index}"), _touch(f"t{index % 5}")])
        except StatementError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(16)))

    assert "naive datetime" in str(results[7])
    assert sum(r.inserted for r in results if isinstance(r, IngestResult)) == 15
    assert _count(ledger_engine, TouchRow) == 15


def test_callers_sharing_a_group_commit_each_learn_which_of_their_touches_were_new(
    ledger_engine: Engine,
) -> None:
    store_touches(ledger_engine, [_touch("old")])
    committer = GroupCommitter(ledger_engine, idle_seconds=0.2)
    batches = [
        [_touch("a"), _touch("a"), _touch("old")],
        [_touch("a"), _touch("b")],
        [_touch("b"), _touch("c")],
        [_touch("c")],
    ]
    release = threading.Event()

    def hold_the_writer(_conn: Any) -> None:
        # While the writer waits here, the other callers queue up and share the next commit.
        release.wait(10)

    event.listen(ledger_engine, "begin", hold_the_writer)
    try:
        with ThreadPoolExecutor(max_workers=len(batches)) as pool:
            futures = [pool.submit(committer.commit, batch) for batch in batches]
            time.sleep(0.3)
            release.set()
            results = [future.result(timeout=30) for future in futures]
    finally:
        event.remove(ledger_engine, "begin", hold_the_writer)

    assert [r.inserted + r.duplicates for r in results] == [3, 2, 2, 1]
    credited = sorted(key for r in results for key in r.inserted_keys)
    assert credited == ["expo:a", "expo:b", "expo:c"]
    assert [r.inserted for r in results] == [len(r.inserted_keys) for r in results]
    assert _count(ledger_engine, TouchRow) == 4
