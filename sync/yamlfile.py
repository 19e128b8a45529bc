"""YAML files read for humans: data plus the line and column of every key, for error messages.

Both ``closedloop.yaml`` and the mapping files go through here, so every error a user sees points
at ``file:line:col`` and a key path such as ``pipelines.touches.schedule.every``.

Documents are bounded before they can cost memory or time, each limit a located ``ConfigError``
(exit 2): at most ``MAX_BYTES`` bytes (checked before the text is read whole), ``MAX_DEPTH``
nested collections, ``MAX_ALIASES`` alias references and ``MAX_NODES`` values once aliases are
expanded. The last one stops "billion laughs" alias bombs, whose few lines expand to billions of
values: the composer shares an aliased node, and the size each alias adds is counted as the
document is composed, so the alias that crosses the limit is the one named, before anything is
expanded. An alias inside its own anchor (a recursive document) is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors.errors import ConfigIssue, did_you_mean

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "KeyPath",
    "LocatedYaml",
    "format_path",
    "issues_from_validation_error",
    "load_yaml",
    "parse_yaml",
]

KeyPath = tuple[str | int, ...]

# Far above any real config or mapping file (the shipped ones are a few KB, a few hundred values,
# nested at most 8 deep), far below what hurts: 100,000 values build in well under a second.
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_NODES = 100_000


def format_path(path: Sequence[str | int]) -> str:
    """``("pipelines", "a", "sinks", 0)`` -> ``pipelines.a.sinks[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


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


class _LimitError(Exception):
    """A document past one of the limits, at the (line, column) where it crossed it."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.where: tuple[int | None, int | None] = (
            (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        )
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer with the depth, alias and expanded-size limits of this module."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expanded = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._alias(event)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitError(event.start_mark, f"collections nested more than {MAX_DEPTH} deep")
        anchor = getattr(event, "anchor", None)
        collection = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if anchor is not None and collection:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        self._count(event.start_mark, 1)
        return node

    def _alias(self, event: Any) -> None:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise _LimitError(event.start_mark, f"more than {MAX_ALIASES} aliases (*name)")
        if event.anchor in self._open_anchors:
            raise _LimitError(
                event.start_mark,
                f"alias *{event.anchor} is inside its own anchor &{event.anchor} "
                "(a recursive structure)",
            )
        target = self.anchors.get(event.anchor)
        if target is not None:
            # The anchored node itself was counted once already; each alias repeats it whole.
            self._count(event.start_mark, self._size(target), alias=event.anchor)

    def _count(self, mark: Any, values: int, alias: str | None = None) -> None:
        self._expanded += values
        if self._expanded > MAX_NODES:
            how = f"alias *{alias} brings" if alias else "it holds"
            raise _LimitError(
                mark,
                f"{how} the document past {MAX_NODES:,} values once aliases are expanded "
                "(an alias bomb?)",
            )

    def _size(self, node: yaml.Node) -> int:
        """How many values ``node`` expands to (aliased nodes counted each time they appear)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        size = min(size, MAX_NODES + 1)  # enough to refuse; keeps the numbers small
        self._sizes[id(node)] = size
        return size


def _compose(text: str) -> yaml.Node | None:
    loader = _BoundedLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def parse_yaml(text: str, file: str) -> LocatedYaml:
    """Parse ``text`` (named ``file`` in messages); syntax errors and documents past this module's
    limits raise a located ConfigError."""
    from connectors.errors import ConfigError

    located = LocatedYaml(file=file, data=None)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ConfigError(f"{file} is too large", [_too_large(file)])
    try:
        node = _compose(text)
    except _LimitError as limit:
        line, column = limit.where
        issue = ConfigIssue(
            file,
            line,
            column,
            "",
            f"{limit.message}; closedloop reads at most "
            f"{MAX_NODES:,} values, {MAX_ALIASES:,} aliases, {MAX_DEPTH} levels",
        )
        raise ConfigError(f"{file} is past closedloop's limits for YAML", [issue]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        issue = ConfigIssue(file, line, column, "", f"YAML syntax error: {problem}{context}")
        raise ConfigError(f"{file} is not valid YAML", [issue]) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, other control characters): say where it is.
        line, column = _line_column(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        issue = ConfigIssue(
            file, line, column, "", f"character U+{char:04X} is not allowed in YAML text"
        )
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


def _line_column(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of character ``position`` of ``text``."""
    return text.count("\n", 0, position) + 1, position - (text.rfind("\n", 0, position) + 1) + 1


def _too_large(file: str) -> ConfigIssue:
    return ConfigIssue(
        file,
        1,
        1,
        "",
        f"the file is larger than {MAX_BYTES // 1024:,} KB; closedloop's config "
        "and mapping files are a few KB (is this the right file?)",
    )


def load_yaml(path: Path) -> LocatedYaml:
    """Read and parse a YAML file; unreadable, non-UTF-8 or oversized files raise ConfigError."""
    from connectors.errors import ConfigError

    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ConfigError(f"{path} is too large", [_too_large(str(path))])
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        issue = ConfigIssue(
            str(path),
            line,
            column,
            "",
            f"byte {raw[exc.start]:#04x} is not UTF-8 text; save the file as UTF-8",
        )
        raise ConfigError(f"{path}: not UTF-8 text", [issue]) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a file") from None
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
