"""Shared fixtures: a fresh PostgreSQL database per test, and ledgers on both backends.

- ``postgres_url``: the URL of a new, empty database ``closedloop_t_<random>`` created on the
  server named by ``CLOSEDLOOP_TEST_POSTGRES_URL`` and dropped after the test (safe under
  pytest-xdist). Unset variable: the test is skipped. Unreachable server: skipped with the
  reason, or failed when ``CLOSEDLOOP_REQUIRE_POSTGRES=1`` (CI).
- ``ledger_url``: parametrized over ``sqlite`` (a file in ``tmp_path``) and ``postgresql``;
  for code that must behave the same on both.
- ``migrated_postgres_url``: like ``postgres_url`` but already at the newest schema (a clone
  of a template migrated once per worker: much faster than migrating each time).
- ``ledger_engine``: an engine with the schema at head, parametrized over ``sqlite`` and
  ``postgresql`` by itself (do not combine with ``ledger_url`` in one test).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url

pytest_plugins = ["sandbox.pytest_plugin"]

# Piped CLI output follows $COLUMNS when set: a width from the shell that started the tests must
# not fold the tables they read (tests that need a width pass it to the command).
os.environ.pop("COLUMNS", None)

POSTGRES_URL_ENV = "CLOSEDLOOP_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "CLOSEDLOOP_REQUIRE_POSTGRES"


def _admin_conninfo(url: URL) -> dict[str, Any]:
    return {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "dbname": url.database or "postgres",
        "connect_timeout": 5,
        "autocommit": True,
    }


@pytest.fixture(autouse=True)
def _secrets_of_the_test_only() -> Iterator[None]:
    """Secrets a test's config registers for masking are forgotten after it: a short secret
    such as "token" must not mask the words of the next test's messages."""
    from sync.logs import scoped_secrets

    with scoped_secrets():
        yield


@pytest.fixture(scope="session")
def _postgres_server() -> URL:
    """The server URL from the environment, checked reachable once per worker."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    if not raw:
        pytest.skip(
            f"set {POSTGRES_URL_ENV}=postgresql+psycopg://user@host:5432/db "
            "to run the PostgreSQL tests"
        )
    url = make_url(raw.replace("postgres://", "postgresql://", 1))
    try:
        with psycopg.connect(**_admin_conninfo(url)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        where = f"{url.host or 'localhost'}:{url.port or 5432}"
        reason = f"PostgreSQL at {where} is unreachable: {str(exc).strip().splitlines()[0]}"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_POSTGRES_ENV}=1)")
        pytest.skip(reason)
    return url


@contextmanager
def _scratch_database(server: URL, template: str | None = None) -> Iterator[str]:
    """Create a uniquely named database (optionally cloned from ``template``), drop it after."""
    name = f"closedloop_t_{uuid.uuid4().hex[:16]}"
    admin = _admin_conninfo(server)
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    with psycopg.connect(**admin) as conn:
        conn.execute(create)
    try:
        yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url(_postgres_server: URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; dropped afterwards."""
    with _scratch_database(_postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_ledger_template(_postgres_server: URL) -> Iterator[str]:
    """A database migrated to head once per worker, cloned by ``migrated_postgres_url``."""
    from sync.ledger import upgrade

    with _scratch_database(_postgres_server) as url:
        upgrade(url)  # disposes its engine: a template must have no open connections
        yield make_url(url).database or ""


@pytest.fixture
def migrated_postgres_url(_postgres_server: URL, _postgres_ledger_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database whose ledger schema is already at head."""
    with _scratch_database(_postgres_server, template=_postgres_ledger_template) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger database URL: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new ledger at the newest schema: SQLite, then PostgreSQL."""
    from sync.ledger import open_ledger

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("migrated_postgres_url")
    engine = open_ledger(url)
    try:
        yield engine
    finally:
        engine.dispose()


ECHO_PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "echo"


@pytest.fixture(scope="session")
def echo_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The echo plugin (``tests/plugins/echo``) installed with pip into a folder of its own, not
    into the venv: put it on ``PYTHONPATH`` (or ``sys.path``) to have it installed."""
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("echo-plugin")
    build = tmp_path_factory.mktemp("echo-build")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
            str(ECHO_PLUGIN_SOURCE),
        ],
        check=True,
        cwd=build,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )  # fmt: skip
    return target
