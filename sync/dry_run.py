"""``closedloop sync --dry-run``: the real pipelines on the real backlog, with nothing written.

A dry run runs the very code of a real run, so its counts are the ones the real run would then
produce, with two stand-ins:

- ``DryRunLedger`` hands every ledger connection and transaction of the run to ONE database
  connection inside one outer transaction (each inner transaction a savepoint), rolled back at
  the end: the run reads the ledger as it is and sees its own writes (intents, cursors, people
  found), and none of them survive it. The same on SQLite and PostgreSQL. Threads of the run
  (pushes in flight, heartbeats) take turns on the connection.
- ``DryRunCrm`` lets a CRM connector's reads through (lookups, describes, key scans, change
  pulls, the person fields the mapping's rules compare) and answers its writes itself: people
  it would create get ids ``dry-run-N``, the person-field updates the rules allow are counted
  (``people_updated``) and not written, every touch would land, every campaign member would
  be settled, every opt-out set (the CRM's own read of who is already opted out is skipped);
  it counts what it was asked to do.
  Vendor-side checks that need no write (the org's own schema: fields, types, picklists, field
  lengths) are made as in a real run, at the map stage; refusals the CRM would make only on a
  write (a validation rule, a duplicate rule) cannot be foreseen and are said to be so.

Sources are read for real: a Marketo source runs its bulk export (which counts against the
export quota of the day). Pipelines that write CRM fields directly (the writeback kinds) are not
simulated: a dry run skips them and says so.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from connectors.base import (
    DeliveryResult,
    MemberItem,
    MemberResult,
    OptOutResult,
    Person,
    PersonUpdate,
    RenderedTouch,
)
from connectors.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["SIMULATED_KINDS", "DryRunCrm", "DryRunLedger"]

# Pipeline kinds whose CRM writes the dry run answers itself (the rest write CRM fields).
SIMULATED_KINDS = frozenset({"touches", "dispositions", "reconcile"})

# What a CRM connector may do for real in a dry run: it only reads.
_READS = frozenset({
    "api_calls", "calls", "check", "check_opt_out", "check_owner", "close", "describe_fields",
    "include_reason_fields", "keyed_targets", "pull_changes", "pull_touches",
    "read_person_fields", "resolve_people", "scan_keyed", "use_lifecycle",
})  # fmt: skip


class DryRunLedger:
    """An ``Engine`` stand-in whose connections are one connection in a transaction that is
    rolled back by ``close`` (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = engine.connect()
        self._outer = self._conn.begin()
        self._lock = threading.RLock()
        self.dialect = engine.dialect
        self.url = engine.url

    def as_engine(self) -> Engine:
        """This ledger where the pipelines expect an ``Engine`` (they use ``connect``,
        ``begin``, ``dialect``, ``url`` and ``dispose``, which this class provides)."""
        return cast("Engine", self)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._lock:
            yield self._conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._lock, self._conn.begin_nested():
            yield self._conn

    def dispose(self) -> None:
        """Nothing to release until ``close``: pipelines dispose engines they opened."""

    def close(self) -> None:
        """Roll everything the dry run wrote back and give the connection back."""
        with self._lock:
            self._outer.rollback()
            self._conn.close()


class DryRunCrm:
    """A CRM connector whose reads are real and whose writes are only counted."""

    def __init__(self, crm: Any) -> None:
        self._crm = crm
        self.name: str = crm.name
        self.would: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._crm, name)
        if callable(value) and name not in _READS:
            raise ConfigError(
                f"a dry run cannot simulate {self.name}.{name}: it would write to the CRM"
            )
        return value

    def _next_id(self) -> str:
        with self._lock:
            return f"dry-run-{next(self._ids)}"

    @property
    def last_rejections(self) -> list[Any]:
        """A simulated create refuses nobody."""
        return []

    def create_people(self, people: Sequence[Person], **_options: Any) -> list[Person]:
        self.would["people_created"] += len(people)
        return [replace(person, source=self.name, external_id=self._next_id()) for person in people]

    def update_people(self, updates: Sequence[PersonUpdate]) -> list[Any]:
        """A simulated field update refuses nobody (and writes nothing)."""
        self.would["people_updated"] += len(updates)
        return []

    def push_touches(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        out = []
        for touch in touches:
            created = touch.crm_id is None
            self.would["records_created" if created else "records_updated"] += 1
            out.append(
                DeliveryResult(
                    touch.key, self.name, ok=True, crm_id=touch.crm_id or self._next_id(),
                    created=created,
                )
            )  # fmt: skip
        return out

    def opt_out(self, people: Sequence[Person], subscription: str = "all") -> list[OptOutResult]:  # noqa: ARG002 - the real method's signature
        self.would["opt_outs"] += len(people)
        return [OptOutResult(p.email or "", ok=True, changed=True) for p in people]

    def sync_campaign_members(
        self,
        items: Sequence[MemberItem],
        status_order: Sequence[str],  # noqa: ARG002 - the real method's signature
        campaign_ids: dict[str, str] | None = None,  # noqa: ARG002
    ) -> list[MemberResult]:
        self.would["campaign_members"] += len(items)
        return [
            MemberResult(item.key, ok=True, member_id=self._next_id(), action="created")
            for item in items
        ]
