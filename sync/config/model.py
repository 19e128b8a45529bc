"""The validated configuration the rest of closedloop reads: ``Config`` and its connections.

``load_config`` (``sync.config.loader``) builds a ``Config`` once every reference is checked and
every path made absolute; from then on it answers the ledger URL (``CLOSEDLOOP_DATABASE_URL``
first), a connection's API budget, and the effective configuration with secrets masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connectors.registry import get_connector
from sync.alerts.settings import AlertsConfig
from sync.config.sections import (
    AnalyticsSection,
    AttributionSection,
    Budget,
    LedgerConfig,
    LoggingConfig,
    MappingsSection,
    Pipeline,
    SyncLogSection,
)
from sync.ui.settings import UiSettings

__all__ = ["DATABASE_URL_ENV", "Config", "Connection"]

DATABASE_URL_ENV = "CLOSEDLOOP_DATABASE_URL"


@dataclass(frozen=True)
class Connection:
    """A named connection: its connector type, that type's roles and its validated settings."""

    name: str
    type: str
    roles: frozenset[str]
    settings: BaseModel

    def build(self) -> Any:
        """Build the connector instance (imports the vendor SDK only now)."""
        return get_connector(self.type).build(self.name, self.settings)


@dataclass(frozen=True)
class Config:
    """A valid closedloop.yaml: every reference checked, every path absolute."""

    path: Path
    version: int
    ledger: LedgerConfig
    logging: LoggingConfig
    connections: Mapping[str, Connection]
    pipelines: Mapping[str, Pipeline]
    budgets: Mapping[str, Budget]
    attribution: AttributionSection = field(default_factory=AttributionSection)
    analytics: AnalyticsSection = field(default_factory=AnalyticsSection)
    mappings: MappingsSection = field(default_factory=MappingsSection)
    ui: UiSettings = field(default_factory=UiSettings)
    sync_log: SyncLogSection = field(default_factory=SyncLogSection)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    def database_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """``CLOSEDLOOP_DATABASE_URL``, else ``ledger.url`` (relative SQLite paths from the
        config's folder), else None for the ledger's own default."""
        env = os.environ if environ is None else environ
        if env.get(DATABASE_URL_ENV):
            return env[DATABASE_URL_ENV]
        if self.ledger.url is None:
            return None
        from sqlalchemy.engine import make_url

        url = make_url(self.ledger.url)
        database = url.database or ""
        if (
            url.get_backend_name() == "sqlite"
            and database not in ("", ":memory:")
            and not database.startswith("file:")
            and not Path(database).is_absolute()
        ):
            resolved = url.set(database=str(self.path.parent / database))
            return resolved.render_as_string(hide_password=False)
        return self.ledger.url

    def budget(self, connection: str) -> Budget:
        """The API budget of ``connection``: its ``budgets`` entry, the share taken from the
        connection's own ``daily_budget_share`` when the entry does not set one."""
        entry = self.budgets.get(connection, Budget())
        share = getattr(self.connections[connection].settings, "daily_budget_share", None)
        if "daily_share" not in entry.model_fields_set and isinstance(share, float):
            return entry.model_copy(update={"daily_share": share})
        return entry

    def display(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The effective configuration as plain data with secrets masked (``config show``)."""
        url = self.database_url(environ)
        if url is not None:
            from sqlalchemy.engine import make_url

            url = make_url(url).render_as_string(hide_password=True)
        return {
            "version": self.version,
            "ledger": {"url": url},
            "logging": self.logging.model_dump(mode="json"),
            "connections": {
                name: {"type": conn.type, **conn.settings.model_dump(mode="json")}
                for name, conn in self.connections.items()
            },
            "pipelines": {
                name: pipeline.model_dump(mode="json", exclude_none=True)
                for name, pipeline in self.pipelines.items()
            },
            "budgets": {name: b.model_dump(mode="json") for name, b in self.budgets.items()},
            "attribution": self.attribution.model_dump(mode="json"),
            "analytics": self.analytics.model_dump(mode="json"),
            "mappings": self.mappings.model_dump(mode="json"),
            "ui": self.ui.model_dump(mode="json"),
            "sync_log": self.sync_log.model_dump(mode="json"),
            "alerts": self.alerts.model_dump(mode="json"),
        }
