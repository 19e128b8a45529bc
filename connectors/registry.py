"""Connector discovery through the ``closedloop.connectors`` entry-point group.

Built-in connectors are registered in closedloop's own ``pyproject.toml`` exactly like third-party
plugins, so there is one path for both. An entry point names a ``ConnectorInfo``: the connector's
roles, the pydantic model of its settings (validated by ``closedloop config check``) and a factory.

A connector with the ``crm`` role is a sink: touches pipelines write to it and mapping files name
its type in ``crm:``. Its ``SinkInfo`` says what the engine needs to know of it without a
connection: which objects a person can be, which hold deals, what ``closedloop schema refresh``
reads by default, how many records one push call carries, and, for a sink whose objects and fields
are fixed, its field catalogue (``fields``). A sink whose schema lives in the remote system
(custom fields, as in Salesforce and HubSpot) implements ``describe_fields(objects)`` instead and
the catalogue is read from there. Either way mappings are checked against that catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from connectors.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "SINK_ROLE",
    "ConnectorInfo",
    "SinkInfo",
    "connector_names",
    "get_connector",
    "sink_info",
    "sink_names",
]

ENTRY_POINT_GROUP = "closedloop.connectors"
# The role of connectors touches are written to (a mapping file's ``crm:``).
SINK_ROLE = "crm"


@dataclass(frozen=True)
class SinkInfo:
    """What a connector with the ``crm`` role declares as a mapping target.

    ``fields`` is the declared catalogue: object -> field rows, each a mapping with ``name`` and
    optionally ``label``, ``type`` (``string``, ``textarea``, ``picklist``, ``int``, ``double``,
    ``boolean``, ``date``, ``datetime``, ``reference`` ...), ``length``, ``picklist``,
    ``restricted``, ``createable``, ``updateable``, ``required`` (on create). Declared fields are
    used as they are, with no connection; a sink that declares none is asked
    ``describe_fields(objects)`` for its org's own fields (cached in the ledger).
    """

    label: str = ""
    person_objects: tuple[str, ...] = ()
    deal_objects: tuple[str, ...] = ()
    default_objects: tuple[str, ...] = ()
    push_capacity: int = 0
    fields: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    def objects_to_read(self) -> tuple[str, ...]:
        """What ``closedloop schema refresh`` reads when no mapping names any object."""
        return self.default_objects or tuple(self.fields)


@dataclass(frozen=True)
class ConnectorInfo:
    """What the registry knows of a connector type."""

    name: str
    roles: frozenset[str]
    settings_model: type[BaseModel]
    factory: Callable[[str, Any], Any]
    description: str = ""
    sink: SinkInfo | None = None

    def build(self, connection_name: str, settings: Mapping[str, Any] | BaseModel) -> Any:
        """Validate ``settings`` and build a connector instance named ``connection_name``."""
        model = (
            settings
            if isinstance(settings, self.settings_model)
            else self.settings_model.model_validate(settings)
        )
        return self.factory(connection_name, model)


@cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def connector_names() -> list[str]:
    """The names of every installed connector type, sorted."""
    return sorted(_entry_points())


def get_connector(name: str) -> ConnectorInfo:
    """Load the connector type ``name``; an unknown name is a ConfigError listing the known ones."""
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(connector_names()) or "(none installed)"
        raise ConfigError(f"unknown connector type {name!r}; known types: {known}")
    info = eps[name].load()
    if not isinstance(info, ConnectorInfo):
        raise ConfigError(
            f"entry point {name!r} in group {ENTRY_POINT_GROUP} names {type(info).__name__}, "
            "expected a connectors.registry.ConnectorInfo"
        )
    return info


def sink_names() -> list[str]:
    """The installed connector types with the ``crm`` role (what a mapping's ``crm:`` may name)."""
    names = []
    for name in connector_names():
        try:
            info = get_connector(name)
        except (ConfigError, ImportError):  # a broken plugin is reported where it is used
            continue
        if SINK_ROLE in info.roles:
            names.append(name)
    return names


def sink_info(name: str) -> SinkInfo:
    """What the sink type ``name`` declares (an empty ``SinkInfo`` for an unknown type or a CRM
    connector that declares nothing, so callers need no special case)."""
    try:
        info = get_connector(name)
    except (ConfigError, ImportError):
        return _NO_SINK
    return info.sink or _NO_SINK


_NO_SINK = SinkInfo()
