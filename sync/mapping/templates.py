"""Subject and body templates: a sandboxed Jinja2 environment, checks, and a fast renderer.

Templates see two variables, ``touch`` (a ``connectors.base.Touch``) and ``person`` (the CRM
``Person``, or an all-blank one when not known yet). ``StrictUndefined`` makes a missing value
an error instead of an empty string, and ``None`` renders as blank.

``check_template`` runs at validate time: syntax, unknown variables, unknown fields of
``touch``/``person`` and unknown filters, each with a "did you mean".

``compile_template`` returns a plain function. Jinja's sandbox costs tens of microseconds per
render, far over the engine's per-touch budget, so templates built only from text, field
lookups, filters without context, ``if`` blocks and ``is defined`` tests are compiled to a
Python closure with the same semantics (the same filter functions, the same ``StrictUndefined``
on a missing key). Anything else (loops, calls, macros) renders through Jinja. Tests check that
both paths agree.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from connectors.base import Person, PersonKind, Touch, TouchKind
from connectors.errors import MappingError, did_you_mean
from sync.mapping.transforms import format_datetime

__all__ = [
    "EMPTY_PERSON",
    "EMPTY_TOUCH",
    "KNOWN_FIELDS",
    "OPEN_FIELDS",
    "PERSON_FIELDS",
    "TOUCH_FIELDS",
    "Renderer",
    "check_template",
    "compile_fast",
    "compile_template",
    "constant_text",
    "humanize",
    "make_environment",
]

Renderer = Callable[[Touch, Person], str]

TOUCH_FIELDS: tuple[str, ...] = (
    "key", *(f.name for f in dataclasses.fields(Touch)),
)  # fmt: skip
PERSON_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Person))
# Fields holding free-form mappings: any key below them is accepted at validate time.
OPEN_FIELDS: dict[str, frozenset[str]] = {
    "touch": frozenset({"attributes", "raw"}),
    "person": frozenset({"fields"}),
}
KNOWN_FIELDS: dict[str, tuple[str, ...]] = {"touch": TOUCH_FIELDS, "person": PERSON_FIELDS}

EMPTY_PERSON = Person(source="", external_id="", kind=PersonKind.LEAD, email=None)
EMPTY_TOUCH = Touch(
    source="",
    source_id="",
    kind=TouchKind.OTHER,
    occurred_at=datetime(1970, 1, 1, tzinfo=UTC),
    email=None,
)


@functools.lru_cache(maxsize=1024)
def humanize(value: Any) -> str:
    """``email_open`` -> ``Email open``: touch kinds and field names for people."""
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def default_filter(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's ``default``, except that None also counts as missing (admins expect that)."""
    if value is None or isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def make_environment(timezone: str = "UTC") -> ImmutableSandboxedEnvironment:
    """The sandboxed environment templates compile in; ``datetime`` formats in ``timezone``."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, finalize=_blank_none, autoescape=False
    )

    def datetime_filter(value: Any, fmt: str = "iso", tz: str | None = None) -> Any:
        return format_datetime(value, fmt, _zone(tz) if tz else zone)

    env.filters["humanize"] = humanize
    env.filters["default"] = env.filters["d"] = default_filter
    env.filters["datetime"] = datetime_filter
    return env


def check_template(text: str, env: ImmutableSandboxedEnvironment) -> list[str]:
    """Every problem of one template, as messages; empty when it is fine."""
    try:
        ast = env.parse(text)
    except TemplateSyntaxError as exc:
        return [f"template syntax error on template line {exc.lineno}: {exc.message}"]
    problems: list[str] = []
    for call in ast.find_all((nodes.Filter, nodes.Test)):
        assert isinstance(call, nodes.Filter | nodes.Test)
        table = env.filters if isinstance(call, nodes.Filter) else env.tests
        if call.name not in table:
            what = "filter" if isinstance(call, nodes.Filter) else "test"
            problems.append(f"unknown {what} {call.name!r}{did_you_mean(call.name, table)}")
    if problems:
        return problems  # the variable analysis below compiles, which needs known filters
    allowed = {"touch", "person", *env.globals}
    for name in sorted(meta.find_undeclared_variables(ast)):
        if name not in allowed:
            problems.append(
                f"unknown template variable {name!r}{did_you_mean(name, ['touch', 'person'])}"
                " (templates see touch and person)"
            )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        root = node.node
        if not (isinstance(root, nodes.Name) and root.name in KNOWN_FIELDS):
            continue
        attr = _const_attr(node)
        if attr is None:
            continue
        known = KNOWN_FIELDS[root.name]
        if attr not in known:
            problems.append(
                f"{root.name} has no field {attr!r}{did_you_mean(attr, known)}"
                f" (fields: {', '.join(known)})"
            )
    if not problems:
        try:
            env.from_string(text)
        except Exception as exc:  # noqa: BLE001 - any compile failure is a finding to report
            problems.append(f"template does not compile: {exc}")
    return problems


def _const_attr(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def constant_text(text: str, env: ImmutableSandboxedEnvironment) -> str | None:
    """The text itself when ``text`` has no Jinja syntax at all (rendered without Jinja)."""
    ast = env.parse(text)
    out: list[str] = []
    for node in ast.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if not isinstance(child, nodes.TemplateData):
                return None
            out.append(child.data)
    return "".join(out)


def compile_template(text: str, env: ImmutableSandboxedEnvironment, where: str) -> Renderer:
    """A function rendering ``text`` for one touch; ``where`` names the field in errors."""
    fast = compile_fast(text, env, where)
    if fast is not None:
        return fast
    template = env.from_string(text)

    def render_jinja(touch: Touch, person: Person) -> str:
        try:
            return template.render(touch=touch, person=person)
        except (UndefinedError, SecurityError) as exc:
            raise MappingError(f"touch {touch.key}: {where}: {exc.message}") from None

    return render_jinja


# --- the fast path -----------------------------------------------------------------------
# The supported subset of the template AST is translated into the source of one Python
# function (as Jinja itself does, without its per-render context machinery). Only names the
# translator chose appear in that source: constants, filters and helpers are passed in the
# namespace by reference, never as text, and attribute names come from the fixed field lists.

_DICT_ATTRS = frozenset(dir(dict))
_MISSING = object()


class _Unsupported(Exception):
    """The template uses something the fast path does not handle: render through Jinja."""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def compile_fast(text: str, env: ImmutableSandboxedEnvironment, where: str) -> Renderer | None:
    """The fast renderer of ``text``, or None when it needs Jinja (see module docstring)."""
    translator = _Translator(env)
    try:
        body = translator.body(env.parse(text).body)
    except _Unsupported:
        return None
    namespace: dict[str, Any] = {
        "__builtins__": {},
        "_text": _text,
        "_lookup": translator.lookup,
        "_errors": (UndefinedError, SecurityError),
        "_fail": _failure(where),
        **translator.names,
    }
    source = (
        "def _render(touch, person):\n"
        "    try:\n"
        f"        return {body}\n"
        "    except _errors as exc:\n"
        "        raise _fail(touch, exc) from None\n"
    )
    exec(compile(source, f"<template {where}>", "exec"), namespace)  # noqa: S102 - see above
    render: Renderer = namespace["_render"]
    return render


def _failure(where: str) -> Callable[[Touch, Exception], MappingError]:
    def fail(touch: Touch, exc: Exception) -> MappingError:
        message = getattr(exc, "message", None) or str(exc)
        return MappingError(f"touch {touch.key}: {where}: {message}")

    return fail


class _Translator:
    """Translates the supported subset of a Jinja AST into one Python expression."""

    def __init__(self, env: ImmutableSandboxedEnvironment) -> None:
        self.env = env
        self.names: dict[str, Any] = {}
        self.undefined = env.undefined

    def name(self, value: Any) -> str:
        key = f"_n{len(self.names)}"
        self.names[key] = value
        return key

    def lookup(self, obj: Any, attr: str) -> Any:
        """Jinja's ``obj.attr`` for values below touch/person: mapping keys, else attributes."""
        if isinstance(obj, Mapping):
            try:
                return obj[attr]
            except KeyError:
                return self.undefined(obj=obj, name=attr)
        value = getattr(obj, attr, _MISSING)
        if value is _MISSING or callable(value):
            return self.undefined(obj=obj, name=attr)
        return value

    def body(self, body: list[nodes.Node]) -> str:
        parts: list[str] = []
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        parts.append(self.name(child.data))
                    else:
                        parts.append(f"_text({self.expr(child)})")
            elif isinstance(node, nodes.If):
                parts.append(self.if_(node))
            else:
                raise _Unsupported(type(node).__name__)
        if not parts:
            return self.name("")
        return parts[0] if len(parts) == 1 else "(" + " + ".join(parts) + ")"

    def if_(self, node: nodes.If) -> str:
        otherwise = self.body(node.else_) if node.else_ else self.name("")
        for branch in reversed(node.elif_):
            otherwise = f"({self.body(branch.body)} if {self.expr(branch.test)} else {otherwise})"
        return f"({self.body(node.body)} if {self.expr(node.test)} else {otherwise})"

    def expr(self, node: nodes.Node) -> str:
        if isinstance(node, nodes.Const):
            return self.name(node.value)
        if isinstance(node, nodes.Name):
            if node.name in KNOWN_FIELDS:
                return node.name
            raise _Unsupported(node.name)
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            attr = _const_attr(node)
            if attr is None or attr.startswith("_") or attr in _DICT_ATTRS:
                raise _Unsupported("lookup")
            inner = self.expr(node.node)
            root = node.node.name if isinstance(node.node, nodes.Name) else None
            if root is not None and attr in KNOWN_FIELDS.get(root, ()):
                return f"{inner}.{attr}"  # a field of Touch or Person: a plain attribute read
            return f"_lookup({inner}, {self.name(attr)})"
        if isinstance(node, nodes.Filter | nodes.Test):
            table = self.env.filters if isinstance(node, nodes.Filter) else self.env.tests
            func = table.get(node.name)
            if func is None or _PassArg.from_obj(cast(Any, func)) is not None or node.node is None:
                raise _Unsupported(node.name)
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                raise _Unsupported("dynamic arguments")
            args = [self.expr(node.node), *(self.expr(a) for a in node.args)]
            for kw in node.kwargs:
                assert isinstance(kw, nodes.Keyword)
                if not kw.key.isidentifier() or keyword.iskeyword(kw.key):
                    raise _Unsupported(kw.key)
                args.append(f"{kw.key}={self.expr(kw.value)}")
            return f"{self.name(func)}({', '.join(args)})"
        if isinstance(node, nodes.Not):
            return f"(not {self.expr(node.node)})"
        if isinstance(node, nodes.And):
            return f"({self.expr(node.left)} and {self.expr(node.right)})"
        if isinstance(node, nodes.Or):
            return f"({self.expr(node.left)} or {self.expr(node.right)})"
        raise _Unsupported(type(node).__name__)
