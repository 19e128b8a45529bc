"""The connected CRM's own schema, for checking mappings: read through the connector, cached.

Mappings are checked against the org they write to, not against a list closedloop ships: a
custom field the org has is accepted, one it lacks is refused with a did-you-mean drawn from the
org's own fields. ``OrgSchema`` is the ``SchemaSource`` (``sync.mapping.catalogue``) doing it for
one connection:

1. **Read** with ``connector.describe_fields(objects)``: Salesforce describe, batched into
   Composite requests (one API call per 25 objects); HubSpot's properties API (one call per
   object type). Only the objects the mapping names are read (``needed_objects``).
2. **Cache** in the ledger: one ``crm_schema`` row per connection and object, holding the
   vendor-neutral field rows (NULL when the org has no such object) and ``read_at``.
3. **Re-read** an object only when it is not cached for this connection (or was cached while
   the connection had another CRM type), when its row is older than ``mappings.schema_max_age``
   (24 h by default), or when asked: ``closedloop schema refresh``, and ``closedloop check
   <crm>``, which is the live check and always reads. Describe calls spend the org's API
   allocation, so nothing else re-reads: an admin who just added a field runs ``closedloop schema
   refresh``, and every message says how old the schema it was checked against is.
4. **Unreachable org**: cached rows are used however old, and the message says the org could
   not be reached; with nothing cached it is a ``ConfigError`` (exit 2) naming the remedy. The
   sandbox's schema never stands in (that is ``--offline``, which the user asks for).

A sink that declares its field catalogue (``SinkInfo.fields``: a plugin whose objects and fields
are fixed) is checked against that declaration as is: nothing is read, cached or stale.

``ConfiguredSchema`` picks, per mapping file, the connection to check it against (the one
named, else the pipelines using the file, else the only connection of the mapping's CRM type);
``pipeline_schema`` is the source a running pipeline compiles its mapping with.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, select

from connectors.errors import ClosedloopError, ConfigError
from connectors.registry import sink_info
from sync.ledger.dialect import dialect_insert
from sync.ledger.models import CrmSchemaRow
from sync.ledger.types import utcnow
from sync.mapping.catalogue import FieldCatalogue, declared_catalogue

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.config import Config, Pipeline
    from sync.pipelines.context import RunContext

__all__ = [
    "DEFAULT_MAX_AGE",
    "ConfiguredSchema",
    "OrgSchema",
    "age_text",
    "cached_objects",
    "crm_connection_for",
    "pipeline_crm",
    "pipeline_schema",
]

DEFAULT_MAX_AGE = timedelta(hours=24)
_TABLE: Table = CrmSchemaRow.__table__  # type: ignore[attr-defined]


def age_text(age: timedelta) -> str:
    """How long ago, for people: ``just now``, ``12 min ago``, ``2 h ago``, ``3 d ago``."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86_400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86_400} d ago"


def cached_objects(engine: Engine, connection: str) -> list[tuple[str, str, bool, datetime]]:
    """(object, CRM type, exists, read_at) of every cached object of ``connection``."""
    query = (
        select(_TABLE.c.object, _TABLE.c.crm, _TABLE.c.fields.is_not(None), _TABLE.c.read_at)
        .where(_TABLE.c.connection == connection)
        .order_by(_TABLE.c.object)
    )
    with engine.connect() as conn:
        return [(r[0], r[1], bool(r[2]), r[3]) for r in conn.execute(query)]


