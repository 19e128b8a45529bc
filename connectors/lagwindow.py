"""Re-reading a lag window of a CRM change feed, without yielding anything twice.

Both CRMs stamp a change when it is made, not when it becomes readable: a Salesforce
transaction commits after the SystemModstamp it wrote, and HubSpot's search index trails
``hs_lastmodifieddate`` by seconds. A pull that starts exactly where the last one ended loses
such a late record for good: its time is already behind the cursor when it becomes visible.

So each pull starts ``lag`` before its cursor, and the cursor remembers the record versions
(id and change time) it has already yielded inside that window. Re-reading the window then
yields only what is new: a record that became visible late, or one changed again. A pull that
finds nothing new yields nothing, as before.

The versions live in ``Cursor.boundary_keys`` as ``"<id>@<epoch ms>"``. A key without ``@``
(cursors written before the lag window) is a record at exactly the cursor's time. At most
``MAX_KEYS`` versions are kept, the newest first: after a mass update inside the window the
older versions are forgotten, so a re-read yields those records again (harmless: every ledger
write of a pulled record is idempotent), which is the price of a bounded cursor.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

__all__ = ["MAX_KEYS", "SeenVersions", "version_key"]

MAX_KEYS = 10_000


def version_key(record_id: str, ms: int) -> str:
    """The cursor key of one version of a record."""
    return f"{record_id}@{ms}"


class SeenVersions:
    """Record versions yielded at or after ``window end - lag``, for one pull."""

    def __init__(self, keys: Iterable[str], cursor_ms: int | None, lag_ms: int) -> None:
        self.lag_ms = lag_ms
        self._seen: dict[str, int] = {}
        for key in keys:
            _, at, ms = key.rpartition("@")
            if at and ms.isdigit():
                self._seen[key] = int(ms)
            elif cursor_ms is not None:
                self._seen[version_key(key, cursor_ms)] = cursor_ms

    def start(self, cursor_ms: int) -> int:
        """Where a pull from a cursor at ``cursor_ms`` starts reading."""
        return max(0, cursor_ms - self.lag_ms)

    def first_sight(self, record_id: str, ms: int) -> bool:
        """Whether this version is new to the cursor (and remember it either way)."""
        key = version_key(record_id, ms)
        if key in self._seen:
            return False
        self._seen[key] = ms
        return True

    def keys_until(self, end_ms: int) -> frozenset[str]:
        """The versions a cursor ending at ``end_ms`` keeps: those inside its lag window."""
        floor = end_ms - self.lag_ms
        for key in [k for k, ms in self._seen.items() if ms < floor]:
            del self._seen[key]
        inside = [(ms, key) for key, ms in self._seen.items() if ms <= end_ms]
        if len(inside) > MAX_KEYS:
            inside = heapq.nlargest(MAX_KEYS, inside)
        return frozenset(key for _, key in inside)
