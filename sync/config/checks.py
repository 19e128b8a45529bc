"""The checks across sections of closedloop.yaml, run by the loader on the prepared data.

Each pipeline's ends must name defined connections whose connector type has the role the
pipeline's kind needs (the table in ``sync.config``), a touches pipeline needs a mapping file that
exists, an sla-writeback pipeline needs ``analytics.writeback``, and each budget must name a
connection with a daily API allocation to share. ``CrossChecks`` is mixed into the loader
(``sync.config.loader``), whose issue list and positions the checks report through.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.errors import did_you_mean
from connectors.registry import ConnectorInfo
from sync.config.sections import BUDGETED_TYPES, Budget
from sync.yamlfile import KeyPath, LocatedYaml

__all__ = ["CrossChecks"]

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
# Marketo's default daily allocation (``connectors.marketo.settings``: ``daily_quota``).
_MARKETO_DAILY_QUOTA = 50_000


class CrossChecks:
    """The cross-section checks of one load: the loader supplies their state and ``_add``."""

    located: LocatedYaml
    broken: set[KeyPath]
    written: dict[KeyPath, str]

    if TYPE_CHECKING:

        def _add(self, path: KeyPath, message: str, *, key: bool = False) -> None: ...

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
