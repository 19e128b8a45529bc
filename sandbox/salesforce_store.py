"""The Salesforce emulator's in-memory org: records, indexes, validation, clock and API allowance.

The store owns every write rule the real org enforces (unknown and read-only fields, lengths,
restricted picklists, required fields, references, unique external ids, converted Leads being
read-only) and reports violations in Salesforce's own error vocabulary. HTTP lives in
``salesforce.py``; this module has none.

Rows are plain dicts of wire values (see ``salesforce_soql``) that are replaced, never mutated, on
write, so query cursors keep a consistent snapshot. A journal of replaced rows makes allOrNone
rollback cheap: savepoint, write, and on failure restore the journal tail.

The org's parts, by job: ``salesforce_values`` (errors, wire values), ``salesforce_clock``,
``salesforce_meta`` (per-object write rules from the schema), ``salesforce_access`` (field-level
security), ``salesforce_rules`` (the checks of a save) and ``salesforce_world`` (loading the
world). This module holds the org's state and its records: ids, indexes, transactions, writes,
field history, owners and assignment rules, queries.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox import credentials
from sandbox.salesforce_access import FieldAccess
from sandbox.salesforce_clock import StoreClock
from sandbox.salesforce_meta import ObjectMeta, build_meta, index_key
from sandbox.salesforce_rules import PERMISSION_OBJECTS, WriteRules
from sandbox.salesforce_schema import (
    CLOSED_TASK_STATUSES,
    HISTORY_OBJECTS,
    HISTORY_TRACKED,
    OBJECTS,
    STAGE_OUTCOMES,
    ObjectDef,
    custom_field,
)
from sandbox.salesforce_soql import (
    CompiledQuery,
    compile_query,
    format_datetime,
    id_with_checksum,
    normalize_id,
    parse,
)
from sandbox.salesforce_values import (
    TEXTUAL_TYPES,
    ApiError,
    DmlError,
    FieldTypeError,
    coerce_value,
    dml,
)
from sandbox.salesforce_world import WorldLoading

__all__ = [
    "DEFAULT_DAILY_LIMIT",
    "ApiError",
    "DmlError",
    "FieldTypeError",
    "SalesforceStore",
    "StoreClock",
]

DEFAULT_DAILY_LIMIT = 100_000
# Ids of CustomField (Tooling API) records: the 00N key prefix of custom field definitions.
CUSTOM_FIELD_PREFIX = "00N"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Field type -> the DataType a field-history row reports for it.
_HISTORY_TYPES = {
    "picklist": "DynamicEnum",
    "reference": "EntityId",
    "currency": "Currency",
    "date": "Date",
    "datetime": "DateTime",
}


@dataclass
class _Cursor:
    compiled: CompiledQuery
    rows: list[Mapping[str, Any]]
    batch_size: int
    endpoint: str


@dataclass
class SalesforceStore(FieldAccess, WriteRules, WorldLoading):
    """One emulated org: records by object, indexes, tokens, cursors, bulk jobs and API usage."""

    daily_limit: int = DEFAULT_DAILY_LIMIT
    api_used: int = 0
    # Bulk jobs report InProgress for this many status polls before JobComplete.
    bulk_polls_before_complete: int = 1
    clock: StoreClock = field(default_factory=StoreClock)
    lock: threading.RLock = field(default_factory=threading.RLock)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # World id -> Salesforce id; converted leads also under "<person id>#lead".
    world_ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    bulk_jobs: dict[str, Any] = field(default_factory=dict)
    user_id: str = ""
    # Record id -> sObject name, for every row in ``records`` (a plain string, not a tuple with
    # the row: nothing for the cyclic garbage collector to track per record).
    _by_id: dict[str, str] = field(default_factory=dict)
    _indexes: dict[tuple[str, str], dict[Any, set[str]]] = field(default_factory=dict)
    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _seq: int = 0
    # Record writes (creates, updates, deletes) so far: a test can tell that a call wrote.
    writes: int = 0
    _journal: list[tuple[str, str, dict[str, Any] | None]] | None = None
    _tx_depth: int = 0
    _stamp_cache: tuple[datetime | None, str] = (None, "")
    # sObject -> {tracked field: the name history rows give it}; a test turns tracking off by
    # removing entries (Setup > Object Manager > <object> > Set History Tracking).
    history_tracked: dict[str, dict[str, str]] = field(default_factory=dict)
    # Setup > OAuth and OpenID Connect Settings > Allow OAuth Username-Password Flows. Orgs
    # created in Summer '23 or later start with it off; the demo org allows the flow.
    password_flow_allowed: bool = True
    # PEM certificates (or public keys) uploaded to the connected app under "Use digital
    # signatures": a JWT bearer assertion must be signed by the key of one of them.
    jwt_certificates: list[str] = field(default_factory=list)
    # Experience Cloud site URLs, valid JWT audiences besides login/test.salesforce.com.
    experience_sites: set[str] = field(default_factory=set)
    # Record ids another transaction holds locked: a collection save touching one of them (its
    # Id or a lookup to it, like a Task's WhoId) fails with UNABLE_TO_LOCK_ROW until released.
    held_locks: set[str] = field(default_factory=set)
    # Field-level security of the fields an admin added through the Tooling API: sObject ->
    # names of its fields no profile grants (the stock fields are granted to the integration
    # user's profile). The user reads or edits one only through a FieldPermissions row of a
    # PermissionSet assigned to him; until then describe, SOQL and writes do not know it.
    secured_fields: dict[str, set[str]] = field(default_factory=dict)
    # AssignmentRule Id -> the User or queue its (one, catch-all) rule entry assigns to.
    assignment_rules: dict[str, str] = field(default_factory=dict)
    # (sobject, field) lower-cased -> (read, edit) granted to the user; None: to be read again.
    _grants: dict[tuple[str, str], tuple[bool, bool]] | None = None
    # sObject -> (the object as the user sees it, its textual field names), while grants hold.
    _views: dict[str, tuple[ObjectDef, frozenset[str]]] = field(default_factory=dict)
    # This org's schema: the standard OBJECTS plus the custom fields an admin added.
    objects: dict[str, ObjectDef] = field(default_factory=dict)
    _metas: dict[str, ObjectMeta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    # ---------------------------------------------------------------- lifecycle

    def reset(self) -> None:
        """Empty the org (keeping the integration user), tokens, cursors, jobs and API usage;
        the clock follows wall time again (a test that froze it ahead leaves no trace)."""
        with self.lock:
            self.clock = StoreClock()
            self._stamp_cache = (None, "")
            self.daily_limit = DEFAULT_DAILY_LIMIT
            self.bulk_polls_before_complete = 1
            self.objects = dict(OBJECTS)
            self._metas = {}
            self.records = {name: {} for name in OBJECTS}
            self.history_tracked = {k: dict(v) for k, v in HISTORY_TRACKED.items()}
            self._by_id = {}
            self._indexes = {
                (o.name, f.name): {}
                for o in OBJECTS.values()
                for f in o.fields.values()
                if f.indexed or f.unique or f.external_id
            }
            self._cursors = {}
            self.tokens = {}
            self.bulk_jobs = {}
            self.world_ids = {}
            self.api_used = 0
            self.password_flow_allowed = True
            self.jwt_certificates = []
            self.experience_sites = set()
            self.held_locks = set()
            self.secured_fields = {}
            self.assignment_rules = {}
            self._forget_grants()
            self._seq = 0
            self._journal = None
            self._tx_depth = 0
            self.user_id = self.insert(
                "User",
                {
                    "FirstName": "Closedloop",
                    "LastName": "Integration",
                    "Email": credentials.SALESFORCE_USERNAME,
                    "Username": credentials.SALESFORCE_USERNAME,
                },
            )

    def hold_locks(self, record_ids: Iterable[str]) -> None:
        """Let "another transaction" hold these records locked (see ``held_locks``)."""
        with self.lock:
            self.held_locks.update(normalize_id(i) or i for i in record_ids)

    def release_locks(self) -> None:
        """End every lock ``hold_locks`` took."""
        with self.lock:
            self.held_locks.clear()

    def locked(self, values: Mapping[str, Any]) -> bool:
        """Whether saving ``values`` needs a record another transaction holds locked: its own
        Id or a lookup (Salesforce locks the parent records a save refers to)."""
        if not self.held_locks:
            return False
        return any(
            isinstance(v, str) and len(v) in (15, 18) and normalize_id(v) in self.held_locks
            for v in values.values()
        )

    def new_id(self, sobject: str) -> str:
        """A fresh 18-character id with the object's key prefix."""
        return self._new_id(self.objects[sobject].key_prefix)

    def _new_id(self, prefix: str) -> str:
        self._seq += 1
        n = self._seq
        digits = ""
        while n:
            n, rem = divmod(n, 62)
            digits = _BASE62[rem] + digits
        return id_with_checksum(prefix + "8c0" + digits.rjust(9, "0"))

    # ---------------------------------------------------------------- schema

    def _meta(self, sobject: str) -> ObjectMeta:
        meta = self._metas.get(sobject)
        if meta is None:
            meta = self._metas[sobject] = build_meta(self.objects[sobject])
        return meta

    def reset_schema(self) -> None:
        """Drop every custom field an admin added (records keep no values of them)."""
        with self.lock:
            added = {
                (name, f) for name, obj in self.objects.items() for f in obj.fields
                if f not in OBJECTS[name].fields
            }  # fmt: skip
            self.objects = dict(OBJECTS)
            self._metas = {}
            self.secured_fields = {}
            self._forget_grants()
            for name, f in added:
                self._indexes.pop((name, f), None)
                for record_id, row in self.records[name].items():
                    if f in row:
                        self.records[name][record_id] = {k: v for k, v in row.items() if k != f}

    def add_custom_field(self, full_name: Any, metadata: Any) -> str:
        """Create a custom field as the Tooling API does (``salesforce_schema.custom_field``)
        and return its CustomField id (key prefix 00N); CustomFieldError when refused. Nobody
        may read or edit it yet (``secured_fields``): see ``grant_field_access``."""
        with self.lock:
            targets, created = custom_field(self.objects, full_name, metadata)
            for sobject in targets:
                self.objects[sobject] = self.objects[sobject].with_field(created)
                self._metas.pop(sobject, None)
                self.secured_fields.setdefault(sobject, set()).add(created.name)
                if created.indexed or created.unique or created.external_id:
                    self._indexes[(sobject, created.name)] = {}
            self._forget_grants()
            return self._new_id(CUSTOM_FIELD_PREFIX)

    # ---------------------------------------------------------------- raw row access

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The row (deleted ones included) of ``record_id`` in ``sobject``, or None."""
        return self.records[sobject].get(record_id)

    def lookup(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """(sObject, row) of a live record by id; the resolver for SOQL relationship paths."""
        sobject = self._by_id.get(record_id)
        if sobject is None:
            return None
        row = self.records[sobject][record_id]
        return None if row.get("IsDeleted") else (sobject, row)

    def find(self, sobject: str, field_name: str, value: Any) -> list[str]:
        """Ids of live ``sobject`` records whose indexed ``field_name`` equals ``value``."""
        f = self.objects[sobject].fields[field_name]
        return sorted(self._indexes[(sobject, field_name)].get(index_key(f, value), ()))

    def _put(self, sobject: str, row: dict[str, Any]) -> None:
        record_id = row["Id"]
        self.writes += 1
        if sobject in PERMISSION_OBJECTS:
            self._forget_grants()
        old = self.records[sobject].get(record_id)
        if self._journal is not None:
            self._journal.append((sobject, record_id, old))
        self._unindex(sobject, old)
        self.records[sobject][record_id] = row
        self._by_id[record_id] = sobject
        self._index(sobject, row)

    def _index(self, sobject: str, row: dict[str, Any] | None) -> None:
        if row is None or row.get("IsDeleted"):
            return
        for name, fold in self._meta(sobject).index_keys:
            value = row.get(name)
            if value is not None:
                key = value.casefold() if fold and isinstance(value, str) else value
                ids = self._indexes[(sobject, name)].get(key)
                if ids is None:
                    self._indexes[(sobject, name)][key] = {row["Id"]}
                else:
                    ids.add(row["Id"])

    def _unindex(self, sobject: str, row: dict[str, Any] | None) -> None:
        if row is None or row.get("IsDeleted"):
            return
        for name, fold in self._meta(sobject).index_keys:
            value = row.get(name)
            if value is not None:
                key = value.casefold() if fold and isinstance(value, str) else value
                index = self._indexes[(sobject, name)]
                ids = index.get(key)
                if ids is not None:
                    ids.discard(row["Id"])
                    if not ids:
                        del index[key]

    # ---------------------------------------------------------------- transactions

    def savepoint(self) -> int:
        """Start (or nest) a transaction; returns the journal position to roll back to."""
        if self._journal is None:
            self._journal = []
        self._tx_depth += 1
        return len(self._journal)

    def rollback_to(self, point: int) -> None:
        """Undo every write since ``point`` and close that transaction level."""
        assert self._journal is not None
        self._forget_grants()
        while len(self._journal) > point:
            sobject, record_id, old = self._journal.pop()
            current = self.records[sobject].get(record_id)
            self._unindex(sobject, current)
            if old is None:
                self.records[sobject].pop(record_id, None)
                self._by_id.pop(record_id, None)
            else:
                self.records[sobject][record_id] = old
                self._by_id[record_id] = sobject
                self._index(sobject, old)
        self.release()

    def release(self) -> None:
        """Close one transaction level, keeping its writes."""
        self._tx_depth -= 1
        if self._tx_depth <= 0:
            self._tx_depth = 0
            self._journal = None

    # ---------------------------------------------------------------- validation and writes

    def deserialize(
        self, obj: ObjectDef, body: Mapping[str, Any], *, from_csv: bool = False
    ) -> dict[str, Any]:
        """Field values keyed by canonical API name; unknown fields are ApiError INVALID_FIELD."""
        values: dict[str, Any] = {}
        fields = obj.fields
        view = self._views.get(obj.name)
        textual = view[1] if view is not None and view[0] is obj else self._meta(obj.name).textual
        for key, raw in body.items():
            if type(raw) is str and key in textual:
                values[key] = raw
                continue
            if key == "attributes":
                continue
            f = fields.get(key) or obj.field_ci(key)
            if f is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"
                )
            if type(raw) is str and f.type in TEXTUAL_TYPES:
                values[f.name] = raw
            else:
                values[f.name] = coerce_value(f, raw, from_csv=from_csv)
        return values

    # ------------------------------------------------------------- owners and assignment rules

    def add_user(self, first: str, last: str, email: str, *, active: bool = True) -> str:
        """A User of the org (a sales rep)."""
        return self.insert(
            "User",
            {"FirstName": first, "LastName": last, "Email": email, "Username": email,
             "IsActive": active},
        )  # fmt: skip

    def add_queue(self, name: str, objects: Sequence[str] = ("Lead",)) -> str:
        """A queue (Setup > Queues) whose Supported Objects are ``objects``."""
        with self.lock:
            queue_id = self.insert(
                "Group", {"Name": name, "DeveloperName": name.replace(" ", "_"), "Type": "Queue"}
            )
            for sobject in objects:
                self.insert("QueueSobject", {"QueueId": queue_id, "SobjectType": sobject})
            return queue_id

    def add_assignment_rule(
        self, name: str, assignee: str, *, active: bool = True, sobject: str = "Lead"
    ) -> str:
        """An assignment rule with one entry that sends every record to ``assignee`` (a User
        or queue). Activating one deactivates the object's other rules, as Setup does."""
        with self.lock:
            if active:
                for rule in self.records["AssignmentRule"].values():
                    if rule.get("SobjectType") == sobject and rule.get("Active"):
                        rule["Active"] = False
            rule_id = self.insert(
                "AssignmentRule", {"Name": name, "SobjectType": sobject, "Active": active}
            )
            self.assignment_rules[rule_id] = normalize_id(assignee) or assignee
            return rule_id

    def assign(self, sobject: str, record_id: str, header: str | None) -> None:
        """Run the assignment rule the ``Sforce-Auto-Assign`` header picks on a Lead just
        saved: none or TRUE: the object's active rule; FALSE: none; an AssignmentRule Id:
        that rule. https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api/headers_autoassign.htm
        """
        if sobject != "Lead":
            return
        value = (header or "TRUE").strip()
        if value.upper() == "FALSE":
            return
        rule_id: str | None
        if value.upper() == "TRUE":
            rule_id = next(
                (r["Id"] for r in self.records["AssignmentRule"].values()
                 if r.get("SobjectType") == sobject and r.get("Active")),
                None,
            )  # fmt: skip
        else:
            rule_id = normalize_id(value)
        assignee = self.assignment_rules.get(rule_id or "")
        row = self.records[sobject].get(record_id)
        if assignee is None or row is None or row.get("OwnerId") == assignee:
            return
        self.update(sobject, record_id, {"OwnerId": assignee}, system=True)

    def _derive(self, obj: ObjectDef, row: dict[str, Any]) -> None:
        if obj.name in ("Lead", "Contact", "User"):
            row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
        elif obj.name == "Opportunity":
            row["IsClosed"], row["IsWon"] = STAGE_OUTCOMES.get(
                row.get("StageName") or "", (False, False)
            )
        elif obj.name == "Task":
            row["IsClosed"] = row.get("Status") in CLOSED_TASK_STATUSES
        elif obj.name == "CampaignMember":
            row["HasResponded"] = row.get("Status") not in (None, "Sent")

    def _stamp(self) -> str:
        """The org clock's now in wire format (cached while the clock stands still)."""
        moment = self.clock.now()
        millis = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if self._stamp_cache[0] != millis:
            self._stamp_cache = (millis, format_datetime(millis))
        return self._stamp_cache[1]

    def _normalize_refs(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        for name in self._meta(obj.name).id_fields:
            value = values.get(name)
            if value is not None:
                values[name] = normalize_id(value) or value

    def create(self, sobject: str, values: Mapping[str, Any], *, system: bool = False) -> str:
        """Insert a record from deserialized values; DmlError on any rule it breaks."""
        obj = self.objects[sobject]
        if not obj.writable and not system:
            raise DmlError([dml("INVALID_TYPE", f"entity type cannot be inserted: {obj.label}")])
        values = dict(values)
        errors = self._check(obj, values, None, system)
        if errors:
            raise DmlError(errors)
        self._normalize_refs(obj, values)
        meta = self._meta(sobject)
        row: dict[str, Any] = dict(meta.template)
        for name in meta.owner_fields:
            row[name] = self.user_id or None
        row.update(values)
        stamp = self._stamp()
        row["Id"] = values.get("Id") if system and values.get("Id") else self.new_id(sobject)
        row["IsDeleted"] = False
        row.setdefault("CreatedDate", stamp)
        if not system or row["CreatedDate"] is None:
            row["CreatedDate"] = stamp
        if not system or row.get("LastModifiedDate") is None:
            row["LastModifiedDate"] = stamp
        if not system or row.get("SystemModstamp") is None:
            row["SystemModstamp"] = stamp
        self._derive(obj, row)
        self._put(sobject, row)
        return str(row["Id"])

    def update(
        self, sobject: str, record_id: str, values: Mapping[str, Any], *, system: bool = False
    ) -> None:
        """Update a live record; DmlError when it is missing, deleted, or a rule is broken."""
        obj = self.objects[sobject]
        if not obj.writable:
            raise DmlError([dml("INVALID_TYPE", f"entity type cannot be updated: {obj.label}")])
        existing = self.records[sobject].get(record_id)
        if existing is None:
            raise DmlError([dml("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")])
        if existing.get("IsDeleted"):
            raise DmlError([dml("ENTITY_IS_DELETED", "entity is deleted")])
        if sobject == "Lead" and existing.get("IsConverted") and not system:
            # A converted Lead is read-only: its person is the Contact it became.
            # https://help.salesforce.com/s/articleView?id=000384333&type=1
            raise DmlError([dml("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")])
        values = {k: v for k, v in values.items() if k != "Id"}
        errors = self._check(obj, values, existing, system)
        if errors:
            raise DmlError(errors)
        self._normalize_refs(obj, values)
        row = {**existing, **values}
        stamp = self._stamp()
        row["LastModifiedDate"] = stamp
        row["SystemModstamp"] = stamp
        self._derive(obj, row)
        self._put(sobject, row)
        self._track(sobject, existing, row, stamp)

    def _track(
        self, sobject: str, old: Mapping[str, Any], new: Mapping[str, Any], stamp: str
    ) -> None:
        """Write the field-history rows of an update, as the org does for tracked fields."""
        tracked = self.history_tracked.get(sobject)
        if not tracked:
            return
        for name, label in tracked.items():
            before, after = old.get(name), new.get(name)
            if before == after:
                continue
            if name == "OwnerId":  # an owner change writes two rows: user names, then ids
                self.record_history(
                    sobject, str(new["Id"]), label, self._user_name(before),
                    self._user_name(after), created=stamp, data_type="Text",
                )  # fmt: skip
            self.record_history(sobject, str(new["Id"]), label, before, after, created=stamp)

    def _user_name(self, user_id: Any) -> str | None:
        row = self.records["User"].get(str(user_id)) if user_id else None
        return None if row is None else row.get("Name")

    def record_history(
        self,
        sobject: str,
        record_id: str,
        field_label: str,
        old: Any,
        new: Any,
        *,
        created: str,
        by: str | None = None,
        data_type: str | None = None,
    ) -> str:
        """Add one field-history row of ``record_id`` (a change at wire time ``created``)."""
        history, parent_field = HISTORY_OBJECTS[sobject]
        if data_type is None:
            f = self.objects[sobject].fields.get(
                "OwnerId" if field_label == "Owner" else field_label
            )
            kind = f.type if f is not None else "string"
            data_type = _HISTORY_TYPES.get(kind, "Text")
        row = {
            "Id": self.new_id(history),
            parent_field: record_id,
            "Field": field_label,
            "DataType": data_type,
            "OldValue": old,
            "NewValue": new,
            "CreatedById": by or self.user_id,
            "CreatedDate": created,
            "IsDeleted": False,
        }
        self._put(history, row)
        return str(row["Id"])

    def upsert(
        self, sobject: str, ext_field: str, ext_value: Any, values: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """Create or update by external id; returns (id, created). DmlError for rule breaks."""
        obj = self.objects[sobject]
        f = obj.fields[ext_field]
        if ext_value is None or ext_value == "":
            raise DmlError([dml("MISSING_ARGUMENT", f"{ext_field} not specified")])
        if ext_field == "Id":
            record_id = normalize_id(str(ext_value))
            if record_id is None or self.records[sobject].get(record_id) is None:
                raise DmlError(
                    [
                        dml(
                            "MALFORMED_ID",
                            f"{f.label}: id value of incorrect type: {ext_value}",
                            ["Id"],
                        )
                    ]
                )
            self.update(sobject, record_id, values)
            return record_id, False
        matches = self.find(sobject, ext_field, ext_value)
        if len(matches) > 1:
            raise DmlError(
                [
                    dml(
                        "DUPLICATE_EXTERNAL_ID",
                        f"{ext_field}: more than one record found for external id field: {matches}",
                        [ext_field],
                    )
                ]
            )
        merged = {**values, ext_field: ext_value}
        if matches:
            self.update(sobject, matches[0], merged)
            return matches[0], False
        return self.create(sobject, merged), True

    def delete(self, record_id: str) -> str:
        """Move a record to the recycle bin (IsDeleted); returns its sObject name."""
        sobject = self._by_id.get(record_id)
        if sobject is None:
            raise DmlError([dml("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")])
        if not self.objects[sobject].writable:
            label = self.objects[sobject].label
            raise DmlError([dml("INVALID_TYPE", f"entity type cannot be deleted: {label}")])
        row = self.records[sobject][record_id]
        if row.get("IsDeleted"):
            raise DmlError([dml("ENTITY_IS_DELETED", "entity is deleted")])
        stamp = self._stamp()
        self._put(
            sobject, {**row, "IsDeleted": True, "LastModifiedDate": stamp, "SystemModstamp": stamp}
        )
        return sobject

    # ---------------------------------------------------------------- helpers for tests and seeds

    def insert(self, sobject: str, values: Mapping[str, Any]) -> str:
        """Insert as the system (audit and read-only fields settable): for seeding and tests."""
        with self.lock:
            obj = self.objects[sobject]
            return self.create(sobject, self.deserialize(obj, values), system=True)

    def modify(self, sobject: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Update as the system (read-only fields settable): a rep's change in the CRM UI."""
        with self.lock:
            obj = self.objects[sobject]
            self.update(sobject, record_id, self.deserialize(obj, values), system=True)

    def convert_lead(self, lead_id: str, account_id: str | None = None) -> str:
        """Convert a lead the way the UI does: a Contact (and Account if none given); returns it."""
        with self.lock:
            lead = self.records["Lead"][lead_id]
            if account_id is None:
                account_id = self.insert(
                    "Account", {"Name": lead.get("Company") or lead["LastName"]}
                )
            contact_id = self.insert(
                "Contact",
                {
                    "FirstName": lead.get("FirstName"),
                    "LastName": lead["LastName"],
                    "Email": lead.get("Email"),
                    "Title": lead.get("Title"),
                    "AccountId": account_id,
                    "OwnerId": lead.get("OwnerId"),
                    "LeadSource": lead.get("LeadSource"),
                },
            )
            self.modify(
                "Lead",
                lead_id,
                {
                    "IsConverted": True,
                    "Status": "Closed - Converted",
                    "ConvertedContactId": contact_id,
                    "ConvertedAccountId": account_id,
                    "ConvertedDate": self.clock.now().date().isoformat(),
                },
            )
            return contact_id

    # ---------------------------------------------------------------- queries

    def compile(self, text: str) -> CompiledQuery:
        """Parse and bind SOQL against this org as the integration user sees it (TODAY is the
        org clock's date)."""
        return compile_query(parse(text), self.lookup, self.clock.now().date(), self.user_objects())

    def select(self, compiled: CompiledQuery, *, include_deleted: bool) -> list[Mapping[str, Any]]:
        """Matching rows in result order (ORDER BY, OFFSET, LIMIT applied)."""
        table = self.records[compiled.sobject.name]
        candidates: Iterable[Mapping[str, Any]]
        hint = compiled.index_hint
        if (
            hint is not None
            and not include_deleted
            and (compiled.sobject.name, hint[0]) in self._indexes
        ):
            index = self._indexes[(compiled.sobject.name, hint[0])]
            ids: set[str] = set()
            for key in hint[1]:
                ids.update(index.get(key, ()))
            candidates = [table[i] for i in sorted(ids)]  # ids grow with creation order
        elif hint is not None and hint[0] == "Id":
            candidates = [table[i] for i in hint[1] if i in table]
        else:
            candidates = table.values()
        predicate = compiled.predicate
        rows = [
            row
            for row in candidates
            if (include_deleted or not row.get("IsDeleted")) and predicate(row)
        ]
        return compiled.sort(rows)

    def open_cursor(
        self, compiled: CompiledQuery, rows: list[Mapping[str, Any]], batch_size: int, endpoint: str
    ) -> str:
        """Remember a result set for nextRecordsUrl paging; returns the 01g... locator id."""
        cursor_id = normalize_id("01g8c0" + secrets.token_hex(5)[:9].upper())
        assert cursor_id is not None
        self._cursors[cursor_id] = _Cursor(compiled, rows, batch_size, endpoint)
        return cursor_id

    def cursor(self, cursor_id: str) -> _Cursor | None:
        """An open query cursor, or None."""
        return self._cursors.get(cursor_id)

    # ---------------------------------------------------------------- state for tests

    def dump(self) -> dict[str, Any]:
        """JSON-able state: API usage, live record counts and every row per object."""
        with self.lock:
            return {
                "api_usage": {"used": self.api_used, "max": self.daily_limit},
                "counts": {
                    name: sum(1 for r in rows.values() if not r.get("IsDeleted"))
                    for name, rows in self.records.items()
                },
                "records": {
                    name: [dict(r) for r in rows.values()] for name, rows in self.records.items()
                },
                "world_ids": dict(self.world_ids),
            }
