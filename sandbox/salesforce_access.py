"""Field-level security in the Salesforce emulator's org: what the integration user sees.

The fields an admin adds through the Tooling API are granted to no profile: the user reads or
edits one only through a FieldPermissions row of a permission set assigned to him. ``FieldAccess``
(mixed into ``salesforce_store.SalesforceStore``) answers each sObject as he sees it, and reads
the grants again whenever a permission record is written.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sandbox.salesforce_schema import FieldDef, ObjectDef

if TYPE_CHECKING:
    from sandbox.salesforce_meta import ObjectMeta

__all__ = ["FieldAccess"]


class FieldAccess:
    """The integration user's view of the org's sObjects; the store supplies the state."""

    objects: dict[str, ObjectDef]
    records: dict[str, dict[str, dict[str, Any]]]
    secured_fields: dict[str, set[str]]
    user_id: str
    lock: threading.RLock
    _grants: dict[tuple[str, str], tuple[bool, bool]] | None
    _views: dict[str, tuple[ObjectDef, frozenset[str]]]

    if TYPE_CHECKING:

        def _meta(self, sobject: str) -> ObjectMeta: ...

        def insert(self, sobject: str, values: Mapping[str, Any]) -> str: ...

    def object_def(self, name: str) -> ObjectDef | None:
        """The sObject called ``name`` (case-insensitive) as the integration user sees it
        (``user_object``), or None."""
        found = self.objects.get(name)
        if found is None:
            found = next((o for o in self.objects.values() if o.name.lower() == name.lower()), None)
        return None if found is None else self.user_object(found)

    def user_objects(self) -> dict[str, ObjectDef]:
        """Every sObject as the integration user sees it (what SOQL binds to)."""
        return {name: self.user_object(obj) for name, obj in self.objects.items()}

    def user_object(self, obj: ObjectDef) -> ObjectDef:
        """``obj`` without the secured fields the user may not read, and with those he may read
        but not edit neither createable nor updateable (field-level security)."""
        secured = self.secured_fields.get(obj.name)
        if not secured:
            return obj
        view = self._views.get(obj.name)
        if view is None:
            fields: dict[str, FieldDef] = {}
            for name, f in obj.fields.items():
                read, edit = self.field_access(obj.name, name)
                if read:
                    fields[name] = f if edit else replace(f, createable=False, updateable=False)
            shown = replace(obj, fields=fields)
            view = self._views[obj.name] = (shown, self._meta(obj.name).textual & fields.keys())
        return view[0]

    def field_access(self, sobject: str, name: str) -> tuple[bool, bool]:
        """(read, edit) of the integration user on ``sobject.name``: both for stock fields, for
        secured ones what the FieldPermissions of his permission sets grant (edit needs read)."""
        if name not in self.secured_fields.get(sobject, ()):
            return True, True
        if self._grants is None:
            self._grants = self._read_grants()
        return self._grants.get((sobject.lower(), name.lower()), (False, False))

    def _read_grants(self) -> dict[tuple[str, str], tuple[bool, bool]]:
        assigned = {
            row["PermissionSetId"]
            for row in self.records["PermissionSetAssignment"].values()
            if not row.get("IsDeleted") and row.get("AssigneeId") == self.user_id
        }
        grants: dict[tuple[str, str], tuple[bool, bool]] = {}
        for row in self.records["FieldPermissions"].values():
            if row.get("IsDeleted") or row.get("ParentId") not in assigned:
                continue
            sobject, _, name = str(row.get("Field") or "").partition(".")
            key = (sobject.lower(), name.lower())
            read, edit = grants.get(key, (False, False))
            can_read = bool(row.get("PermissionsRead"))
            can_edit = can_read and bool(row.get("PermissionsEdit"))
            grants[key] = (read or can_read, edit or can_edit)
        return grants

    def _forget_grants(self) -> None:
        self._grants = None
        self._views = {}

    def grant_field_access(self, sobject: str, name: str, *, edit: bool = True) -> None:
        """Give the integration user read (and edit) access to ``sobject.name`` the way an admin
        does: a permission set assigned to him with a FieldPermissions row (for tests)."""
        with self.lock:
            name_of_set = "Closedloop_Integration"
            sets = [
                r["Id"]
                for r in self.records["PermissionSet"].values()
                if r.get("Name") == name_of_set and not r.get("IsDeleted")
            ]
            if sets:
                permission_set = sets[0]
            else:
                permission_set = self.insert(
                    "PermissionSet", {"Name": name_of_set, "Label": "Closedloop Integration"}
                )
                self.insert(
                    "PermissionSetAssignment",
                    {"AssigneeId": self.user_id, "PermissionSetId": permission_set},
                )
            self.insert(
                "FieldPermissions",
                {
                    "ParentId": permission_set,
                    "SobjectType": sobject,
                    "Field": f"{sobject}.{name}",
                    "PermissionsRead": True,
                    "PermissionsEdit": edit,
                },
            )
