"""Whether the ledger still knows every keyed record of a sink whose creates are not idempotent.

HubSpot engagements can be created twice with the same touch key: nothing in HubSpot refuses the
second one (``connectors.hubspot.engagements``). The ledger prevents it by remembering what it
sent, so a create is safe only while the ledger can vouch that a key was never sent. It cannot
when it was lost (a new, empty database), restored from a backup (records written after the
backup are unknown to it), or when another writer (a second installation) uses the same keys.

The audit runs once per run and mapping target, before the first batch is committed as intended.
It reads the target's keyed records newest first (``KeyedSink.scan_keyed``, one search call per
page of 200) and stores in ``known_key`` every record that no delivery of the ledger accounts for
(by CRM id) and that it has not learned before. It stops at the first page made only of records
the ledger knows: from there back, the ledger is current. Touches whose keys were learned are then
confirmed with the stored record instead of being written again (``keys_for``); a digest's
record is updated in place.

No clock is compared: the newest records come first whatever the two machines' clocks say.

Cost: one search call per target per run while the ledger is current (two when a crashed run
left records the ledger has not confirmed); after a loss, one call per 200 keyed records in
the portal, once; after a restore, one per 200 records written since the backup. A portal shared
with another writer costs one call per 200 of its records written since our newest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection, delete, select

from connectors.base import KeyedRecord, KeyedSink
from sync.ledger.dialect import AnyOf, dialect_insert
from sync.ledger.models import DeliveryRow, KnownKeyRow
from sync.ledger.types import utcnow

if TYPE_CHECKING:
    from sync.pipelines.context import RunContext

__all__ = ["KeyAudit"]

log = structlog.get_logger(__name__)

_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
_KNOWN = KnownKeyRow.__table__  # type: ignore[attr-defined]
_CHUNK = 500


class KeyAudit:
    """The key audit of one sink for one run, and the keys it learned (see the module doc)."""

    def __init__(self, ctx: RunContext, crm: KeyedSink, sink: str) -> None:
        self.ctx = ctx
        self.crm = crm
        self.sink = sink
        self._audited: set[str] = set()
        self._lock = threading.Lock()
        self._has_known: bool | None = None

    def ensure(self, targets: Iterable[str]) -> None:
        """Audit each keyed target not yet audited in this run."""
        for target in self.crm.keyed_targets(targets):
            with self._lock:
                if target in self._audited:
                    continue
                self._audit(target)
                self._audited.add(target)

    def _audit(self, target: str) -> None:
        learned = 0
        for page in self.crm.scan_keyed(target):
            with self.ctx.transaction() as conn:
                unknown = self._unknown(conn, page)
                learned += self._store(conn, unknown)
            if not unknown:
                break
        if not learned:
            return
        self._has_known = None
        self.ctx.add("keys_learned", learned)
        self.ctx.note(
            f"{self.sink} holds {learned} {target} records with touch keys this ledger had not "
            "recorded (a lost or restored ledger, or another writer using the same keys): their "
            "touches are confirmed with those records, not written again"
        )
        log.warning("keys_learned", sink=self.sink, target=target, count=learned)

    def _unknown(self, conn: Connection, records: Sequence[KeyedRecord]) -> list[KeyedRecord]:
        """The records neither a delivery nor a known key of this sink accounts for."""
        ids = [r.crm_id for r in records]
        keys = [r.key for r in records]
        seen_ids: set[str] = set()
        seen_keys: set[str] = set()
        for start in range(0, len(records), _CHUNK):
            seen_ids.update(
                conn.execute(
                    select(_DELIVERY.c.crm_id).where(
                        _DELIVERY.c.sink == self.sink,
                        AnyOf(_DELIVERY.c.crm_id, ids[start : start + _CHUNK]),
                    )
                ).scalars()
            )
            seen_keys.update(
                conn.execute(
                    select(_KNOWN.c.key).where(
                        _KNOWN.c.sink == self.sink,
                        AnyOf(_KNOWN.c.key, keys[start : start + _CHUNK]),
                    )
                ).scalars()
            )
        return [r for r in records if r.crm_id not in seen_ids and r.key not in seen_keys]

    def _store(self, conn: Connection, records: Sequence[KeyedRecord]) -> int:
        if not records:
            return 0
        rows = {
            r.key: {"sink": self.sink, "key": r.key, "crm_id": r.crm_id, "target": r.target,
                    "found_at": utcnow()}
            for r in records
        }  # fmt: skip
        statement = dialect_insert(conn, _KNOWN).on_conflict_do_nothing(
            index_elements=["sink", "key"]
        )
        conn.execute(statement, list(rows.values()))
        return len(rows)

    def keys_for(self, keys: Sequence[str]) -> dict[str, str]:
        """The CRM ids the audit learned for ``keys`` (touch or digest keys)."""
        if not keys or not self._any_known():
            return {}
        found: dict[str, str] = {}
        with self.ctx.engine.connect() as conn:
            for start in range(0, len(keys), _CHUNK):
                rows = conn.execute(
                    select(_KNOWN.c.key, _KNOWN.c.crm_id).where(
                        _KNOWN.c.sink == self.sink,
                        AnyOf(_KNOWN.c.key, keys[start : start + _CHUNK]),
                    )
                )
                found.update((row.key, row.crm_id) for row in rows)
        return found

    def forget(self, conn: Connection, keys: Mapping[str, str]) -> None:
        """Drop learned keys whose touches are now confirmed (the delivery row carries them)."""
        if not keys or not self._any_known():
            return
        names = list(keys)
        for start in range(0, len(names), _CHUNK):
            conn.execute(
                delete(_KNOWN).where(
                    _KNOWN.c.sink == self.sink, AnyOf(_KNOWN.c.key, names[start : start + _CHUNK])
                )
            )

    def _any_known(self) -> bool:
        if self._has_known is None:
            with self.ctx.engine.connect() as conn:
                self._has_known = (
                    conn.execute(
                        select(_KNOWN.c.id).where(_KNOWN.c.sink == self.sink).limit(1)
                    ).first()
                    is not None
                )
        return self._has_known
