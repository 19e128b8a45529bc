"""Touches onto HubSpot timelines as engagements, exactly once.

HubSpot does not de-duplicate engagements, and its batch create is neither idempotent nor
retried by the SDK. closedloop makes each write land once with two things:

1. **A unique property holding the touch key.** Every engagement carries the touch key in
   ``touch_key_property`` (``closedloop_touch_key``), a custom property created with
   ``hasUniqueValue: true`` by ``closedloop check hubspot --fix``. HubSpot itself then refuses a
   second engagement with the same key: a batch create containing a key that already exists fails
   whole with ``409 CONFLICT`` and applies nothing. Before the first write of each engagement
   type the writer reads the property definition once and stops with a ``ConfigError`` if it is
   missing or not unique, because without it nothing below is safe.
2. **Read before any re-send whose outcome is unknown.** A batch create (100 engagements, with
   inline associations to the contact and, when known, the company and deal) ends in one of:

   - ``201``: every input was created; the answer maps keys to ids (created=True);
   - ``409``: one key already exists (a replay, or a crash between the call and the ledger
     commit). Nothing was applied. The writer batch-reads the chunk by
     ``idProperty=<touch key property>``, reports the found ones as delivered (created=False)
     and creates only the missing ones;
   - ``400``: a record is invalid. Nothing was applied; the chunk is split in halves until
     the invalid records stand alone and are reported as failed (dead-lettered), the rest written;
   - ``429``: nothing was applied: the client waits for the interval and sends it again;
   - 5xx, a read timeout or a connection dropped after sending: the outcome is unknown. The
     writer never re-sends blindly: it batch-reads the chunk's keys (an idempotent call the
     client may retry), reports what exists as delivered, and creates only what is missing.

   A replay of touches already written therefore costs two calls per 100 (the create that
   conflicts and the read) and never writes a second engagement; a fresh write costs one call per
   100 (plus one property check per engagement type and connector).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from connectors.base import DeliveryResult, RenderedTouch
from connectors.errors import ConfigError, Transient
from connectors.hubspot.client import CallError, HubSpotClient

__all__ = ["ASSOCIATION_TYPE_IDS", "BATCH_LIMIT", "ENGAGEMENT_TYPES", "EngagementWriter"]

BATCH_LIMIT = 100
# Mapping targets -> HubSpot object types.
ENGAGEMENT_TYPES: dict[str, str] = {
    "note": "notes",
    "task": "tasks",
    "email": "emails",
    "meeting": "meetings",
    "call": "calls",
}
# HUBSPOT_DEFINED association type ids from each engagement type to (contact, company, deal).
ASSOCIATION_TYPE_IDS: dict[str, tuple[int, int, int]] = {
    "notes": (202, 190, 214),
    "tasks": (204, 192, 216),
    "emails": (198, 186, 210),
    "meetings": (200, 188, 212),
    "calls": (194, 182, 206),
}
# How many create/recover rounds one chunk may take before the writer gives up for this run
# (each round either writes or learns that a key exists; more means someone races us).
_MAX_ROUNDS = 4
_FIX = "run `closedloop check hubspot --fix` to create it"


def chunks(items: Sequence[RenderedTouch], size: int) -> Iterator[list[RenderedTouch]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class EngagementWriter:
    """Writes rendered touches as engagements of their target type, keyed by the touch key."""

    def __init__(self, client: HubSpotClient, sink: str, key_property: str) -> None:
        self.client = client
        self.sink = sink
        self.key_property = key_property
        self._checked: set[str] = set()

    def push(self, touches: Sequence[RenderedTouch]) -> list[DeliveryResult]:
        """Write ``touches`` (first of each key wins); one result per distinct key, in order."""
        unique: dict[str, RenderedTouch] = {}
        for touch in touches:
            unique.setdefault(touch.key, touch)
        results: dict[str, DeliveryResult] = {}
        by_type: dict[str, list[RenderedTouch]] = {}
        for touch in unique.values():
            object_type = ENGAGEMENT_TYPES.get(touch.target.lower())
            if object_type is None:
                results[touch.key] = self._failed(
                    touch.key,
                    "UNKNOWN_TARGET",
                    f"{touch.target!r} is not a HubSpot engagement type; use one of "
                    f"{', '.join(ENGAGEMENT_TYPES)}",
                )
                continue
            by_type.setdefault(object_type, []).append(touch)
        for object_type, group in by_type.items():
            self.ensure_key_property(object_type)
            for chunk in chunks(group, BATCH_LIMIT):
                self._deliver(object_type, chunk, results)
        return [results[key] for key in unique]

    # -- the key property ---------------------------------------------------------------------

    def ensure_key_property(self, object_type: str) -> None:
        """Stop with a ConfigError unless ``object_type`` has the unique touch-key property."""
        if object_type in self._checked:
            return
        api = self.client.api("properties")
        try:
            definition = self.client.call(
                f"{object_type} property get",
                api.get_by_name,
                object_type,
                self.key_property,
                idempotent=True,
                raw_failures=True,
            )
        except CallError as exc:
            if exc.failure.status == 404:
                raise ConfigError(
                    f"HubSpot {object_type} have no property {self.key_property!r}, which holds "
                    f"the touch key that keeps writes exactly-once: {_FIX}"
                ) from None
            raise exc.error from None
        if not definition.get("hasUniqueValue"):
            raise ConfigError(
                f"HubSpot {object_type} property {self.key_property!r} does not require unique "
                "values, so a replay could write a second engagement: HubSpot cannot change this "
                "on an existing property; delete it and run `closedloop check hubspot --fix`, or "
                "set touch_key_property to a new name"
            )
        self._checked.add(object_type)

    # -- writing ------------------------------------------------------------------------------

    def _input(self, object_type: str, touch: RenderedTouch) -> dict[str, Any]:
        properties = {k: v for k, v in touch.payload.items() if v is not None}
        properties[self.key_property] = touch.key
        contact, company, deal = ASSOCIATION_TYPE_IDS[object_type]
        associations = []
        for target, type_id in (
            (touch.person_id, contact),
            (touch.account_id, company),
            (touch.opportunity_id, deal),
        ):
            if target:
                associations.append(
                    {
                        "to": {"id": str(target)},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
                        ],
                    }
                )
        item: dict[str, Any] = {"properties": properties}
        if associations:
            item["associations"] = associations
        return item

    def _deliver(
        self, object_type: str, chunk: list[RenderedTouch], results: dict[str, DeliveryResult]
    ) -> None:
        pending = chunk
        for _ in range(_MAX_ROUNDS):
            if not pending:
                return
            pending = self._round(object_type, pending, results)
        if pending:
            raise Transient(
                f"HubSpot {object_type}: {len(pending)} engagements still conflicted after "
                f"{_MAX_ROUNDS} rounds of create and read; another writer may be using the same "
                "touch keys. The next run retries them safely."
            )

    def _round(
        self, object_type: str, pending: list[RenderedTouch], results: dict[str, DeliveryResult]
    ) -> list[RenderedTouch]:
        """One batch create; returns the touches still to write."""
        api = self.client.api("objects_batch")
        body = {"inputs": [self._input(object_type, t) for t in pending]}
        try:
            answer = self.client.call(
                f"{object_type} batch create",
                api.create,
                object_type,
                body,
                idempotent=False,
                raw_failures=True,
            )
        except CallError as exc:
            failure = exc.failure
            if failure.status == 409 or failure.applied_unknown:
                # Nothing applied (409), or we cannot know: look before writing again.
                found = self.read_existing(object_type, [t.key for t in pending])
                created = False if failure.status == 409 else None
                for touch in pending:
                    if touch.key in found:
                        results[touch.key] = self._ok(touch.key, found[touch.key], created)
                return [t for t in pending if t.key not in found]
            if failure.status == 400:
                self._reject(object_type, pending, failure.category, failure.message, results)
                return []
            raise exc.error from None
        by_key = {
            str((r.get("properties") or {}).get(self.key_property)): str(r.get("id"))
            for r in answer.get("results") or []
        }
        for touch in pending:
            if touch.key in by_key:
                results[touch.key] = self._ok(touch.key, by_key[touch.key], True)
        return [t for t in pending if t.key not in by_key]

    def _reject(
        self,
        object_type: str,
        pending: list[RenderedTouch],
        category: str,
        message: str,
        results: dict[str, DeliveryResult],
    ) -> None:
        if "PROPERTY_DOESNT_EXIST" in message and f'"{self.key_property}"' in message:
            raise ConfigError(f"HubSpot {object_type} lack {self.key_property!r}: {_FIX}")
        if len(pending) == 1:
            touch = pending[0]
            results[touch.key] = self._failed(touch.key, category or "VALIDATION_ERROR", message)
            return
        # A 400 fails the whole batch without naming the record: halve until it stands alone.
        middle = len(pending) // 2
        for half in (pending[:middle], pending[middle:]):
            self._deliver(object_type, half, results)

    def read_existing(self, object_type: str, keys: Sequence[str]) -> dict[str, str]:
        """The ids of the engagements that already carry ``keys`` (batch read on the key)."""
        api = self.client.api("objects_batch")
        found: dict[str, str] = {}
        for start in range(0, len(keys), BATCH_LIMIT):
            chunk = list(keys[start : start + BATCH_LIMIT])
            answer = self.client.call(
                f"{object_type} batch read",
                api.read,
                object_type,
                {
                    "idProperty": self.key_property,
                    "inputs": [{"id": key} for key in chunk],
                    "properties": [self.key_property],
                },
                idempotent=True,
            )
            for record in answer.get("results") or []:
                key = (record.get("properties") or {}).get(self.key_property)
                if key is not None:
                    found[str(key)] = str(record.get("id"))
        return found

    def _ok(self, key: str, crm_id: str, created: bool | None) -> DeliveryResult:
        return DeliveryResult(key, self.sink, True, crm_id=crm_id, created=created)

    def _failed(self, key: str, code: str, message: str) -> DeliveryResult:
        return DeliveryResult(key, self.sink, False, error_code=code, error_message=message)
