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
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from connectors.errors import ConfigError, ConfigIssue, did_you_mean
from connectors.registry import ConnectorInfo, connector_names, get_connector
from sync.alerts.settings import AlertsConfig
from sync.analytics.settings import AnalyticsSettings
from sync.attribution.settings import AttributionConfig
from sync.logs import REDACTED, config_loaded, register_secret
from sync.ui.settings import UiSettings
from sync.writeback.settings import AttributionWriteback, SlaWriteback
from sync.yamlfile import (
    KeyPath,
    LocatedYaml,
    format_path,
    issues_from_validation_error,
    load_yaml,
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

DEFAULT_CONFIG = Path("closedloop.yaml")
CONFIG_ENV = "CLOSEDLOOP_CONFIG"
DATABASE_URL_ENV = "CLOSEDLOOP_DATABASE_URL"
PIPELINE_KINDS = (
    "touches", "dispositions", "reconcile", "recycle", "attribution", "sla-writeback",
)  # fmt: skip

# kind -> (role the source needs, role the sink needs); None: that end must not be given.
_ENDS: dict[str, dict[str, str | None]] = {
    "touches": {"source": "source", "sink": "crm"},
    "dispositions": {"source": "crm", "sink": None},
    "reconcile": {"source": "crm", "sink": None},
    "recycle": {"source": "crm", "sink": "source"},
    "attribution": {"source": "crm", "sink": None},
    "sla-writeback": {"source": "crm", "sink": None},
}
_ROLE_WORDS = {"source": "an activity source", "crm": "a CRM"}

_DURATION = re.compile(r"(?:\d+[smhd])+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PLACEHOLDER = re.compile(r"\$(\$)?\{([^}]*)\}")
_VAR_SPEC = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
# pydantic error types -> what the user should have written (formatted with the error's ctx).
_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "list_type": "a list",
    "greater_than": "a value greater than {gt}",
    "greater_than_equal": "a value of at least {ge}",
    "less_than": "a value less than {lt}",
    "less_than_equal": "a value of at most {le}",
    "string_too_short": "at least {min_length} character(s)",
    "string_too_long": "at most {max_length} character(s)",
    "string_pattern_mismatch": "a value matching {pattern}",
    "path_not_file": "an existing file (relative to the config file's folder)",
}
# Leaf keys whose rejected value must not be echoed back in an error message.
_SECRET_LEAF = re.compile(
    r"(password|secret|token|session_id|private_key|api_key|passphrase)", re.IGNORECASE
)


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``1d`` or combinations (``1h30m``) as a timedelta."""
    compact = text.strip()
    if not _DURATION.fullmatch(compact):
        raise ValueError("expected a duration such as 30s, 15m, 2h or 1d")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(compact))
    if seconds <= 0:
        raise ValueError("expected a duration greater than zero")
    return timedelta(seconds=seconds)


def _duration(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 15m, 2h or 1d")
    parse_duration(value)
    return value.strip()


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

    every: Annotated[str, BeforeValidator(_duration)] | None = None
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
# Marketo's default daily allocation (``connectors.marketo.settings``: ``daily_quota``).
_MARKETO_DAILY_QUOTA = 50_000


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

    schema_max_age: Annotated[str, BeforeValidator(_duration)] = "24h"

    @property
    def max_age(self) -> timedelta:
        """``schema_max_age`` as a timedelta."""
        return parse_duration(self.schema_max_age)


class SyncLogSection(_Strict):
    """The ``sync_log:`` section: how long the row-level sync log keeps each step."""

    retention: Annotated[str, BeforeValidator(_duration)] = "30d"

    @property
    def keep(self) -> timedelta:
        """``retention`` as a timedelta."""
        return parse_duration(self.retention)


class _ConfigFile(_Strict):
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


def config_path(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: ``explicit``, else ``$CLOSEDLOOP_CONFIG``, else ./closedloop.yaml."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    return Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else DEFAULT_CONFIG


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; any problem raises ConfigError listing every issue found."""
    located = load_yaml(path)
    if not isinstance(located.data, dict):
        got = "an empty file" if located.data is None else f"a {type(located.data).__name__}"
        issue = located.issue(
            (), f"expected a mapping (version, connections, pipelines, ...); got {got}"
        )
        raise ConfigError(f"{path} is not a closedloop configuration", [issue])
    loader = _Loader(located, path.absolute().parent, os.environ if environ is None else environ)
    config = loader.load(path)
    config_loaded(config.logging.level, config.logging.format)
    return config


