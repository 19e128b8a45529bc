"""``closedloop.yaml``: read, interpolate, validate and cross-check the one configuration file.

The file names connections (each of a connector type from ``connectors.registry``, validated
against that type's own settings model), pipelines between them, API budgets, the ledger URL and
logging. ``load_config`` reports EVERY problem at once as a ``ConfigError`` whose issues carry
file, line, column and key path, so ``closedloop config check`` can be fixed in one pass.

Before validation, string values are interpolated (``${VAR}``, ``${VAR:-default}``; ``$${`` is a
literal ``${``), and a key ``<name>_file`` whose model has a field ``<name>`` (and none named
``<name>_file``) is replaced by the content of that file (one trailing newline stripped): the way
to keep secrets out of the YAML. Relative paths, in ``*_file`` keys and in every ``Path`` field,
are relative to the config file's folder, never to the working directory. Every secret loaded is
registered with ``sync.logs.register_secret`` and scrubbed from error messages.

Pipeline kinds and the roles their ends need (a connector type declares its roles)::

    kind           source          sink            mapping
    touches        "source" role   "crm" role      required
    dispositions   "crm" role      (none)          optional (its lifecycle section)
    reconcile      "crm" role      (none)          optional
    recycle        "crm" role      "source" role   optional
    attribution    "crm" role      (none)          (none); writes back with attribution.writeback
    sla-writeback  "crm" role      (none)          (none); needs analytics.writeback

The package's modules, by job: ``sections`` (the model of each section, durations), ``model``
(``Config`` and ``Connection``, what the rest of closedloop reads), ``loader`` (finding and
loading the file: interpolation, ``*_file`` secrets, paths, validation, issue reports) and
``checks`` (the checks across sections). Import from ``sync.config``: this module re-exports the
public names.
"""

from __future__ import annotations

from sync.config.loader import CONFIG_ENV, DEFAULT_CONFIG, config_path, load_config
from sync.config.model import DATABASE_URL_ENV, Config, Connection
from sync.config.sections import (
    BUDGETED_TYPES,
    PIPELINE_KINDS,
    AnalyticsSection,
    AttributionSection,
    Budget,
    LedgerConfig,
    LoggingConfig,
    MappingsSection,
    Pipeline,
    Schedule,
    SyncLogSection,
    parse_duration,
)

__all__ = [
    "BUDGETED_TYPES",
    "CONFIG_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_CONFIG",
    "PIPELINE_KINDS",
    "AnalyticsSection",
    "AttributionSection",
    "Budget",
    "Config",
    "Connection",
    "LedgerConfig",
    "LoggingConfig",
    "MappingsSection",
    "Pipeline",
    "Schedule",
    "SyncLogSection",
    "config_path",
    "load_config",
    "parse_duration",
]
