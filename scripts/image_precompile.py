"""Byte-compile only what closedloop imports: run in the image build after deleting every .pyc.

The vendor SDKs ship far more modules than closedloop uses (HubSpot's generated API client
alone compiles to ~28 MB). The image keeps the bytecode of the modules this walk imports (every
module of closedloop's packages and the SDK entry points they import lazily) and leaves the rest
to be compiled in memory on the rare first use, which keeps the image within its size goal.
"""

from __future__ import annotations

import importlib
import pkgutil

# Imported inside functions by the connectors and commands (lazy imports keep --help fast).
LAZY = [
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "alembic.script",
    "apscheduler.executors.pool",
    "apscheduler.jobstores.memory",
    "apscheduler.schedulers.background",
    "apscheduler.triggers.cron",
    "apscheduler.triggers.interval",
    "cryptography.x509",
    "hubspot",
    "jinja2.sandbox",
    "jwt",
    "psycopg",
    "rapidfuzz.process",
    "simple_salesforce.api",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "trustme",
    "uvicorn",
    "uvicorn.protocols.http.h11_impl",
]

# Modules for tests only (they import pytest, which the image does not have), and Alembic's
# migration environment, which runs only inside Alembic (its scripts compile when it runs them).
SKIP = {"connectors.testing", "sandbox.pytest_plugin"}
SKIP_UNDER = ".migrations"


def main() -> None:
    for top in ("connectors", "sync", "sandbox"):
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            if info.name not in SKIP and SKIP_UNDER not in info.name:
                importlib.import_module(info.name)
    for name in LAZY:
        importlib.import_module(name)


if __name__ == "__main__":
    main()
