"""Loading closedloop.yaml: find the file, prepare its values, validate, report every issue.

``config_path`` picks the file; ``load_config`` reads it with positions (``sync.yamlfile``),
interpolates ``${VAR}`` placeholders from the environment, replaces ``<name>_file`` keys by the
secret file's content, makes relative paths relative to the config file's folder, validates each
section with its model (``sync.config.sections``) and each connection with its connector type's
settings model, runs the cross-section checks (``sync.config.checks``), and either raises one
``ConfigError`` listing every issue (secrets scrubbed) or returns the ``Config``
(``sync.config.model``) with every secret registered for log redaction.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from connectors.errors import ConfigError, ConfigIssue, did_you_mean
from connectors.registry import ConnectorInfo, connector_names, get_connector
from sync.config.checks import CrossChecks
from sync.config.model import Config, Connection
from sync.config.sections import Budget, ConfigFile, Pipeline
from sync.logs import REDACTED, config_loaded, register_secret
from sync.yamlfile import (
    KeyPath,
    LocatedYaml,
    format_path,
    issues_from_validation_error,
    load_yaml,
)

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "config_path", "load_config"]

DEFAULT_CONFIG = Path("closedloop.yaml")
CONFIG_ENV = "CLOSEDLOOP_CONFIG"
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
class _Loader(CrossChecks):
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
            {k: v for k, v in data.items() if k not in sections}, ConfigFile, ()
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
        head = self._validate(view, ConfigFile, top, ())
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
