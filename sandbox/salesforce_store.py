"""The Salesforce emulator's in-memory org: records, indexes, validation, clock and API allowance.

The store owns every write rule the real org enforces (unknown and read-only fields, lengths,
restricted picklists, required fields, references, unique external ids, converted Leads being
read-only) and reports violations in Salesforce's own error vocabulary. HTTP lives in
``salesforce.py``; this module has none.

Rows are plain dicts of wire values (see ``salesforce_soql``) that are replaced, never mutated, on
write, so query cursors keep a consistent snapshot. A journal of replaced rows makes allOrNone
rollback cheap: savepoint, write, and on failure restore the journal tail.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox import credentials
from sandbox.salesforce_schema import (
    CLOSED_TASK_STATUSES,
    HISTORY_OBJECTS,
    HISTORY_TRACKED,
    OBJECTS,
    STAGE_OUTCOMES,
    STRING_TYPES,
    FieldDef,
    ObjectDef,
    custom_field,
    object_for_prefix,
)
from sandbox.salesforce_soql import (
    CompiledQuery,
    compile_query,
    format_datetime,
    id_with_checksum,
    normalize_id,
    parse,
    parse_datetime,
)
from sandbox.world import World

__all__ = [
    "DEFAULT_DAILY_LIMIT",
    "ApiError",
    "DmlError",
    "SalesforceStore",
    "StoreClock",
]

DEFAULT_DAILY_LIMIT = 100_000
# Records that decide field-level security: writing one makes the grants be read again.
_PERMISSION_OBJECTS = frozenset({"PermissionSet", "PermissionSetAssignment", "FieldPermissions"})
# Ids of CustomField (Tooling API) records: the 00N key prefix of custom field definitions.
CUSTOM_FIELD_PREFIX = "00N"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# A date on the wire: yyyy-MM-dd and nothing else.
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# Field types whose wire value is the JSON string itself.
_TEXTUAL_TYPES = STRING_TYPES | {"id", "reference"}
# Field type -> the DataType a field-history row reports for it.
_HISTORY_TYPES = {
    "picklist": "DynamicEnum",
    "reference": "EntityId",
    "currency": "Currency",
    "date": "Date",
    "datetime": "DateTime",
}
# Lead status -> the field the demo org's reps fill in with why they set it, in the same save
# (the org keeps why a lead was disqualified apart from why it was recycled).
_REASON_FIELDS = {"Disqualified": "Disqualified_Reason__c", "Recycled": "Recycle_Reason__c"}
_RESPONDED_KINDS = frozenset(
    {
        "email_click",
        "form_fill",
        "webinar_registered",
        "webinar_attended",
        "event_attended",
        "content_download",
        "ad_click",
    }
)


class ApiError(Exception):
    """A whole-request error: HTTP ``status`` and the list body Salesforce answers with."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors: list[dict[str, Any]] = [{"message": message, "errorCode": code}]
        if fields is not None:
            self.errors[0]["fields"] = fields

    @property
    def code(self) -> str:
        """The first error's errorCode."""
        return str(self.errors[0]["errorCode"])


class DmlError(Exception):
    """A record-level failure: the ``errors`` of a save result (statusCode, message, fields)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors

    def as_api_error(self) -> ApiError:
        """The same failure as a single-record endpoint reports it (HTTP 400 list)."""
        first = self.errors[0]
        err = ApiError(400, first["statusCode"], first["message"], list(first.get("fields", [])))
        err.errors = [
            {"message": e["message"], "errorCode": e["statusCode"], "fields": e.get("fields", [])}
            for e in self.errors
        ]
        return err


def _dml(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


class StoreClock:
    """The org's clock: wall time (shifted by ``rebase``) unless frozen by a test; it never goes
    backwards except on ``rebase``."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._last: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The current org time (UTC), never earlier than any time returned before."""
        current = self._frozen or datetime.now(UTC) + self._offset
        if self._last is not None and current < self._last:
            current = self._last
        self._last = current
        return current

    def set(self, moment: datetime) -> None:
        """Freeze the clock at ``moment``; moving it backwards is refused."""
        moment = moment.astimezone(UTC)
        if self._last is not None and moment < self._last:
            raise ValueError("the sandbox clock only moves forward")
        self._frozen = moment
        self._last = moment

    def advance(self, delta: timedelta) -> datetime:
        """Freeze the clock ``delta`` after the current org time; returns the new time."""
        target = self.now() + delta
        self.set(target)
        return target

    def release(self) -> None:
        """Run on again (still never going backwards)."""
        self._frozen = None

    def rebase(self, moment: datetime) -> None:
        """Restart the clock at ``moment``, even in the past, running on from there (a world
        load: the org's present is the world's ``now``)."""
        moment = moment.astimezone(UTC)
        self._offset = moment - datetime.now(UTC)
        self._frozen = None
        self._last = moment


