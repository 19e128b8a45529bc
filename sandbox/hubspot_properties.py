"""The properties and owners APIs of an emulated HubSpot portal.

Custom properties (unique values for contacts, companies, deals, tickets and custom objects only,
never for activities) and the owners that ``hubspot_owner_id`` values name.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.hubspot_clock import iso_ms
from sandbox.hubspot_records import HubSpotApiError, PortalBase
from sandbox.hubspot_schema import ENGAGEMENT_TYPES, singular

__all__ = ["PortalProperties"]


class PortalProperties(PortalBase):
    """``/crm/v3/properties/{type}`` and ``/crm/v3/owners``."""

    # --------------------------------------------------------------- properties
    def create_property(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/properties/{type}: a custom property, e.g. the touch key on notes."""
        self._check_type(object_type)
        name = body.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Invalid property name {name!r}: use lowercase letters, digits and underscores.",
            )
        if name in self.properties[object_type]:
            raise HubSpotApiError(
                409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists."
            )
        for required in ("label", "type", "fieldType", "groupName"):
            if not body.get(required):
                raise HubSpotApiError(400, "VALIDATION_ERROR", f"Property {required} is required.")
        kind = body["type"]
        if kind not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid property type {kind!r}.")
        unique = bool(body.get("hasUniqueValue"))
        if unique and object_type in ENGAGEMENT_TYPES:
            # HubSpot offers unique values for contacts, companies, deals, tickets and custom
            # objects only (developers.hubspot.com/changelog/unique-properties-for-contacts).
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Unique value properties are not supported for {object_type}: only contacts, "
                "companies, deals, tickets and custom objects can have them.",
            )
        if unique and kind not in ("string", "number"):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "Only string and number properties can have unique values."
            )
        stamp = iso_ms(self.clock.now())
        options = body.get("options") or []
        if kind == "bool" and not options:
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        definition = {
            "name": name,
            "label": body["label"],
            "type": "enumeration" if kind == "bool" else kind,
            "fieldType": body["fieldType"],
            "description": body.get("description", ""),
            "groupName": body["groupName"],
            "options": options,
            "displayOrder": body.get("displayOrder", -1),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": unique,
            "hidden": bool(body.get("hidden", False)),
            "formField": bool(body.get("formField", False)),
            "hubspotDefined": False,
            "archived": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        self.properties[object_type][name] = definition
        self._reindex_unique(object_type)
        return definition

    def get_property(self, object_type: str, name: str) -> dict[str, Any]:
        """GET /crm/v3/properties/{type}/{name}."""
        self._check_type(object_type)
        definition = self.properties[object_type].get(name)
        if definition is None:
            raise HubSpotApiError(
                404,
                "OBJECT_NOT_FOUND",
                f"Unable to find property {name} for {singular(object_type)}.",
            )
        return definition

    # ------------------------------------------------------------------- owners
    def owners_page(self, limit: int, after: str | None, email: str | None) -> dict[str, Any]:
        """GET /crm/v3/owners/: id-ordered pages (max 500)."""
        limit = max(1, min(limit, 500))
        owners = sorted(self.owners.values(), key=lambda o: int(o["id"]))
        if email:
            owners = [o for o in owners if o["email"].lower() == email.lower()]
        start = int(after) if after and after.isdigit() else 0
        page = owners[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    def get_owner(self, owner_id: str) -> dict[str, Any]:
        """GET /crm/v3/owners/{ownerId}: 404 for an id the portal does not have."""
        owner = self.owners.get(owner_id)
        if owner is None or owner.get("archived"):
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"Owner {owner_id} does not exist.")
        return owner

    def add_owner(self, name: str, email: str) -> str:
        """Create an owner (a HubSpot user) and return its id."""
        owner_id = str(len(self.owners) + 70_000_001)
        first, _, last = name.partition(" ")
        stamp = iso_ms(self.clock.now())
        self.owners[owner_id] = {
            "id": owner_id,
            "email": email,
            "firstName": first,
            "lastName": last,
            "userId": int(owner_id) - 60_000_000,
            "userIdIncludingInactive": int(owner_id) - 60_000_000,
            "type": "PERSON",
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "teams": [],
        }
        return owner_id
