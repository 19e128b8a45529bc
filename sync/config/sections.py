"""The models of closedloop.yaml's sections, and the values their fields check.

Each section (ledger, logging, a pipeline and its schedule, a budget, mappings, sync_log, and the
attribution and analytics sections with their writeback) is a strict pydantic model: unknown keys
are refused. Durations (``30s``, ``1h30m``) are read by ``sync.durations``.
``ConfigFile`` is the top level; the loader (``sync.config.loader``) validates its sections of
named entries (connections, pipelines, budgets) entry by entry.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from sync.alerts.settings import AlertsConfig
from sync.analytics.settings import AnalyticsSettings
from sync.attribution.settings import AttributionConfig
from sync.durations import duration_text, parse_duration
from sync.ui.settings import UiSettings
from sync.writeback.settings import AttributionWriteback, SlaWriteback

__all__ = [
    "BUDGETED_TYPES",
    "PIPELINE_KINDS",
    "AnalyticsSection",
    "AttributionSection",
    "Budget",
    "ConfigFile",
    "LedgerConfig",
    "LoggingConfig",
    "MappingsSection",
    "Pipeline",
    "Schedule",
    "SyncLogSection",
    "parse_duration",
]

PIPELINE_KINDS = (
    "touches", "dispositions", "reconcile", "recycle", "attribution", "sla-writeback",
)  # fmt: skip


def _crontab(value: Any) -> str:
    from apscheduler.triggers.cron import CronTrigger

    hint = "expected a cron expression of 5 fields (minute hour day month weekday) like '0 * * * *'"
    if not isinstance(value, str):
        raise ValueError(hint)
    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{hint}: {exc}") from None
    return value.strip()


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as UTC or America/Chicago") from None
    return value


def _database_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except ArgumentError:
        raise ValueError(
            "expected a database URL such as sqlite:///closedloop.db or "
            "postgresql+psycopg://user@host:5432/closedloop"
        ) from None
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerConfig(_Strict):
    """Where the ledger lives; ``CLOSEDLOOP_DATABASE_URL`` wins over ``url`` when set."""

    url: Annotated[str, AfterValidator(_database_url)] | None = None


class LoggingConfig(_Strict):
    """Log level and format (``auto``: JSON lines unless stderr is a terminal), for every command
    that loads this config; ``--log-level`` and ``CLOSEDLOOP_LOG_LEVEL`` win over the level."""

    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)
    ] = "info"
    format: Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower)] = "auto"


class Schedule(_Strict):
    """When a pipeline runs: ``every`` (a duration) or ``cron`` (5 fields, in ``timezone``)."""

    every: Annotated[str, BeforeValidator(duration_text)] | None = None
    cron: Annotated[str, BeforeValidator(_crontab)] | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError(
                "give exactly one of 'every' (e.g. 15m) or 'cron' (e.g. '*/15 * * * *')"
            )
        return self

    @property
    def interval(self) -> timedelta | None:
        """The interval of an ``every`` schedule; None for cron schedules."""
        return parse_duration(self.every) if self.every is not None else None

    def trigger(self) -> Any:
        """The APScheduler trigger that fires on this schedule."""
        if self.every is not None:
            from apscheduler.triggers.interval import IntervalTrigger

            return IntervalTrigger(
                seconds=parse_duration(self.every).total_seconds(), timezone="UTC"
            )
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(str(self.cron), timezone=self.timezone)


class Pipeline(_Strict):
    """One pipeline: what it does (``kind``), between which connections, how and when."""

    kind: Literal["touches", "dispositions", "reconcile", "recycle", "attribution", "sla-writeback"]
    source: str | None = None
    sink: str | None = None
    mapping: Path | None = None
    schedule: Schedule | None = None
    enabled: bool = True
    batch_size: int = Field(default=1000, gt=0, le=100_000)


# Connector types with a daily API allocation a budget can share (``sync.budgets``).
BUDGETED_TYPES = frozenset({"salesforce", "hubspot", "marketo"})


class Budget(_Strict):
    """How much of a connection's daily API allocation closedloop may spend, and what to leave
    (``sync.budgets``): cap = allocation * daily_share - reserve_calls; each pipeline priority
    below the first leaves ``priority_reserve`` of the cap per priority above it."""

    daily_share: float = Field(default=0.5, gt=0, le=1)
    reserve_calls: int = Field(default=0, ge=0)
    priority_reserve: float = Field(default=0.1, ge=0, le=0.45)


class AttributionSection(AttributionConfig):
    """The ``attribution:`` section with its optional ``writeback:`` (``sync.writeback``)."""

    writeback: AttributionWriteback | None = None


class AnalyticsSection(AnalyticsSettings):
    """The ``analytics:`` section with its optional ``writeback:`` of SLA breach flags."""

    writeback: SlaWriteback | None = None


class MappingsSection(_Strict):
    """The ``mappings:`` section: how long the cached CRM schema mappings are checked against
    stays fresh before ``sync`` / ``mappings validate`` read it from the org again."""

    schema_max_age: Annotated[str, BeforeValidator(duration_text)] = "24h"

    @property
    def max_age(self) -> timedelta:
        """``schema_max_age`` as a timedelta."""
        return parse_duration(self.schema_max_age)


class SyncLogSection(_Strict):
    """The ``sync_log:`` section: how long the row-level sync log keeps each step."""

    retention: Annotated[str, BeforeValidator(duration_text)] = "30d"

    @property
    def keep(self) -> timedelta:
        """``retention`` as a timedelta."""
        return parse_duration(self.retention)


class ConfigFile(_Strict):
    """The top level of closedloop.yaml; sections of named entries are validated entry by entry."""

    version: Literal[1]
    ledger: LedgerConfig = LedgerConfig()
    logging: LoggingConfig = LoggingConfig()
    connections: dict[str, Any] = Field(default_factory=dict)
    pipelines: dict[str, Any] = Field(default_factory=dict)
    budgets: dict[str, Any] = Field(default_factory=dict)
    attribution: AttributionSection = AttributionSection()
    analytics: AnalyticsSection = AnalyticsSection()
    mappings: MappingsSection = MappingsSection()
    ui: UiSettings = UiSettings()
    sync_log: SyncLogSection = SyncLogSection()
    alerts: AlertsConfig = AlertsConfig()