class FieldTypeError(Exception):
    """A value of the wrong JSON/CSV type for a field."""

    def __init__(self, f: FieldDef, value: Any, expected: str) -> None:
        super().__init__(f"{f.name}: {value!r} is not a {expected}")
        self.field = f
        self.value = value
        self.expected = expected

    def as_api_error(self) -> ApiError:
        """How the REST API reports it: the JSON body could not be deserialized."""
        token = (
            "VALUE_TRUE"
            if self.value is True
            else "VALUE_FALSE"
            if self.value is False
            else ("VALUE_STRING" if isinstance(self.value, str) else "VALUE_NUMBER")
        )
        return ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {self.expected} from {token} value {self.value} "
            "or request may be missing a required field",
        )

    def as_dml(self) -> dict[str, Any]:
        """How the Bulk API reports it for one row."""
        return _dml(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{self.field.label}: value not of required type: {self.value}",
            [self.field.name],
        )


def _email_ok(value: str) -> bool:
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain and " " not in value and not domain.startswith(".")


def coerce_value(f: FieldDef, value: Any, *, from_csv: bool = False) -> Any:
    """A JSON (or CSV text) value in the field's wire form; FieldTypeError if impossible."""
    if value is None:
        return None
    kind = f.type
    if kind in _TEXTUAL_TYPES:
        if type(value) is str:
            return value
        if isinstance(value, bool):
            raise FieldTypeError(f, value, "string")
        if isinstance(value, int | float):
            return str(value)
        if not isinstance(value, str):
            raise FieldTypeError(f, value, "string")
        return value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise FieldTypeError(f, value, "boolean")
    if kind in ("int", "double", "currency", "percent"):
        if isinstance(value, bool):
            raise FieldTypeError(f, value, "double")
        if isinstance(value, str) and (from_csv or value.strip()):
            try:
                number = float(value)
            except ValueError:
                raise FieldTypeError(f, value, "double") from None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise FieldTypeError(f, value, "double")
        if kind == "int":
            if number != int(number):
                raise FieldTypeError(f, value, "int")
            return int(number)
        return number
    if kind == "date":
        # REST takes a date as yyyy-MM-dd only: a datetime (even at midnight UTC) or an offset
        # is a JSON_PARSER_ERROR. https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_valid_date_formats.htm
        # Bulk API CSV rows stay lenient (a datetime is read as its UTC day).
        if isinstance(value, str):
            try:
                if _DAY.fullmatch(value):
                    return date.fromisoformat(value).isoformat()
                if from_csv:
                    return _date_from_datetime(value)
            except ValueError:
                pass
        raise FieldTypeError(f, value, "date")
    if kind == "datetime":
        if isinstance(value, str):
            moment = parse_datetime(value)
            if moment is not None:
                return format_datetime(moment)
        raise FieldTypeError(f, value, "datetime")
    raise FieldTypeError(f, value, kind)


def _date_from_datetime(text: str) -> str:
    moment = parse_datetime(text)
    if moment is None:
        raise ValueError(text)
    return moment.date().isoformat()


