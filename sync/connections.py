"""Connector instances built from the config once per process, shared by every pipeline run.

Vendor clients are expensive (TLS sessions, token fetches, HubSpot's per-access ApiClient) and
carry the rate limiters and budgets of their org, so one process must hold exactly one instance
per connection: ``Connections`` builds each on first use, hands the same instance to every
pipeline, and closes them all at the end. It also owns the per-org push slots that bound how
many CRM writes are in flight at once across pipelines, and reads each connector's own API
call counter for run summaries.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from connectors.base import ActivitySource, Crm
from connectors.errors import ConfigError

if TYPE_CHECKING:
    from sync.config import Config

__all__ = ["DEFAULT_PUSHES_IN_FLIGHT", "Connections", "api_calls_of"]

# At most this many push calls in flight per CRM org unless the connector says otherwise
# (``max_pushes_in_flight``): the connectors' own limiters still pace each call.
DEFAULT_PUSHES_IN_FLIGHT = 2


def api_calls_of(connector: Any) -> int | None:
    """The number of API calls ``connector`` has made so far, when it counts them."""
    for holder in (connector, getattr(connector, "client", None)):
        if holder is None:
            continue
        for attribute in ("api_calls", "calls"):
            value = getattr(holder, attribute, None)
            if callable(value):
                value = value()
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


class Connections:
    """Builds each configured connector on first use and reuses it; thread-safe."""

    def __init__(
        self,
        config: Config,
        *,
        instances: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.config = config
        # A dry run hands pipelines CRMs whose writes are only counted (``sync.dry_run``).
        self.dry_run = dry_run
        self.dry_crms: dict[str, Any] = {}
        self._instances: dict[str, Any] = dict(instances or {})
        self._given = frozenset(self._instances)
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        # API calls of each connector already added to the ledger's daily count (sync.budgets).
        self._recorded: dict[str, int] = {}

    def get(self, name: str) -> Any:
        """The connector instance of connection ``name`` (built now if it was not yet)."""
        with self._lock:
            if name in self._instances:
                return self._instances[name]
            connection = self.config.connections.get(name)
            if connection is None:
                known = ", ".join(sorted(self.config.connections)) or "(none)"
                raise ConfigError(f"no connection named {name!r}; defined connections: {known}")
            instance = connection.build()
            self._instances[name] = instance
            return instance

    def built(self, name: str) -> Any:
        """The connector of ``name`` if it was built already, else None (builds nothing)."""
        with self._lock:
            return self._instances.get(name)

    def crm(self, name: str) -> Crm:
        """Connection ``name`` as a CRM; ConfigError when its connector is not one."""
        instance = self.get(name)
        if not isinstance(instance, Crm):
            raise ConfigError(f"connection {name!r} is not a CRM connector")
        if self.dry_run:
            from sync.dry_run import DryRunCrm

            with self._lock:
                dry = self.dry_crms.setdefault(name, DryRunCrm(instance))
            return cast("Crm", dry)
        return instance

    def source(self, name: str) -> ActivitySource | None:
        """Connection ``name`` as a pulling activity source, or None for ledger-fed sources
        (file imports and webhooks store their touches themselves)."""
        instance = self.get(name)
        return instance if isinstance(instance, ActivitySource) else None

    def push_limit(self, name: str) -> int:
        """How many pushes to CRM connection ``name`` may be in flight at once."""
        with self._lock:
            instance = self._instances.get(name)
        limit = getattr(instance, "max_pushes_in_flight", DEFAULT_PUSHES_IN_FLIGHT)
        return limit if isinstance(limit, int) and limit > 0 else 1

    def push_slots(self, name: str) -> threading.BoundedSemaphore:
        """The semaphore bounding concurrent pushes to CRM connection ``name`` in this process."""
        limit = self.push_limit(name)
        with self._lock:
            slots = self._slots.get(name)
            if slots is None:
                slots = threading.BoundedSemaphore(limit)
                self._slots[name] = slots
            return slots

    def api_calls(self) -> dict[str, int]:
        """API calls made so far by each connection built in this process (when counted)."""
        with self._lock:
            items = list(self._instances.items())
        out: dict[str, int] = {}
        for name, instance in items:
            calls = api_calls_of(instance)
            if calls is not None:
                out[name] = calls
        return out

    def unrecorded_calls(self, name: str, *, take: bool = False) -> int:
        """API calls of connection ``name`` in this process not yet in the ledger's daily
        count (``take``: and mark them recorded now). Runs sharing a connector in one process
        count each call once."""
        with self._lock:
            made = api_calls_of(self._instances.get(name)) or 0
            unrecorded = max(0, made - self._recorded.get(name, 0))
            if take:
                self._recorded[name] = made
            return unrecorded

    def close(self) -> None:
        """Close every connector this object built (ones passed in stay open)."""
        with self._lock:
            items = [(n, i) for n, i in self._instances.items() if n not in self._given]
            for name, _ in items:
                del self._instances[name]
                self._recorded.pop(name, None)
        for _, instance in items:
            close = getattr(instance, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
