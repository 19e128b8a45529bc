"""The lists v3 API of an emulated HubSpot portal: lists and their memberships.

MANUAL and SNAPSHOT lists take membership changes, DYNAMIC ones do not; list names are unique;
memberships page by ascending record id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox.hubspot_clock import iso_ms, to_ms
from sandbox.hubspot_records import HubSpotApiError, PortalBase
from sandbox.hubspot_schema import OBJECT_TYPE_IDS

__all__ = ["PortalLists"]


class PortalLists(PortalBase):
    """``/crm/v3/lists`` and ``/crm/v3/lists/{id}/memberships``."""

    # -------------------------------------------------------------------- lists
    def create_list(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/lists: a MANUAL (static) or SNAPSHOT list; names are unique."""
        name = body.get("name")
        object_type_id = body.get("objectTypeId")
        processing = body.get("processingType")
        if not name or not object_type_id or not processing:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "name, objectTypeId and processingType are required."
            )
        if processing not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Invalid processingType {processing!r}."
            )
        if object_type_id not in OBJECT_TYPE_IDS.values():
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Invalid objectTypeId {object_type_id!r}."
            )
        if any(existing["name"] == name for existing in self.lists.values()):
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"A list named '{name}' already exists.")
        list_id = str(len(self.lists) + 1)
        stamp = iso_ms(self.clock.now())
        record = {
            "listId": list_id,
            "name": name,
            "objectTypeId": object_type_id,
            "processingType": processing,
            "processingStatus": "COMPLETE",
            "listVersion": 1,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self.lists[list_id] = record
        self.memberships[list_id] = {}
        return {"list": record}

    def _list(self, list_id: str) -> dict[str, Any]:
        found = self.lists.get(list_id)
        if found is None:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
        return found

    def change_membership(self, list_id: str, record_ids: Any, *, add: bool) -> dict[str, Any]:
        """PUT /crm/v3/lists/{id}/memberships/add|remove (MANUAL and SNAPSHOT lists only)."""
        found = self._list(list_id)
        if found["processingType"] == "DYNAMIC":
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                "Records cannot be added to or removed from a DYNAMIC list.",
            )
        if not isinstance(record_ids, list):
            raise HubSpotApiError(400, "VALIDATION_ERROR", "The body must be a list of record ids.")
        object_type = next(t for t, i in OBJECT_TYPE_IDS.items() if i == found["objectTypeId"])
        members = self.memberships[list_id]
        changed, missing = [], []
        stamp = to_ms(self.clock.now())
        for raw in record_ids:
            key = str(raw)
            if add:
                if key not in self.objects[object_type]:
                    missing.append(key)
                elif key not in members:
                    members[key] = stamp
                    changed.append(key)
            elif members.pop(key, None) is not None:
                changed.append(key)
            else:
                missing.append(key)
        return {
            "recordsIdsAdded": changed if add else [],
            "recordIdsRemoved": [] if add else changed,
            "recordIdsMissing": missing,
        }

    def list_memberships(self, list_id: str, limit: int, after: str | None) -> dict[str, Any]:
        """GET /crm/v3/lists/{id}/memberships: record ids in id order, paged."""
        self._list(list_id)
        limit = max(1, min(limit, 250))
        members = sorted(self.memberships[list_id].items(), key=lambda kv: int(kv[0]))
        start = int(after) if after and after.isdigit() else 0
        page = members[start : start + limit]
        body: dict[str, Any] = {
            "results": [
                {
                    "recordId": key,
                    "membershipTimestamp": iso_ms(datetime.fromtimestamp(ms / 1000, UTC)),
                }
                for key, ms in page
            ],
            "total": len(members),
        }
        if start + limit < len(members):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body
