"""The write rules of the Salesforce emulator's org, checked before a record is saved.

Fields a user may not set (Id on insert, read-only and secured fields), text lengths, e-mail
addresses, restricted picklists, references (id of the right object, an existing record; an
active User or a queue supporting the object as owner), required fields, the uniqueness of
permission rows and of unique fields. ``WriteRules`` is mixed into
``salesforce_store.SalesforceStore``; each broken rule is an error of a save result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sandbox.salesforce_meta import index_key
from sandbox.salesforce_schema import FieldDef, ObjectDef, object_for_prefix
from sandbox.salesforce_soql import normalize_id
from sandbox.salesforce_values import dml, email_ok

if TYPE_CHECKING:
    from sandbox.salesforce_meta import ObjectMeta

__all__ = ["PERMISSION_OBJECTS", "WriteRules"]

# Records that decide field-level security: writing one makes the grants be read again.
PERMISSION_OBJECTS = frozenset({"PermissionSet", "PermissionSetAssignment", "FieldPermissions"})


class WriteRules:
    """The checks of one save against the org's rules; the store supplies the state."""

    objects: dict[str, ObjectDef]
    records: dict[str, dict[str, dict[str, Any]]]
    secured_fields: dict[str, set[str]]
    _indexes: dict[tuple[str, str], dict[Any, set[str]]]

    if TYPE_CHECKING:

        def _meta(self, sobject: str) -> ObjectMeta: ...

        def field_access(self, sobject: str, name: str) -> tuple[bool, bool]: ...

        def lookup(self, record_id: str) -> tuple[str, dict[str, Any]] | None: ...

    def _check(
        self,
        obj: ObjectDef,
        values: Mapping[str, Any],
        existing: Mapping[str, Any] | None,
        system: bool,
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        creating = existing is None
        meta = self._meta(obj.name)
        if not system:
            if creating and "Id" in values:
                return [
                    dml(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        "cannot specify Id in an insert call",
                        ["Id"],
                    )
                ]
            refused = meta.not_createable if creating else meta.not_updateable
            secured = self.secured_fields.get(obj.name, ())
            locked = [
                name
                for name in values
                if name in refused or (name in secured and not self.field_access(obj.name, name)[1])
            ]
            if locked:
                return [
                    dml(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {', '.join(locked)}. Please check the "
                        "security settings of this field and verify that it is read/write for "
                        "your profile or permission set.",
                        locked,
                    )
                ]
        rules = meta.rules
        for name, value in values.items():
            length, email, picklist, reference = rules[name]
            if value is None or name == "Id":
                continue
            if length and len(value) > length:
                f = obj.fields[name]
                errors.append(
                    dml(
                        "STRING_TOO_LONG",
                        f"{f.label}: data value too large: {value} (max length={f.length})",
                        [name],
                    )
                )
            elif email and not email_ok(value):
                errors.append(
                    dml(
                        "INVALID_EMAIL_ADDRESS",
                        f"{obj.fields[name].label}: invalid email address: {value}",
                        [name],
                    )
                )
            elif picklist is not None and not system and value not in picklist:
                errors.append(
                    dml(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{obj.fields[name].label}: bad value for restricted picklist field: "
                        f"{value}",
                        [name],
                    )
                )
            elif reference:
                problem = self._check_reference(obj.fields[name], value)
                if problem is None and name == "OwnerId":
                    problem = self._check_owner(obj, value)
                if problem is not None:
                    errors.append(problem)
        merged = {**existing, **values} if existing is not None else values
        missing = [
            f.name
            for f in meta.required
            if merged.get(f.name) in (None, "") and (creating or f.name in values)
        ]
        if (
            obj.name == "CampaignMember"
            and creating
            and not (merged.get("LeadId") or merged.get("ContactId"))
        ):
            missing.append("LeadId, ContactId")
        if missing:
            errors.append(
                dml(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            )
        if errors:
            return errors
        if obj.name in PERMISSION_OBJECTS:
            errors = self._check_permission_row(obj, merged, existing)
            if errors:
                return errors
        return self._check_unique(obj, merged, existing)

    def _check_permission_row(
        self, obj: ObjectDef, merged: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        """A FieldPermissions row names a field of its object; one assignment of a permission
        set per user and one FieldPermissions row per permission set and field."""
        own_id = existing["Id"] if existing else None
        if obj.name == "FieldPermissions":
            sobject, field_name = str(merged.get("SobjectType")), str(merged.get("Field"))
            target = self.objects.get(sobject)
            if target is None:
                message = f"SObject Type Name: bad value for restricted picklist field: {sobject}"
                return [dml("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message, ["SobjectType"])]
            prefix, _, name = field_name.partition(".")
            if prefix.lower() != sobject.lower() or target.field_ci(name) is None:
                message = f"Field Name: bad value for restricted picklist field: {field_name}"
                return [dml("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message, ["Field"])]
            same = ("ParentId", "Field")
        elif obj.name == "PermissionSetAssignment":
            same = ("AssigneeId", "PermissionSetId")
        else:
            return []

        def key_of(row: Mapping[str, Any]) -> tuple[str, ...]:
            values = (str(row.get(n) or "") for n in same)
            return tuple(normalize_id(v) or v.lower() for v in values)

        key = key_of(merged)
        for row in self.records[obj.name].values():
            if row["Id"] != own_id and not row.get("IsDeleted") and key_of(row) == key:
                message = (
                    f"duplicate value found: {', '.join(same)} duplicates value on "
                    f"record with id: {row['Id']}"
                )
                return [dml("DUPLICATE_VALUE", message)]
        return []

    def _check_reference(self, f: FieldDef, value: str) -> dict[str, Any] | None:
        normalized = normalize_id(value)
        if normalized is None:
            return dml("MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
        target = object_for_prefix(normalized)
        if target not in f.reference_to:
            return dml(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                [f.name],
            )
        if self.lookup(normalized) is None:
            return dml("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        return None

    def _check_owner(self, obj: ObjectDef, value: str) -> dict[str, Any] | None:
        """An owner must be an active User, or a queue that supports the object (assumed
        codes and messages; docs/vendor-behaviour.md)."""
        found = self.lookup(normalize_id(value) or value)
        if found is None:
            return None
        sobject, row = found
        if sobject == "User" and not row.get("IsActive"):
            return dml("INACTIVE_OWNER_OR_USER", "operation performed with inactive user "
                        f"[{row['Id']}] as owner of {obj.label.lower()}", [])  # fmt: skip
        if sobject == "Group":
            supported = any(
                q.get("QueueId") == row["Id"] and q.get("SobjectType") == obj.name
                for q in self.records["QueueSobject"].values()
                if not q.get("IsDeleted")
            )
            if row.get("Type") != "Queue" or not supported:
                return dml("FIELD_INTEGRITY_EXCEPTION", "Owner ID: id value of incorrect type: "
                            f"{value}", ["OwnerId"])  # fmt: skip
        return None

    def _check_unique(
        self, obj: ObjectDef, merged: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        own_id = existing["Id"] if existing else None
        for f in self._meta(obj.name).unique:
            value = merged.get(f.name)
            if value is None:
                continue
            for holder in self._indexes[(obj.name, f.name)].get(index_key(f, value), ()):
                if holder != own_id:
                    return [
                        dml(
                            "DUPLICATE_VALUE",
                            f"duplicate value found: {f.name} duplicates value on record with "
                            f"id: {holder}",
                        )
                    ]
        if obj.name == "CampaignMember" and existing is None:
            for person_field in ("LeadId", "ContactId"):
                person = merged.get(person_field)
                if person is None:
                    continue
                for member_id in self._indexes[("CampaignMember", person_field)].get(person, ()):
                    member = self.records["CampaignMember"][member_id]
                    if member.get("CampaignId") == merged.get("CampaignId"):
                        return [dml("DUPLICATE_VALUE", "Already a campaign member.")]
        return []
