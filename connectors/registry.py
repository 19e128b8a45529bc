"""Connector discovery through the ``closedloop.connectors`` entry-point group.

Built-in connectors are registered in closedloop's own ``pyproject.toml`` exactly like third-party
plugins, so there is one path for both. An entry point names a ``ConnectorInfo``: the connector's
roles, the pydantic model of its settings (validated by ``closedloop config check``) and a factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from connectors.errors import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "ConnectorInfo", "connector_names", "get_connector"]

ENTRY_POINT_GROUP = "closedloop.connectors"


@dataclass(frozen=True)
class ConnectorInfo:
    """What the registry knows of a connector type."""

    name: str
    roles: frozenset[str]
    settings_model: type[BaseModel]
    factory: Callable[[str, Any], Any]
    description: str = ""

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