@dataclass(frozen=True)
class _ObjectMeta:
    """Per-object lists precomputed from the schema so batch writes never scan every field."""

    required: tuple[FieldDef, ...]
    unique: tuple[FieldDef, ...]
    template: dict[str, Any]
    owner_fields: tuple[str, ...]
    # Names of the fields a user may not set on create / on update (Id is checked apart).
    not_createable: frozenset[str]
    not_updateable: frozenset[str]
    # Names of the id and reference fields, normalized to 18 characters on write.
    id_fields: tuple[str, ...]
    # Per field: (max length of a text value or 0, is an e-mail, restricted picklist or None,
    # is a reference): the write checks of ``SalesforceStore._check`` without schema lookups.
    rules: dict[str, tuple[int, bool, tuple[str, ...] | None, bool]]
    # (field name, index key is casefolded) of every indexed field, for ``_index``/``_unindex``.
    index_keys: tuple[tuple[str, bool], ...]
    # Names of the fields whose JSON string is already the wire value (``deserialize``).
    textual: frozenset[str]


def _build_meta(obj: ObjectDef) -> _ObjectMeta:
    """The precomputed write rules of ``obj`` (rebuilt when a custom field is added)."""
    fields = list(obj.fields.values())
    template: dict[str, Any] = {}
    for f in fields:
        if f.type == "boolean":
            template[f.name] = f.default if isinstance(f.default, bool) else False
        elif f.default is not None and f.default != "$user":
            template[f.name] = f.default
        else:
            template[f.name] = None
    return _ObjectMeta(
        required=tuple(f for f in fields if f.required),
        unique=tuple(f for f in fields if f.unique),
        template=template,
        owner_fields=tuple(f.name for f in fields if f.default == "$user"),
        not_createable=frozenset(f.name for f in fields if not f.createable) - {"Id"},
        not_updateable=frozenset(f.name for f in fields if not f.updateable) - {"Id"},
        id_fields=tuple(f.name for f in fields if f.type in ("reference", "id")),
        index_keys=tuple(
            (f.name, f.type in STRING_TYPES)
            for f in fields
            if f.indexed or f.unique or f.external_id
        ),
        textual=frozenset(f.name for f in fields if f.type in _TEXTUAL_TYPES),
        rules={
            f.name: (
                f.length if f.type in STRING_TYPES else 0,
                f.type == "email",
                f.picklist if f.restricted else None,
                f.type == "reference",
            )
            for f in fields
        },
    )


def _index_key(f: FieldDef, value: Any) -> Any:
    return value.casefold() if f.type in STRING_TYPES and isinstance(value, str) else value


@dataclass
class _Cursor:
    compiled: CompiledQuery
    rows: list[Mapping[str, Any]]
    batch_size: int
    endpoint: str


