"""Values closedloop computes, written into properties of existing HubSpot records.

Two write-backs use it: the attribution summary on deals (``sync.writeback.attribution``) and
the SLA breach flag on contacts (``sync.writeback.sla``). ``PropertyWriter(client, object_type)``
always reads before it writes and sends only records whose values differ, so running a
write-back again makes read calls only:

- ``sync_values``: batch read the records' properties (100 per call), batch update the
  changed ones (100 per call);
- ``sync_flag``: search the records whose flag property is true now (200 per page, windowed
  on ``hs_object_id`` past the 10,000-result cap), then set, re-time or clear by batch update.

Records HubSpot does not have (deleted deals, merged contacts) and values it refuses come back
as ``RecordRejected`` with HubSpot's category and message, keyed by the record id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.errors import RecordRejected
from connectors.hubspot.client import HubSpotClient

__all__ = ["BATCH_LIMIT", "PropertySync", "PropertyWriter", "hubspot_time", "parse_hubspot_time"]

BATCH_LIMIT = 100  # records per batch read / update
_SEARCH_PAGE = 200
_SEARCH_CAP = 10_000  # results one search query can page through


def hubspot_time(moment: datetime) -> str:
    """A datetime as HubSpot stores datetime properties: UTC ISO with milliseconds."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_hubspot_time(value: Any) -> datetime | None:
    """A datetime property value (ISO text or epoch milliseconds) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass
class PropertySync:
    """What one write-back did (or, dry, would do) on one object type."""

    updates: dict[str, dict[str, str]] = field(default_factory=dict)  # record id -> new values
    counts: dict[str, int] = field(default_factory=dict)  # updates by reason (flagged, ...)
    unchanged: int = 0
    written: int = 0
    rejected: list[RecordRejected] = field(default_factory=list)
    read_calls: int = 0
    write_calls: int = 0


def _ids_of(error: Mapping[str, Any]) -> list[str]:
    return [str(i) for i in (error.get("context") or {}).get("ids") or []]


def _rejections(answer: Mapping[str, Any], what: str) -> list[RecordRejected]:
    out = []
    for error in answer.get("errors") or []:
        category = str(error.get("category") or "REJECTED")
        message = str(error.get("message") or category)
        for record_id in _ids_of(error):
            out.append(
                RecordRejected(f"HubSpot refused {what} {record_id}: {message}", code=category,
                               key=record_id)
            )  # fmt: skip
    return out


class PropertyWriter:
    """Read-compare-update of properties on records of one ``object_type`` (``deals``...)."""

    def __init__(self, client: HubSpotClient, object_type: str) -> None:
        self.client = client
        self.object_type = object_type
        self.singular = object_type.removesuffix("s")

    def read(
        self, ids: Sequence[str], properties: Sequence[str]
    ) -> tuple[dict[str, dict[str, str]], list[RecordRejected]]:
        """The ``properties`` of each record (absent ones as ""); records HubSpot lacks."""
        api = self.client.api("objects_batch")
        found: dict[str, dict[str, str]] = {}
        missing: list[RecordRejected] = []
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            answer = self.client.call(
                f"{self.object_type} batch read",
                api.read,
                self.object_type,
                {"inputs": [{"id": i} for i in chunk], "properties": list(properties)},
                idempotent=True,
            )
            for record in answer.get("results") or []:
                values = record.get("properties") or {}
                found[str(record.get("id"))] = {
                    p: "" if values.get(p) is None else str(values[p]) for p in properties
                }
            missing.extend(_rejections(answer, f"a write-back to {self.singular}"))
        return found, missing

    def update(
        self, updates: Mapping[str, Mapping[str, str]]
    ) -> tuple[int, list[RecordRejected], int]:
        """Batch update (100 per call): (records written, refusals, calls made)."""
        api = self.client.api("objects_batch")
        items = list(updates.items())
        written, calls = 0, 0
        rejected: list[RecordRejected] = []
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            # Setting the same values twice is harmless: safe to repeat after a timeout.
            answer = self.client.call(
                f"{self.object_type} batch update",
                api.update,
                self.object_type,
                {"inputs": [{"id": i, "properties": dict(v)} for i, v in chunk]},
                idempotent=True,
            )
            calls += 1
            written += len(answer.get("results") or [])
            rejected.extend(_rejections(answer, f"the update of {self.singular}"))
        return written, rejected, calls

    def _finish(self, result: PropertySync, dry_run: bool) -> PropertySync:
        if dry_run or not result.updates:
            return result
        written, rejected, calls = self.update(result.updates)
        result.written = written
        result.rejected.extend(rejected)
        result.write_calls = calls
        return result

    def sync_values(
        self, wanted: Mapping[str, Mapping[str, str]], *, dry_run: bool = False
    ) -> PropertySync:
        """Make each record's properties equal ``wanted[record id]`` ("" clears a property)."""
        names = sorted({name for values in wanted.values() for name in values})
        before = self.client.calls
        current, missing = self.read(list(wanted), names)
        result = PropertySync(rejected=missing, read_calls=self.client.calls - before)
        for record_id, values in wanted.items():
            now = current.get(record_id)
            if now is None:
                continue
            changed = {k: v for k, v in values.items() if now.get(k, "") != v}
            if changed:
                result.updates[record_id] = changed
            else:
                result.unchanged += 1
        return self._finish(result, dry_run)

    def flagged(self, flag: str, time_property: str | None) -> dict[str, datetime | None]:
        """Records whose ``flag`` is true now, with ``time_property`` (search, id-windowed)."""
        api = self.client.api("objects_search")
        properties = [flag, *([time_property] if time_property else [])]
        found: dict[str, datetime | None] = {}
        last_id = 0
        while True:
            after: str | None = None
            read = 0
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [
                        {"propertyName": flag, "operator": "EQ", "value": "true"},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
                    ]}],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": properties,
                    "limit": _SEARCH_PAGE,
                }  # fmt: skip
                if after is not None:
                    body["after"] = after
                answer = self.client.call(
                    f"{self.object_type} search", api.do_search, self.object_type, body,
                    idempotent=True, search=True,
                )  # fmt: skip
                for record in answer.get("results") or []:
                    values = record.get("properties") or {}
                    at = parse_hubspot_time(values.get(time_property)) if time_property else None
                    found[str(record.get("id"))] = at
                    read += 1
                after = ((answer.get("paging") or {}).get("next") or {}).get("after")
                if not after or read >= _SEARCH_CAP:
                    break
            if read < _SEARCH_CAP or not found:
                return found
            last_id = max(int(i) for i in found)  # past the cap: a new query after the last id

    def sync_flag(
        self,
        wanted: Mapping[str, datetime | None],
        flag: str,
        time_property: str | None,
        *,
        dry_run: bool = False,
    ) -> PropertySync:
        """Set ``flag`` (and its time) on ``wanted`` records and clear it everywhere else."""
        before = self.client.calls
        flagged = self.flagged(flag, time_property)
        result = PropertySync(read_calls=self.client.calls - before)
        for record_id, at in sorted(wanted.items()):
            values = {flag: "true"}
            if time_property:
                values[time_property] = hubspot_time(at) if at is not None else ""
            if record_id not in flagged:
                reason = "flagged"
            elif time_property and not _same_ms(flagged[record_id], at):
                reason = "retimed"
            else:
                result.unchanged += 1
                continue
            result.updates[record_id] = values
            result.counts[reason] = result.counts.get(reason, 0) + 1
        for record_id in sorted(set(flagged) - set(wanted)):
            cleared = {flag: "false", **({time_property: ""} if time_property else {})}
            result.updates[record_id] = cleared
        result.counts = {
            "flagged": result.counts.get("flagged", 0),
            "retimed": result.counts.get("retimed", 0),
            "cleared": len(set(flagged) - set(wanted)),
        }
        return self._finish(result, dry_run)


def _same_ms(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return hubspot_time(a) == hubspot_time(b)