class OrgSchema:
    """The schema of one connection's CRM, cached in the ledger (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        connection: str,
        crm: str,
        connect: Callable[[], Any],
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        refresh: bool = False,
        owns_connector: bool = True,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.connection = connection
        self.crm = crm
        self.max_age = max_age
        self.refresh = refresh
        # Objects read from the org by this instance, in order (messages, tests).
        self.read: list[str] = []
        self._connect = connect
        self._connector: Any = None
        self._owns = owns_connector
        self._now = now

    @property
    def label(self) -> str:
        """``the Salesforce org of connection 'salesforce'``."""
        label = sink_info(self.crm).label or f"{self.crm} CRM"
        return f"the {label} of connection {self.connection!r}"

    def catalogue(self, crm: str, objects: Collection[str]) -> FieldCatalogue:
        """The org's fields of ``objects`` (cached, or read now; see the module docstring)."""
        if crm != self.crm:
            raise ConfigError(
                f"this mapping is for {crm}, but connection {self.connection!r} is a {self.crm} "
                f"connection: name a {crm} connection with --connection"
            )
        declared = declared_catalogue(
            self.crm, f"against the catalogue the {self.crm} connector declares"
        )
        if declared is not None:
            return declared
        wanted = list(dict.fromkeys(objects))
        cached = self._load(wanted)
        now = self._now()
        stale = [
            o
            for o in wanted
            if o not in cached
            or now - cached[o][1] > self.max_age
            or (self.refresh and o not in self.read)
        ]
        unreachable = None
        if stale:
            try:
                fresh = self._describe(stale)
            except ClosedloopError as exc:
                missing = [o for o in stale if o not in cached]
                if missing:
                    raise ConfigError(
                        f"cannot read the schema of {self.label} ({', '.join(missing)}): {exc}. "
                        "Mappings are checked against the org's own fields: fix the connection "
                        f"(`closedloop check {self.crm}`), or check against the sandbox's "
                        "schema instead with --offline"
                    ) from None
                unreachable = str(exc).splitlines()[0]
            else:
                self._store(fresh, now)
                cached.update({o: (rows, now) for o, rows in fresh.items()})
        oldest = min((cached[o][1] for o in wanted), default=now)
        age = age_text(now - oldest)
        if unreachable is None:
            phrase = (
                f"against {self.label}, schema read {age}; `closedloop schema refresh` to re-read"
            )
        else:
            phrase = (
                f"against the cached schema of {self.label}, read {age}: the org could not be "
                f"reached to re-read it ({unreachable})"
            )
        return FieldCatalogue.from_rows(self.crm, {o: cached[o][0] for o in wanted}, phrase)

    def refresh_objects(self, objects: Iterable[str]) -> list[str]:
        """Read ``objects`` from the org now and cache them; returns the ones the org lacks."""
        fresh = self._describe(list(dict.fromkeys(objects)))
        self._store(fresh, self._now())
        return [o for o, rows in fresh.items() if rows is None]

    def close(self) -> None:
        """Close the connector this schema built (a shared one stays open)."""
        if self._connector is not None and self._owns:
            self._connector.close()
        self._connector = None

    # -- the org -------------------------------------------------------------------------------

    def _describe(self, objects: Sequence[str]) -> dict[str, list[dict[str, Any]] | None]:
        if self._connector is None:
            try:
                self._connector = self._connect()
            except ImportError as exc:
                raise ConfigError(f"the {self.crm} connector is not installed ({exc})") from None
        describe = getattr(self._connector, "describe_fields", None)
        if not callable(describe):
            raise ConfigError(f"the {self.crm} connector cannot read its CRM's schema")
        fresh: dict[str, list[dict[str, Any]] | None] = describe(objects)
        self.read.extend(o for o in objects if o not in self.read)
        return fresh

    # -- the ledger ----------------------------------------------------------------------------

    def _load(
        self, objects: Sequence[str]
    ) -> dict[str, tuple[list[dict[str, Any]] | None, datetime]]:
        query = select(_TABLE.c.object, _TABLE.c.crm, _TABLE.c.fields, _TABLE.c.read_at).where(
            _TABLE.c.connection == self.connection, _TABLE.c.object.in_(list(objects))
        )
        with self.engine.connect() as conn:
            return {
                row.object: (row.fields, row.read_at)
                for row in conn.execute(query)
                if row.crm == self.crm
            }

    def _store(self, fresh: dict[str, list[dict[str, Any]] | None], now: datetime) -> None:
        if not fresh:
            return
        rows = [
            {"connection": self.connection, "crm": self.crm, "object": obj, "fields": fields,
             "read_at": now}
            for obj, fields in fresh.items()
        ]  # fmt: skip
        with self.engine.begin() as conn:
            statement = dialect_insert(conn, _TABLE)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["connection", "object"],
                    set_={
                        "crm": statement.excluded.crm,
                        "fields": statement.excluded.fields,
                        "read_at": statement.excluded.read_at,
                    },
                ),
                rows,
            )


