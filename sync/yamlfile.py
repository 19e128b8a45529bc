"""YAML files read for humans: data plus the line and column of every key, for error messages.

Both ``closedloop.yaml`` and the mapping files go through here, so every error a user sees points
at ``file:line:col`` and a key path such as ``pipelines.touches.schedule.every``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors.errors import ConfigIssue

__all__ = [
    "KeyPath",
    "LocatedYaml",
    "did_you_mean",
    "format_path",
    "issues_from_validation_error",
    "load_yaml",
    "parse_yaml",
]

KeyPath = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """``("pipelines", "a", "sinks", 0)`` -> ``pipelines.a.sinks[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class LocatedYaml:
    """Parsed YAML data with the 1-based (line, column) of every key path and value."""

    file: str
    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int] | None:
        """Line and column of ``path`` (its key when ``key``), else of the nearest parent."""
        table = self.key_positions if key else self.positions
        probe: KeyPath = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.key_positions:
                return self.key_positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))

    def issue(self, path: Sequence[str | int], message: str, *, key: bool = False) -> ConfigIssue:
        """A ConfigIssue at ``path`` in this file."""
        where = self.locate(path, key=key)
        line, column = where if where else (None, None)
        return ConfigIssue(self.file, line, column, format_path(path), message)


class _DuplicateKeyError(Exception):
    def __init__(self, path: KeyPath, first: tuple[int, int], again: tuple[int, int]) -> None:
        super().__init__(format_path(path))
        self.path = path
        self.first = first
        self.again = again


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(node: yaml.Node, path: KeyPath, located: LocatedYaml) -> Any:
    located.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.constructor.SafeConstructor().construct_object(key_node)
            key = str(key) if not isinstance(key, str) else key
            child: KeyPath = (*path, key)
            if key in out:
                raise _DuplicateKeyError(child, located.key_positions[child], _mark(key_node))
            located.key_positions[child] = _mark(key_node)
            out[key] = _build(value_node, child, located)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), located) for i, item in enumerate(node.value)]
    return yaml.constructor.SafeConstructor().construct_object(node)


def parse_yaml(text: str, file: str) -> LocatedYaml:
    """Parse ``text`` (named ``file`` in messages); syntax errors raise a located ConfigError."""
    from connectors.errors import ConfigError

    located = LocatedYaml(file=file, data=None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        issue = ConfigIssue(file, line, column, "", f"YAML syntax error: {problem}{context}")
        raise ConfigError(f"{file} is not valid YAML", [issue]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    if node is None:
        located.data = None
        return located
    try:
        located.data = _build(node, (), located)
    except _DuplicateKeyError as dup:
        issue = ConfigIssue(
            file,
            dup.again[0],
            dup.again[1],
            format_path(dup.path),
            f"duplicate key (first defined at line {dup.first[0]})",
        )
        raise ConfigError(f"{file} has a duplicate key", [issue]) from None
    return located


def load_yaml(path: Path) -> LocatedYaml:
    """Read and parse a YAML file; unreadable or non-UTF-8 files raise ConfigError."""
    from connectors.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_yaml(text, str(path))


def _expected(error: Any) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value"))
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    got = error.get("input")
    if isinstance(got, dict | list) or got is None:
        return message
    return f"{message}; got {got!r}"


def issues_from_validation_error(
    exc: ValidationError,
    located: LocatedYaml,
    *,
    base: KeyPath = (),
    allowed_keys: Mapping[KeyPath, Sequence[str]] | None = None,
) -> list[ConfigIssue]:
    """Translate a pydantic ValidationError on ``located.data`` (at ``base``) into located issues.

    ``allowed_keys`` maps a parent path to its valid keys so unknown keys get a "did you mean".
    Discriminated-union tags that pydantic adds to locations are dropped from the key path.
    """
    issues: list[ConfigIssue] = []
    for error in exc.errors():
        path = _data_path(located.data, base, error.get("loc", ()))
        message = _expected(error)
        if error.get("type") == "extra_forbidden" and allowed_keys is not None:
            parent, name = path[:-1], path[-1]
            if parent in allowed_keys and isinstance(name, str):
                message += did_you_mean(name, allowed_keys[parent])
        issues.append(located.issue(path, message, key=error.get("type") == "extra_forbidden"))
    return issues


def _data_path(data: Any, base: KeyPath, loc: Iterable[Any]) -> KeyPath:
    """Keep only the location parts that exist in the data (drops union/tag names pydantic adds)."""
    path: list[str | int] = list(base)
    node = data
    for part in base:
        node = node[part] if isinstance(node, dict | list) else None  # type: ignore[index]
    parts = list(loc)
    for index, part in enumerate(parts):
        following = parts[index + 1] if index + 1 < len(parts) else None
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and following is not None
            and _is_tag(part, node)
            and not (isinstance(node.get(part), dict | list) and _holds(node[part], following))
        ):
            # A union tag equal to a key of the same mapping ({method: password, password: ...}):
            # the tag is followed by a part that the key's scalar value cannot hold.
            continue
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_tag(part, node):
            # A missing key: point at the parent, name the key in the path.
            path.append(part)
            node = None
    return tuple(path)


def _is_tag(part: str, node: dict[str, Any]) -> bool:
    """Whether pydantic inserted ``part`` as a union member name (not a key of the data)."""
    return "[" in part or any(isinstance(v, str) and v == part for v in node.values())


def _holds(node: dict[str, Any] | list[Any], part: Any) -> bool:
    """Whether ``part`` indexes into ``node`` (a key of a mapping or an index of a list)."""
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)
