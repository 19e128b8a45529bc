"""``closedloop db``: what an operator sees when creating, inspecting and migrating the ledger."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import sync.cli
from sync.cli import db_cmd
from sync.ledger import current, head


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def closedloop(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``closedloop db ...`` in-process through the real entry point."""
    if not any(group.name == "db" for group in sync.cli.app.registered_groups):
        # Until the root app mounts `db` itself (sync/cli/__init__.py).
        sync.cli.app.add_typer(db_cmd.app, name="db")

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            sync.cli.main(["db", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_db_upgrade_creates_the_schema_and_current_reports_head(
    closedloop: Run, ledger_url: str
) -> None:
    first = closedloop("upgrade", "--database-url", ledger_url)
    assert first.code == 0, first.err
    assert f"upgraded from empty to {head()}" in first.out
    assert current(ledger_url) == head()

    again = closedloop("upgrade", "--database-url", ledger_url)
    assert again.code == 0
    assert f"already at revision {head()}" in again.out

    shown = closedloop("current", "--database-url", ledger_url)
    assert shown.code == 0
    assert f"revision {head()} (head)" in shown.out


def test_db_current_on_an_empty_database_says_to_upgrade(closedloop: Run, ledger_url: str) -> None:
    shown = closedloop("current", "--database-url", ledger_url)
    assert shown.code == 0
    assert "closedloop db upgrade" in shown.out


def test_db_current_does_not_create_a_missing_sqlite_file(closedloop: Run, tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"
    shown = closedloop("current", "--database-url", f"sqlite:///{path}")
    assert shown.code == 0
    assert "no database file yet" in shown.out
    assert not path.exists()


def test_db_uses_the_environment_url_when_no_option_is_given(
    closedloop: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", f"sqlite:///{path}")
    assert closedloop("upgrade").code == 0
    assert path.exists()


def test_db_downgrade_asks_first_and_drops_nothing_when_refused(
    closedloop: Run, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert closedloop("upgrade", "--database-url", ledger_url).code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    refused = closedloop("downgrade", "base", "--database-url", ledger_url)
    assert refused.code != 0
    assert current(ledger_url) == head()

    done = closedloop("downgrade", "base", "--yes", "--database-url", ledger_url)
    assert done.code == 0, done.err
    assert f"downgraded from {head()} to base" in done.out
    assert current(ledger_url) is None


def test_unreachable_postgres_is_one_clear_line_with_the_password_masked(
    closedloop: Run,
) -> None:
    # Nothing listens on port 1 of the loopback interface: the connection is refused at once.
    url = "postgresql://closedloop:hunter2-secret@127.0.0.1:1/ledger"
    for command in ("upgrade", "current"):
        result = closedloop(command, "--database-url", url)
        assert result.code != 0
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert "127.0.0.1:1" in lines[0]
        assert "hunter2-secret" not in result.err + result.out
        assert "***" in lines[0]
        assert "Traceback" not in result.err


def test_the_password_of_a_working_postgres_url_is_never_printed(
    closedloop: Run, postgres_url: str
) -> None:
    # The test server trusts local connections, so any password is accepted and ignored.
    url = (
        make_url(postgres_url).set(password="hunter2-secret").render_as_string(hide_password=False)
    )
    result = closedloop("upgrade", "--database-url", url)
    assert result.code == 0, result.err
    assert "hunter2-secret" not in result.out + result.err
    assert "***" in result.out


def test_an_unsupported_database_url_is_a_configuration_error(
    closedloop: Run,
) -> None:
    result = closedloop("current", "--database-url", "mysql://root:hunter2-secret@db/x")
    assert result.code == 2
    assert "unsupported ledger database" in result.err
    assert "hunter2-secret" not in result.err


def test_a_sqlite_path_in_a_missing_directory_says_so(closedloop: Run, tmp_path: Path) -> None:
    result = closedloop(
        "upgrade", "--database-url", f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}"
    )
    assert result.code == 2
    assert "does its directory exist" in result.err


def test_db_upgrade_sql_prints_the_ddl_without_touching_the_database(
    closedloop: Run,
) -> None:
    result = closedloop(
        "upgrade", "--sql", "--database-url", "postgresql://u:hunter2-secret@127.0.0.1:1/x"
    )
    assert result.code == 0, result.err
    assert "CREATE TABLE touch" in result.out
    assert "JSONB" in result.out