# --- annotations: which model, container or path type a field holds ------------------------


def _leaves(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _leaves(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [leaf for arg in get_args(annotation) for leaf in _leaves(arg)]
    return [annotation]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    return [t for t in _leaves(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]


def _holds_path(annotation: Any) -> bool:
    return any(isinstance(t, type) and issubclass(t, Path) for t in _leaves(annotation))


def _container_item(annotation: Any, kinds: tuple[type, ...]) -> Any:
    for leaf in _leaves(annotation):
        origin = get_origin(leaf)
        if isinstance(origin, type) and issubclass(origin, kinds):
            args = get_args(leaf)
            return args[-1] if args else None
    return None


def _tags_match(model: type[BaseModel], data: dict[str, Any]) -> bool:
    """Whether every Literal field of ``model`` (a union member's tag) accepts ``data``."""
    for name, info in model.model_fields.items():
        if get_origin(info.annotation) is Literal and data.get(name) not in get_args(
            info.annotation
        ):
            return False
    return True


def _pick_model(annotation: Any, data: dict[str, Any]) -> type[BaseModel] | None:
    models = _models_in(annotation)
    if len(models) == 1:
        return models[0]
    matching = [m for m in models if _tags_match(m, data)]
    return matching[0] if len(matching) == 1 else None


def _starts_with(key_path: str, prefix: str) -> bool:
    return key_path == prefix or key_path.startswith((prefix + ".", prefix + "["))


# --- the loader -------------------------------------------------------------------------------


@dataclass
class _Loader:
    """One load of one file: collects issues, secrets and positions along the way."""

    located: LocatedYaml
    base_dir: Path
    env: Mapping[str, str]
    issues: list[ConfigIssue] = field(default_factory=list)  # found by the loader: always kept
    validation: list[ConfigIssue] = field(default_factory=list)  # from pydantic: may be noise
    secrets: set[str] = field(default_factory=set)
    broken: set[KeyPath] = field(default_factory=set)
    allowed: dict[KeyPath, Sequence[str]] = field(default_factory=dict)
    renamed: dict[KeyPath, KeyPath] = field(default_factory=dict)
    written: dict[KeyPath, str] = field(default_factory=dict)

    def load(self, path: Path) -> Config:
        data: dict[str, Any] = self.located.data
        sections: dict[str, type[BaseModel] | None] = {
            "connections": None,
            "pipelines": Pipeline,
            "budgets": Budget,
        }
        top = self._prepare_model(
            {k: v for k, v in data.items() if k not in sections}, _ConfigFile, ()
        )
        infos: dict[str, ConnectorInfo] = {}
        for section, model in sections.items():
            entries = data.get(section)
            if not isinstance(entries, dict):
                if section in data:
                    top[section] = entries
            elif model is None:
                top[section] = {
                    name: self._prepare_connection(name, conn, infos)
                    for name, conn in entries.items()
                }
            else:
                top[section] = {
                    name: self._prepare(entry, model, (section, name))
                    for name, entry in entries.items()
                }
        # Validation errors point into the prepared data (``password_file`` became ``password``).
        view = LocatedYaml(
            self.located.file, top, self.located.positions, self.located.key_positions
        )
        head = self._validate(view, _ConfigFile, top, ())
        connections = self._validate_connections(view, top, infos)
        pipelines = self._validate_section(view, top, "pipelines", Pipeline)
        budgets = self._validate_section(view, top, "budgets", Budget)
        raw_defined = top.get("connections")
        defined: dict[str, Any] = raw_defined if isinstance(raw_defined, dict) else {}
        self._check_pipelines(top.get("pipelines"), defined, infos)
        self._check_writeback_pipelines(top.get("pipelines"), top.get("analytics"))
        self._check_budgets(budgets, defined)
        issues = self._finish()
        if issues or head is None:
            count = f"{len(issues)} problem" + ("s" if len(issues) != 1 else "")
            raise ConfigError(f"{self.located.file}: {count}", issues)
        for conn in connections.values():
            _register_secrets(conn.settings)
        _register_secrets(head.ui)
        for channel in head.alerts.channels.values():
            _register_secrets(channel)
        connections = _with_budget_shares(connections, budgets)
        url = head.ledger.url
        if url is not None:
            from sqlalchemy.engine import make_url

            password = make_url(url).password
            if password:
                register_secret(str(password))
        return Config(
            path=path.absolute(),
            version=head.version,
            ledger=head.ledger,
            logging=head.logging,
            connections=connections,
            pipelines=pipelines,
            budgets=budgets,
            attribution=head.attribution,
            analytics=head.analytics,
            mappings=head.mappings,
            ui=head.ui,
            sync_log=head.sync_log,
            alerts=head.alerts,
        )

    # -- preparing raw data: interpolation, *_file secrets, relative paths --

    def _add(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        """Record an issue; validation errors at or below ``path`` are then only noise."""
        self.issues.append(self.located.issue(path, message, key=key))
        self.broken.add(path)

    def _interpolate(self, text: str, path: KeyPath) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(1):
                return "${" + match.group(2) + "}"
            spec = _VAR_SPEC.fullmatch(match.group(2))
            if spec is None:
                self._add(
                    path,
                    f"malformed placeholder {match.group(0)!r}: "
                    "expected ${NAME} or ${NAME:-default}",
                )
                return ""
            name, default = spec.group(1), spec.group(2)
            value = self.env.get(name)
            if value:
                return value
            if default is not None:
                return default
            self._add(
                path,
                f"environment variable {name} is not set or empty "
                f"(write ${{{name}:-default}} to give a default)",
            )
            return ""

        return _PLACEHOLDER.sub(substitute, text)

    def _prepare(self, value: Any, annotation: Any, path: KeyPath) -> Any:
        if isinstance(value, str):
            value = self._interpolate(value, path)
            if value and _holds_path(annotation) and path not in self.broken:
                self.written[path] = value
                value = str(self.base_dir / Path(value).expanduser())
            return value
        if isinstance(value, list):
            item = _container_item(annotation, (list, tuple, set, frozenset))
            return [self._prepare(v, item, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            model = _pick_model(annotation, value)
            if model is not None:
                return self._prepare_model(value, model, path)
            item = _container_item(annotation, (dict, Mapping))
            return {k: self._prepare(v, item, (*path, k)) for k, v in value.items()}
        return value

    def _prepare_model(
        self, data: dict[str, Any], model: type[BaseModel], path: KeyPath
    ) -> dict[str, Any]:
        fields = model.model_fields
        self.allowed[path] = sorted(fields)
        out: dict[str, Any] = {}
        for key, value in data.items():
            child: KeyPath = (*path, key)
            target = key[: -len("_file")] if key.endswith("_file") else ""
            if target and key not in fields and target in fields:
                self._prepare_secret_file(data, path, key, out)
            else:
                out[key] = self._prepare(
                    value, fields[key].annotation if key in fields else None, child
                )
        return out

    def _prepare_secret_file(
        self, data: dict[str, Any], path: KeyPath, key: str, out: dict[str, Any]
    ) -> None:
        """Put the content of the file named by ``data[key]`` (``<target>_file``) at ``target``."""
        value, target = data[key], key[: -len("_file")]
        child, target_path = (*path, key), (*path, target)
        self.broken.add(target_path)  # until the file is read: no "missing key" noise about it
        if target in data:
            self._add(child, f"give either {target!r} or {key!r}, not both", key=True)
            return
        if not isinstance(value, str) or not value.strip():
            self._add(child, f"expected the path of a file holding {target!r}")
            return
        given = self._interpolate(value, child)
        if child in self.broken:
            return
        file = self.base_dir / Path(given).expanduser()
        where = f"{given!r}" + (
            "" if Path(given).is_absolute() else " (relative to the config file's folder)"
        )
        try:
            content = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._add(child, f"file not found: {where}")
            return
        except UnicodeDecodeError:
            self._add(child, f"file {where} is not UTF-8 text")
            return
        except OSError as exc:
            self._add(child, f"cannot read {where}: {exc.strerror or type(exc).__name__}")
            return
        content = (
            content.removesuffix("\n").removesuffix("\r") if content.endswith("\n") else content
        )
        if not content:
            self._add(child, f"file {where} is empty")
            return
        register_secret(content)
        self.secrets.add(content)
        self.broken.discard(target_path)
        out[target] = content
        self.renamed[target_path] = child
        self.located.positions[target_path] = self.located.positions.get(child, (1, 1))
        self.located.key_positions[target_path] = self.located.key_positions.get(child, (1, 1))

    def _prepare_connection(self, name: str, conn: Any, infos: dict[str, ConnectorInfo]) -> Any:
        path: KeyPath = ("connections", name)
        if not isinstance(conn, dict):
            self._add(path, "expected a mapping with 'type' and that connector type's settings")
            return conn
        if "type" not in conn:
            known = ", ".join(connector_names()) or "(none installed)"
            self._add((*path, "type"), f"required key is missing; known types: {known}")
            return conn
        kind = conn["type"]
        kind = self._interpolate(kind, (*path, "type")) if isinstance(kind, str) else kind
        known_types = connector_names()
        if not isinstance(kind, str) or kind not in known_types:
            if (*path, "type") not in self.broken:
                hint = did_you_mean(kind, known_types) if isinstance(kind, str) else ""
                known = ", ".join(known_types) or "(none installed)"
                self._add(
                    (*path, "type"), f"unknown connector type {kind!r}{hint}; known types: {known}"
                )
            return conn
        try:
            info = get_connector(kind)
        except ConfigError as exc:  # an installed plugin that does not load
            self._add((*path, "type"), str(exc))
            return conn
        infos[name] = info
        settings = self._prepare_model(
            {k: v for k, v in conn.items() if k != "type"}, info.settings_model, path
        )
        self.allowed[path] = sorted([*info.settings_model.model_fields, "type"])
        return {"type": kind, **settings}

    # -- validation --

    def _validate(self, view: LocatedYaml, model: type[BaseModel], data: Any, base: KeyPath) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.validation.extend(self._translate(exc, view, base))
            return None

    def _translate(
        self, exc: ValidationError, view: LocatedYaml, base: KeyPath
    ) -> list[ConfigIssue]:
        issues = issues_from_validation_error(exc, view, base=base, allowed_keys=self.allowed)
        errors = exc.errors()
        if len(errors) != len(issues):
            return issues
        out = []
        for error, issue in zip(errors, issues, strict=True):
            out.append(self._reword(error, issue, view, base))
        return out

    def _reword(
        self, error: Any, issue: ConfigIssue, view: LocatedYaml, base: KeyPath
    ) -> ConfigIssue:
        kind, ctx, got = error.get("type"), error.get("ctx") or {}, error.get("input")
        if kind == "literal_error" and issue.key_path == "version":
            return replace(
                issue, message=f"expected version 1 (the only format so far); got {got!r}"
            )
        if kind == "literal_error" and isinstance(got, str):
            choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            if choices:
                message = (
                    f"expected one of {', '.join(choices)}; got {got!r}{did_you_mean(got, choices)}"
                )
                return replace(issue, message=message)
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            tag_key = str(ctx.get("discriminator", "")).strip("'")
            choices = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
            loc = tuple(p for p in error.get("loc", ()) if isinstance(p, str | int))
            where: KeyPath = (*base, *loc, tag_key)
            if kind == "union_tag_not_found":
                return view.issue(
                    where, f"required key is missing; expected one of {', '.join(choices)}"
                )
            tag = str(ctx.get("tag", ""))
            return view.issue(
                where,
                f"expected one of {', '.join(choices)}; got {tag!r}{did_you_mean(tag, choices)}",
            )
        if kind in _EXPECTED:
            expected = _EXPECTED[kind].format(**ctx)
            shown = "" if isinstance(got, dict | list) else f"; got {got!r}"
            return replace(issue, message=f"expected {expected}{shown}")
        if "Value error, " in issue.message:
            return replace(issue, message=issue.message.replace("Value error, ", ""))
        return issue

    def _validate_connections(
        self, view: LocatedYaml, top: dict[str, Any], infos: dict[str, ConnectorInfo]
    ) -> dict[str, Connection]:
        out: dict[str, Connection] = {}
        for name, info in infos.items():
            data = {k: v for k, v in top["connections"][name].items() if k != "type"}
            settings = self._validate(view, info.settings_model, data, ("connections", name))
            if settings is not None:
                out[name] = Connection(name, info.name, info.roles, settings)
        return out

    def _validate_section(
        self, view: LocatedYaml, top: dict[str, Any], section: str, model: type[BaseModel]
    ) -> dict[str, Any]:
        entries = top.get(section)
        if not isinstance(entries, dict):
            return {}
        out = {}
        for name, entry in entries.items():
            validated = self._validate(view, model, entry, (section, name))
            if validated is not None:
                out[name] = validated
        return out

    # -- cross-references --

    def _check_pipelines(
        self, entries: Any, defined: Mapping[str, Any], infos: dict[str, ConnectorInfo]
    ) -> None:
        """Check ends and mapping of every pipeline, even one whose other keys are invalid."""
        if not isinstance(entries, dict):
            return
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            path: KeyPath = ("pipelines", name)
            kind = entry.get("kind")
            rules = _ENDS.get(kind) if isinstance(kind, str) else None
            for end in ("source", "sink"):
                target = entry.get(end)
                if rules is None:
                    if isinstance(target, str):
                        self._check_defined((*path, end), target, defined)
                    continue
                self._check_end(
                    path,
                    kind=str(kind),
                    end=end,
                    role=rules[end],
                    target=target,
                    defined=defined,
                    infos=infos,
                )
            mapping = entry.get("mapping")
            if mapping is None and kind == "touches":
                self._add(
                    (*path, "mapping"),
                    "required key is missing: a touches pipeline needs a mapping file",
                )
            elif (
                isinstance(mapping, str)
                and (*path, "mapping") not in self.broken
                and not Path(mapping).is_file()
            ):
                given = self.written.get((*path, "mapping"), mapping)
                self._add(
                    (*path, "mapping"),
                    f"mapping file not found: {given!r} "
                    "(paths are relative to the config file's folder)",
                )

    def _check_writeback_pipelines(self, entries: Any, analytics: Any) -> None:
        """An sla-writeback pipeline needs the ``analytics.writeback`` section it writes by."""
        if not isinstance(entries, dict):
            return
        configured = isinstance(analytics, dict) and isinstance(analytics.get("writeback"), dict)
        for name, entry in entries.items():
            if isinstance(entry, dict) and entry.get("kind") == "sla-writeback" and not configured:
                self._add(
                    ("pipelines", name, "kind"),
                    "an sla-writeback pipeline needs an analytics.writeback section (field / "
                    "time_field for Salesforce, property / time_property for HubSpot)",
                )

    def _check_defined(self, path: KeyPath, target: str, defined: Mapping[str, Any]) -> bool:
        if target in defined:
            return True
        names = sorted(defined)
        self._add(
            path,
            f"no connection named {target!r}{did_you_mean(target, names)}; "
            f"defined connections: {', '.join(names) or '(none)'}",
        )
        return False

    def _check_end(
        self,
        path: KeyPath,
        *,
        kind: str,
        end: str,
        role: str | None,
        target: Any,
        defined: Mapping[str, Any],
        infos: dict[str, ConnectorInfo],
    ) -> None:
        """One end (source or sink) of a pipeline of ``kind``: present, defined, right role."""
        if role is None:
            if target is not None:
                self._add(
                    (*path, end), f"a {kind} pipeline has no {end}; remove this key", key=True
                )
        elif target is None:
            self._add(
                (*path, end),
                f"required key is missing: a {kind} pipeline needs "
                f"{_ROLE_WORDS[role]} as its {end}",
            )
        elif (
            isinstance(target, str)
            and self._check_defined((*path, end), target, defined)
            and target in infos
            and role not in infos[target].roles
        ):
            info = infos[target]
            self._add(
                (*path, end),
                f"connection {target!r} is of type {info.name!r} "
                f"(roles: {', '.join(sorted(info.roles))}) and cannot be the {end} "
                f"of a {kind} pipeline, which needs {_ROLE_WORDS[role]}",
            )

    def _check_budgets(self, budgets: dict[str, Budget], defined: Mapping[str, Any]) -> None:
        names = sorted(defined)
        raw = self.located.data.get("budgets")
        for name, budget in budgets.items():
            path: KeyPath = ("budgets", name)
            if name not in defined:
                listed = ", ".join(names) or "(none)"
                self._add(
                    path,
                    f"budget for an undefined connection {name!r}"
                    f"{did_you_mean(name, names)}; defined connections: {listed}",
                    key=True,
                )
                continue
            conn = defined[name]
            kind = conn.get("type") if isinstance(conn, dict) else None
            if isinstance(kind, str) and kind not in BUDGETED_TYPES:
                self._add(
                    path,
                    f"connection {name!r} is of type {kind!r}, which has no daily API allocation "
                    f"to budget (budgets apply to {', '.join(sorted(BUDGETED_TYPES))}); remove "
                    "this entry",
                    key=True,
                )
                continue
            auth = conn.get("auth") if isinstance(conn, dict) else None
            if kind == "hubspot" and isinstance(auth, dict) and auth.get("method") == "oauth":
                self._add(
                    path,
                    f"connection {name!r} is a HubSpot OAuth app, which HubSpot gives no daily "
                    "call limit (only a burst limit): there is nothing to share; remove this "
                    "entry, or use a private app token",
                    key=True,
                )
                continue
            quota = conn.get("daily_quota", _MARKETO_DAILY_QUOTA) if kind == "marketo" else None
            if isinstance(quota, int) and int(quota * budget.daily_share) <= budget.reserve_calls:
                self._add(
                    path,
                    f"the cap is {int(quota * budget.daily_share):,} - {budget.reserve_calls:,} "
                    f"calls of Marketo's daily quota of {quota:,}: no call could ever run; "
                    "raise daily_share or lower reserve_calls",
                )
                continue
            if (
                isinstance(conn, dict)
                and "daily_budget_share" in conn
                and isinstance(raw, dict)
                and isinstance(raw.get(name), dict)
                and "daily_share" in raw[name]
            ):
                self._add(
                    (*path, "daily_share"),
                    f"the share is also set as connections.{name}.daily_budget_share; keep one",
                    key=True,
                )

    # -- reporting --

    def _finish(self) -> list[ConfigIssue]:
        broken = [format_path(p) for p in self.broken]
        renamed = {format_path(k): format_path(v) for k, v in self.renamed.items()}
        out: list[ConfigIssue] = []
        seen: set[tuple[Any, ...]] = set()
        noise = [i for i in self.validation if any(_starts_with(i.key_path, b) for b in broken)]
        for found in [*self.issues, *(i for i in self.validation if i not in noise)]:
            issue = self._scrub(found, renamed)
            marker = (issue.line, issue.column, issue.key_path, issue.message)
            if marker not in seen:
                seen.add(marker)
                out.append(issue)
        out.sort(key=lambda i: (i.line or 0, i.column or 0))
        return out

    def _scrub(self, issue: ConfigIssue, renamed: dict[str, str]) -> ConfigIssue:
        key_path, message = issue.key_path, issue.message
        for new, old in renamed.items():
            if _starts_with(key_path, new):
                key_path = old + key_path[len(new) :]
        leaf = re.split(r"[.\[]", key_path)[-1] if key_path else ""
        if _SECRET_LEAF.search(leaf) and "; got " in message:
            message = message.split("; got ", 1)[0]
        for secret in sorted(self.secrets, key=len, reverse=True):
            message = message.replace(secret, REDACTED)
        return replace(issue, key_path=key_path, message=message)


def _with_budget_shares(
    connections: dict[str, Connection], budgets: Mapping[str, Budget]
) -> dict[str, Connection]:
    """The connections with each ``budgets`` share handed to the connector's own guard
    (``daily_budget_share``: Salesforce's and HubSpot's clients stop there between calls)."""
    out = dict(connections)
    for name, budget in budgets.items():
        conn = out.get(name)
        if (
            conn is not None
            and "daily_share" in budget.model_fields_set
            and "daily_budget_share" in type(conn.settings).model_fields
        ):
            settings = conn.settings.model_copy(update={"daily_budget_share": budget.daily_share})
            out[name] = replace(conn, settings=settings)
    return out


def _register_secrets(model: BaseModel) -> None:
    """Register every SecretStr value of ``model`` (recursively) for log redaction."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            _register_secrets(value)