@dataclass
class SalesforceStore:
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
    _metas: dict[str, _ObjectMeta] = field(default_factory=dict)

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

    def _meta(self, sobject: str) -> _ObjectMeta:
        meta = self._metas.get(sobject)
        if meta is None:
            meta = self._metas[sobject] = _build_meta(self.objects[sobject])
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
        return sorted(self._indexes[(sobject, field_name)].get(_index_key(f, value), ()))

    def _put(self, sobject: str, row: dict[str, Any]) -> None:
        record_id = row["Id"]
        self.writes += 1
        if sobject in _PERMISSION_OBJECTS:
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
            if type(raw) is str and f.type in _TEXTUAL_TYPES:
                values[f.name] = raw
            else:
                values[f.name] = coerce_value(f, raw, from_csv=from_csv)
        return values

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
                    _dml(
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
                    _dml(
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
                    _dml(
                        "STRING_TOO_LONG",
                        f"{f.label}: data value too large: {value} (max length={f.length})",
                        [name],
                    )
                )
            elif email and not _email_ok(value):
                errors.append(
                    _dml(
                        "INVALID_EMAIL_ADDRESS",
                        f"{obj.fields[name].label}: invalid email address: {value}",
                        [name],
                    )
                )
            elif picklist is not None and not system and value not in picklist:
                errors.append(
                    _dml(
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
                _dml(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            )
        if errors:
            return errors
        if obj.name in _PERMISSION_OBJECTS:
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
                return [_dml("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message, ["SobjectType"])]
            prefix, _, name = field_name.partition(".")
            if prefix.lower() != sobject.lower() or target.field_ci(name) is None:
                message = f"Field Name: bad value for restricted picklist field: {field_name}"
                return [_dml("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message, ["Field"])]
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
                return [_dml("DUPLICATE_VALUE", message)]
        return []

    def _check_reference(self, f: FieldDef, value: str) -> dict[str, Any] | None:
        normalized = normalize_id(value)
        if normalized is None:
            return _dml("MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
        target = object_for_prefix(normalized)
        if target not in f.reference_to:
            return _dml(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                [f.name],
            )
        if self.lookup(normalized) is None:
            return _dml("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        return None

    def _check_owner(self, obj: ObjectDef, value: str) -> dict[str, Any] | None:
        """An owner must be an active User, or a queue that supports the object (assumed
        codes and messages; docs/vendor-behaviour.md)."""
        found = self.lookup(normalize_id(value) or value)
        if found is None:
            return None
        sobject, row = found
        if sobject == "User" and not row.get("IsActive"):
            return _dml("INACTIVE_OWNER_OR_USER", "operation performed with inactive user "
                        f"[{row['Id']}] as owner of {obj.label.lower()}", [])  # fmt: skip
        if sobject == "Group":
            supported = any(
                q.get("QueueId") == row["Id"] and q.get("SobjectType") == obj.name
                for q in self.records["QueueSobject"].values()
                if not q.get("IsDeleted")
            )
            if row.get("Type") != "Queue" or not supported:
                return _dml("FIELD_INTEGRITY_EXCEPTION", "Owner ID: id value of incorrect type: "
                            f"{value}", ["OwnerId"])  # fmt: skip
        return None

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

    def _check_unique(
        self, obj: ObjectDef, merged: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        own_id = existing["Id"] if existing else None
        for f in self._meta(obj.name).unique:
            value = merged.get(f.name)
            if value is None:
                continue
            for holder in self._indexes[(obj.name, f.name)].get(_index_key(f, value), ()):
                if holder != own_id:
                    return [
                        _dml(
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
                        return [_dml("DUPLICATE_VALUE", "Already a campaign member.")]
        return []

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
            raise DmlError([_dml("INVALID_TYPE", f"entity type cannot be inserted: {obj.label}")])
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
            raise DmlError([_dml("INVALID_TYPE", f"entity type cannot be updated: {obj.label}")])
        existing = self.records[sobject].get(record_id)
        if existing is None:
            raise DmlError([_dml("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")])
        if existing.get("IsDeleted"):
            raise DmlError([_dml("ENTITY_IS_DELETED", "entity is deleted")])
        if sobject == "Lead" and existing.get("IsConverted") and not system:
            # A converted Lead is read-only: its person is the Contact it became.
            # https://help.salesforce.com/s/articleView?id=000384333&type=1
            raise DmlError(
                [_dml("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")]
            )
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
            raise DmlError([_dml("MISSING_ARGUMENT", f"{ext_field} not specified")])
        if ext_field == "Id":
            record_id = normalize_id(str(ext_value))
            if record_id is None or self.records[sobject].get(record_id) is None:
                raise DmlError(
                    [
                        _dml(
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
                    _dml(
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
            raise DmlError([_dml("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")])
        if not self.objects[sobject].writable:
            label = self.objects[sobject].label
            raise DmlError([_dml("INVALID_TYPE", f"entity type cannot be deleted: {label}")])
        row = self.records[sobject][record_id]
        if row.get("IsDeleted"):
            raise DmlError([_dml("ENTITY_IS_DELETED", "entity is deleted")])
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

    # ---------------------------------------------------------------- world

    def load_world(self, world: World) -> None:
        """Project the seed world into Users, Accounts, Leads/Contacts, Opportunities, ...; the
        org clock restarts at the world's ``now``."""
        with self.lock:
            self.clock.rebase(world.now)
            # The integration user was created with the store, on the wall clock: date it with
            # the world's users, so a pull up to the world's present reads it whatever the hour.
            integration = self.records["User"].get(str(self.user_id))
            if integration is not None:
                integration.update(_audit(world.now, world.now))
            ids = self.world_ids
            for owner_id, name, email in world.owners:
                first, _, last = name.partition(" ")
                ids[owner_id] = self.insert(
                    "User",
                    {
                        "FirstName": first,
                        "LastName": last or first,
                        "Email": email,
                        "Username": email,
                    },
                )
            for account in world.accounts:
                ids[account.id] = self.insert(
                    "Account",
                    {
                        "Name": account.name,
                        "Website": f"https://{account.domain}",
                        "Domain__c": account.domain,
                        "Industry": account.industry,
                        "NumberOfEmployees": account.employees,
                        **_audit(account.created_at, account.created_at),
                    },
                )
            for campaign in world.campaigns:
                ended = campaign.end_date < world.now
                ids[campaign.id] = self.insert(
                    "Campaign",
                    {
                        "Name": campaign.name[:80],
                        "Type": campaign.type,
                        "Channel__c": campaign.channel,
                        "Status": "Completed" if ended else "In Progress",
                        "IsActive": not ended,
                        "StartDate": campaign.start_date.date().isoformat(),
                        "EndDate": campaign.end_date.date().isoformat(),
                        "BudgetedCost": _money(campaign.budgeted_cost),
                        "ActualCost": _money(campaign.actual_cost),
                        **_audit(campaign.start_date, campaign.start_date),
                    },
                )
            reasons = _current_reasons(world)
            for person in world.people:
                self._load_person(person, ids, reasons.get(person.id, {}))
            for opp in world.opportunities:
                ids[opp.id] = self.insert(
                    "Opportunity",
                    {
                        "Name": opp.name[:120],
                        "AccountId": ids.get(opp.account_id),
                        "StageName": opp.stage,
                        "Amount": _money(opp.amount),
                        "CloseDate": opp.close_date.date().isoformat(),
                        "OwnerId": ids.get(opp.owner_id, self.user_id),
                        "CampaignId": ids.get(opp.campaign_id) if opp.campaign_id else None,
                        **_audit(opp.created_at, opp.created_at),
                    },
                )
                row = self.records["Opportunity"][ids[opp.id]]
                self._put("Opportunity", {**row, "IsClosed": opp.is_closed, "IsWon": opp.is_won})
                lead_id = ids.get(f"{opp.lead_person_id}#lead") if opp.lead_person_id else None
                if lead_id is not None:
                    self.modify("Lead", lead_id, {"ConvertedOpportunityId": ids[opp.id]})
            for role in world.contact_roles:
                contact_id = ids.get(role.person_id)
                if (
                    contact_id is None
                    or not contact_id.startswith("003")
                    or role.opportunity_id not in ids
                ):
                    continue
                ids[role.id] = self.insert(
                    "OpportunityContactRole",
                    {
                        "OpportunityId": ids[role.opportunity_id],
                        "ContactId": contact_id,
                        "Role": role.role,
                        "IsPrimary": role.is_primary,
                    },
                )
            self._load_members(world, ids)
            self._load_history(world, ids)

    def _load_person(self, person: Any, ids: dict[str, str], reasons: Mapping[str, str]) -> None:
        owner = ids.get(person.owner_id, self.user_id)
        common = {
            "FirstName": person.first_name,
            "LastName": person.last_name,
            "Email": person.email,
            "Title": (person.title or "")[:128] or None,
            "OwnerId": owner,
            "LeadSource": person.lead_source,
        }
        audit = _audit(person.created_at, person.updated_at)
        if person.crm_kind == "contact":
            contact_id = self.insert(
                "Contact", {**common, "AccountId": ids.get(person.account_id or ""), **audit}
            )
            ids[person.id] = contact_id
            if person.converted_at is not None:
                ids[f"{person.id}#lead"] = self.insert(
                    "Lead",
                    {
                        **common,
                        "Company": person.company or person.last_name,
                        "Status": "Closed - Converted",
                        "IsConverted": True,
                        "ConvertedContactId": contact_id,
                        "ConvertedAccountId": ids.get(person.account_id or ""),
                        "ConvertedDate": person.converted_at.date().isoformat(),
                        **audit,
                    },
                )
        elif person.crm_kind == "lead":
            ids[person.id] = self.insert(
                "Lead",
                {
                    **common,
                    "Company": person.company or person.last_name,
                    "Status": person.lead_status,
                    **reasons,
                    **audit,
                },
            )

    def _load_history(self, world: World, ids: dict[str, str]) -> None:
        """Field history of the seed's lead status and deal stage changes, and of the reasons
        reps gave with a status (written in the same save, so at the same time). A record's
        value at creation has no field row (a real org writes a "created" row without values;
        the emulator writes none), so an opportunity's first stage has none."""
        given: dict[tuple[str, str], str] = {}  # (lead id, reason field) -> value so far
        for event in world.status_events:
            if event.old_value is None or event.old_value == event.new_value:
                continue
            by = ids.get(event.owner_id)
            at = format_datetime(event.changed_at)
            if event.field == "lead_status":
                lead_id = ids.get(f"{event.object_id}#lead") or ids.get(event.object_id, "")
                if not lead_id.startswith("00Q"):
                    continue
                self.record_history(
                    "Lead", lead_id, "Status", event.old_value, event.new_value, created=at, by=by
                )
                field_name = _REASON_FIELDS.get(event.new_value)
                if event.reason is not None and field_name is not None:
                    before = given.get((lead_id, field_name))
                    if before != event.reason:
                        self.record_history(
                            "Lead", lead_id, field_name, before, event.reason, created=at, by=by
                        )
                        given[(lead_id, field_name)] = event.reason
            elif event.field == "stage" and event.object_id in ids:
                self.record_history(
                    "Opportunity",
                    ids[event.object_id],
                    "StageName",
                    event.old_value,
                    event.new_value,
                    created=at,
                    by=by,
                )

    def _load_members(self, world: World, ids: dict[str, str]) -> None:
        members: dict[tuple[str, str], tuple[datetime, bool]] = {}
        for activity in world.activities:
            if activity.campaign_id is None:
                continue
            key = (activity.campaign_id, activity.person_id)
            responded = activity.kind in _RESPONDED_KINDS
            first, seen_response = members.get(key, (activity.occurred_at, False))
            members[key] = (min(first, activity.occurred_at), seen_response or responded)
        for (campaign_id, person_id), (first, responded) in members.items():
            person_ref = ids.get(person_id)
            if person_ref is None or campaign_id not in ids:
                continue
            field_name = "ContactId" if person_ref.startswith("003") else "LeadId"
            self.insert(
                "CampaignMember",
                {
                    "CampaignId": ids[campaign_id],
                    field_name: person_ref,
                    "Status": "Responded" if responded else "Sent",
                    **_audit(first, first),
                },
            )

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


def _current_reasons(world: World) -> dict[str, dict[str, str]]:
    """Person id -> reason field -> the last reason the world's reps gave for that status."""
    found: dict[str, dict[str, str]] = {}
    for event in sorted(world.status_events, key=lambda e: e.changed_at):
        field_name = _REASON_FIELDS.get(event.new_value)
        if event.field == "lead_status" and event.reason is not None and field_name is not None:
            found.setdefault(event.object_id, {})[field_name] = event.reason
    return found


def _audit(created: datetime, modified: datetime) -> dict[str, str]:
    return {
        "CreatedDate": format_datetime(created),
        "LastModifiedDate": format_datetime(modified),
        "SystemModstamp": format_datetime(modified),
    }


def _money(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)