def crm_connection_for(
    config: Config, crm: str, *, name: str | None = None, path: Path | None = None
) -> str:
    """The connection a mapping of ``crm`` (the file ``path``) is checked against."""
    of_type = sorted(n for n, c in config.connections.items() if c.type == crm)
    offline = "or check against the sandbox's schema instead with --offline"
    if name is not None:
        conn = config.connections.get(name)
        if conn is None or conn.type != crm:
            raise ConfigError(
                f"{config.path}: no {crm} connection named {name!r} "
                f"(found: {', '.join(of_type) or 'none'})"
            )
        return name
    if path is not None:
        target = path.resolve()
        used = sorted(
            {
                end
                for pipeline in config.pipelines.values()
                if pipeline.mapping is not None and Path(pipeline.mapping).resolve() == target
                for end in (pipeline.sink, pipeline.source)
                if end in of_type
            }
        )
        if len(used) == 1:
            return used[0]
        if len(used) > 1:
            raise ConfigError(
                f"{path} is used by pipelines of several {crm} connections ({', '.join(used)}): "
                "choose one with --connection"
            )
    if len(of_type) == 1:
        return of_type[0]
    if not of_type:
        raise ConfigError(
            f"{config.path} has no {crm} connection to read the org's schema from: add one, "
            f"{offline}"
        )
    raise ConfigError(
        f"{config.path} has several {crm} connections ({', '.join(of_type)}): choose one with "
        "--connection"
    )


class ConfiguredSchema:
    """A ``SchemaSource`` for mapping files of a config: each checked against its CRM connection."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        connection: str | None = None,
        refresh: bool = False,
        connect: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.connection = connection
        self.refresh = refresh
        self.path: Path | None = None
        self.orgs: dict[str, OrgSchema] = {}
        # Shared connectors (a run's ``Connections.get``); None: build (and close) our own.
        self._connect = connect
        self._file_connection = connection

    def for_file(self, path: Path, connection: str | None = None) -> ConfiguredSchema:
        """This source, checking the mapping file ``path`` next (against ``connection``, else
        the one named at construction, else the one the file's pipelines use)."""
        self.path = path
        self._file_connection = connection or self.connection
        return self

    def org(self, name: str) -> OrgSchema:
        """The cached schema of connection ``name`` (one per connection and command)."""
        found = self.orgs.get(name)
        if found is None:
            conn = self.config.connections[name]
            shared = self._connect
            found = OrgSchema(
                self.engine, name, conn.type,
                conn.build if shared is None else (lambda: shared(name)),
                max_age=self.config.mappings.max_age, refresh=self.refresh,
                owns_connector=shared is None,
            )  # fmt: skip
            self.orgs[name] = found
        return found

    def catalogue(self, crm: str, objects: Collection[str]) -> FieldCatalogue:
        """The catalogue of the connection this file's mappings of ``crm`` write to."""
        name = crm_connection_for(self.config, crm, name=self._file_connection, path=self.path)
        return self.org(name).catalogue(crm, objects)

    def close(self) -> None:
        """Close the connectors built for reading schemas."""
        for org in self.orgs.values():
            org.close()


def pipeline_crm(pipeline: Pipeline, *, writes_only: bool = False) -> str | None:
    """The CRM connection a pipeline's mapping file is checked against: touches write to their
    sink, dispositions read their source (skipped with ``writes_only``: they write nothing to
    the CRM and use only the lifecycle); None for pipelines without a mapping."""
    if pipeline.mapping is None:
        return None
    if pipeline.kind == "touches":
        return pipeline.sink
    if pipeline.kind == "dispositions" and not writes_only:
        return pipeline.source
    return None


def pipeline_schema(ctx: RunContext, connection: str) -> OrgSchema:
    """The schema a running pipeline checks and compiles its mapping with (its own connector)."""
    conn = ctx.config.connections[connection]
    return OrgSchema(
        ctx.engine, connection, conn.type, lambda: ctx.connections.get(connection),
        max_age=ctx.config.mappings.max_age, owns_connector=False,
    )  # fmt: skip
