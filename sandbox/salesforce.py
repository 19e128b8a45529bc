"""The Salesforce REST API emulator: OAuth token endpoint, sObject REST, collections, composite,
SOQL query/queryAll with paging, limits, Bulk API 2.0 and the Tooling API's CustomField create
(custom fields), served by one Starlette app.

Every sObject is served as the integration user sees it (``SalesforceStore.object_def``):
fields an admin added without granting field-level security are not in describe, SOQL or
writes. Every ``/services/data`` call is counted once (a composite request is one call,
whatever it holds), may suffer an injected fault, needs a bearer token, spends one unit of the
org's daily allowance and carries ``Sforce-Limit-Info``. Handlers are plain functions from a
``Call`` to a ``Reply`` so composite subrequests run through exactly the same code. The org
itself (records, validation, clock) is ``salesforce_store.SalesforceStore``; SOQL is
``salesforce_soql``.

A save may be refused with UNABLE_TO_LOCK_ROW, drawn by the ``unable_to_lock_row`` fault or
because the store holds a record it needs locked (``SalesforceStore.hold_locks``): a record of
an sObject Collections save while the call succeeds, a single-record create, update, upsert or
delete as an HTTP 400. The token endpoint checks each grant as
Salesforce does: the username-password flow can be blocked for the org, and a JWT bearer
assertion needs the connected app's issuer, its certificate's signature, an authorization
server (or Experience Cloud site) audience, an unexpired exp and a known user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import credentials
from sandbox.core import Faults, SandboxState
from sandbox.salesforce_bulk import (
    BulkJob,
    create_ingest_job,
    create_query_job,
    ingest_results_csv,
    job_info,
    process_ingest,
    query_page,
)
from sandbox.salesforce_schema import CustomFieldError, FieldDef, ObjectDef, describe_field
from sandbox.salesforce_soql import SoqlError, normalize_id
from sandbox.salesforce_store import (
    ApiError,
    DmlError,
    FieldTypeError,
    SalesforceStore,
    StoreClock,
)

__all__ = ["API", "SalesforceStore", "StoreClock", "build_app"]

API = "salesforce"
# The API versions the org serves: a project floor of v50.0 (Salesforce still serves v31.0 and
# later) up to the newest release, Winter '27 (v68.0). Salesforce ships three releases a year,
# each one API version up, named Winter/Spring/Summer: v50.0 was Winter '21.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_versions.htm,
# https://developer.salesforce.com/docs/platform/api/guide/api-eol-soap.html ("31.0 through 68.0")
MIN_VERSION = 50
MAX_VERSION = 68
MAX_COLLECTION_RECORDS = 200
MAX_RETRIEVE_IDS = 2_000
MAX_SUBREQUESTS = 25
MAX_COMPOSITE_COLLECTIONS = 5
DEFAULT_BATCH = 2_000
MIN_BATCH = 200
JSON_TYPE = "application/json;charset=UTF-8"
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    "fields": [],
}
_HALTED = [
    {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same "
        "transaction failed.",
    }
]


@dataclass
class Call:
    """One REST call (a real HTTP request or a composite subrequest) after the version prefix."""

    store: SalesforceStore
    method: str
    parts: list[str]
    params: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    version: str
    # A composite subrequest's body, already parsed (saves a JSON round trip per subrequest).
    parsed: Any = None
    # The sandbox's injected faults (record-level kinds are drawn per saved record).
    faults: Faults | None = None

    @property
    def base(self) -> str:
        """The versioned path prefix, ``/services/data/v59.0``."""
        return f"/services/data/v{self.version}"

    def json(self) -> Any:
        """The JSON body; malformed JSON is JSON_PARSER_ERROR, as Salesforce answers."""
        if self.parsed is not None:
            return self.parsed
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None


@dataclass
class Reply:
    """A handler's answer: status, JSON-able body (or text), extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    content_type: str = JSON_TYPE


Handler = Callable[[Call], Reply]


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _sobject(call: Call, name: str) -> ObjectDef:
    """The sObject ``name`` of this org (its custom fields included), or 404 NOT_FOUND."""
    obj = call.store.object_def(name)
    if obj is None:
        raise _not_found()
    return obj


def _writable(obj: ObjectDef) -> ObjectDef:
    """``obj``, or the refusal of a write to an object only the platform writes (history)."""
    if not obj.writable:
        message = f"entity type cannot be inserted or updated: {obj.label}"
        raise ApiError(400, "INVALID_TYPE", message)
    return obj


def _record_body(call: Call, obj: ObjectDef) -> dict[str, Any]:
    _writable(obj)
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError(
            400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from the request body"
        )
    try:
        return call.store.deserialize(obj, body)
    except FieldTypeError as exc:
        raise exc.as_api_error() from None


def _record_json(
    call: Call, obj: ObjectDef, row: Mapping[str, Any], fields: list[FieldDef] | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": f"{call.base}/sobjects/{obj.name}/{row['Id']}"}
    }
    for f in fields or list(obj.fields.values()):
        record[f.name] = row.get(f.name)
    return record


def _fields_param(obj: ObjectDef, raw: str | None) -> list[FieldDef] | None:
    if not raw:
        return None
    chosen = []
    for name in raw.split(","):
        f = obj.field_ci(name.strip())
        if f is None:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{name.strip()}' on sobject of type {obj.name}",
            )
        chosen.append(f)
    return chosen


# ------------------------------------------------------------------------------------ resources


def release_label(version: int) -> str:
    """The release an API version came with: 50 is "Winter '21", 66 "Spring '26"."""
    season = ("Winter", "Spring", "Summer")[(version - MIN_VERSION) % 3]
    return f"{season} '{21 + (version - MIN_VERSION) // 3}"


def h_versions(_call: Call) -> Reply:
    return Reply(
        200,
        [
            {"label": release_label(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
            for v in range(MIN_VERSION, MAX_VERSION + 1)
        ],
    )


def h_resources(call: Call) -> Reply:
    names = ("sobjects", "query", "queryAll", "composite", "limits", "jobs", "tooling")
    return Reply(200, {name: f"{call.base}/{name}" for name in names})


def h_limits(call: Call) -> Reply:
    store = call.store
    allowance = {"Max": store.daily_limit, "Remaining": max(0, store.daily_limit - store.api_used)}
    return Reply(
        200,
        {
            "DailyApiRequests": allowance,
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 1048576, "Remaining": 1048576},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        },
    )


def _object_summary(call: Call, obj: ObjectDef) -> dict[str, Any]:
    url = f"{call.base}/sobjects/{obj.name}"
    return {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": obj.custom,
        "createable": obj.writable,
        "updateable": obj.writable,
        "deletable": obj.writable,
        "queryable": True,
        "retrieveable": True,
        "searchable": True,
        "urls": {"sobject": url, "describe": f"{url}/describe", "rowTemplate": f"{url}/{{ID}}"},
    }


def h_sobjects(call: Call) -> Reply:
    return Reply(
        200,
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [_object_summary(call, o) for o in call.store.objects.values()],
        },
    )


def h_sobject_info(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    return Reply(200, {"objectDescribe": _object_summary(call, obj), "recentItems": []})


def h_describe(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    described = _object_summary(call, obj)
    described["fields"] = [describe_field(f) for f in obj.fields.values()]
    described["childRelationships"] = []
    described["recordTypeInfos"] = []
    return Reply(200, described)


# ------------------------------------------------------------------------------ Tooling API


def h_tooling_create(call: Call) -> Reply:
    """``POST tooling/sobjects/CustomField``: an admin adds a custom field (see
    ``salesforce_schema.custom_field``). It grants no field-level security: the integration
    user sees and writes it once a permission set assigned to him has FieldPermissions on it."""
    if call.parts[2] != "CustomField":
        raise ApiError(
            400, "INVALID_TYPE", f"sObject type '{call.parts[2]}' is not supported by the sandbox"
        )
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of CustomField")
    try:
        field_id = call.store.add_custom_field(body.get("FullName"), body.get("Metadata"))
    except CustomFieldError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return Reply(201, {"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []})


# ------------------------------------------------------------------------------ single records


def _dml_reply(exc: DmlError) -> Reply:
    err = exc.as_api_error()
    return Reply(err.status, err.errors)


def _assign(call: Call, sobject: str, record_id: str) -> None:
    """Lead assignment rules as the request's ``Sforce-Auto-Assign`` header says (absent:
    TRUE, the active rule), after a create or update (``SalesforceStore.assign``)."""
    call.store.assign(sobject, record_id, call.headers.get("sforce-auto-assign"))


def h_create(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    values = _record_body(call, obj)
    try:
        _check_lock(call, obj, values)
        record_id = call.store.create(obj.name, values)
        _assign(call, obj.name, record_id)
    except DmlError as exc:
        return _dml_reply(exc)
    return Reply(
        201,
        {"id": record_id, "success": True, "errors": []},
        {"Location": f"{call.base}/sobjects/{obj.name}/{record_id}"},
    )


def _live_row(call: Call, obj: ObjectDef, raw_id: str) -> Mapping[str, Any]:
    record_id = normalize_id(raw_id)
    if record_id is None:
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {raw_id}",
        )
    row = call.store.get(obj.name, record_id)
    if row is None:
        raise _not_found()
    if row.get("IsDeleted"):
        raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return row


def h_get(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    row = _live_row(call, obj, call.parts[2])
    return Reply(200, _record_json(call, obj, row, _fields_param(obj, call.params.get("fields"))))


def h_update(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    row = _live_row(call, obj, call.parts[2])
    values = _record_body(call, obj)
    try:
        _check_lock(call, obj, {**values, "Id": row["Id"]})
        call.store.update(obj.name, row["Id"], values)
        _assign(call, obj.name, row["Id"])
    except DmlError as exc:
        return _dml_reply(exc)
    return Reply(204)


def h_delete(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    row = _live_row(call, obj, call.parts[2])
    _check_lock(call, obj, {"Id": row["Id"]})
    call.store.delete(row["Id"])
    return Reply(204)


def _ext_field(obj: ObjectDef, name: str) -> FieldDef:
    f = obj.field_ci(name)
    if f is None or not (f.external_id or f.type == "id"):
        raise ApiError(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {name}",
        )
    return f


def h_get_by_ext(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    f = _ext_field(obj, call.parts[2])
    matches = call.store.find(obj.name, f.name, call.parts[3])
    if not matches:
        raise _not_found()
    if len(matches) > 1:
        return Reply(300, [f"{call.base}/sobjects/{obj.name}/{m}" for m in matches])
    row = call.store.get(obj.name, matches[0])
    assert row is not None
    return Reply(200, _record_json(call, obj, row, _fields_param(obj, call.params.get("fields"))))


def h_upsert(call: Call) -> Reply:
    obj = _sobject(call, call.parts[1])
    f = _ext_field(obj, call.parts[2])
    values = _record_body(call, obj)
    values.pop(f.name, None)
    matches = (
        [call.parts[3]] if f.name == "Id" else call.store.find(obj.name, f.name, call.parts[3])
    )
    if len(matches) > 1:
        return Reply(300, [f"{call.base}/sobjects/{obj.name}/{m}" for m in matches])
    try:
        _check_lock(call, obj, {**values, **({"Id": matches[0]} if matches else {})})
        record_id, created = call.store.upsert(obj.name, f.name, call.parts[3], values)
        _assign(call, obj.name, record_id)
    except DmlError as exc:
        return _dml_reply(exc)
    # API v46.0+ answers 200 with a body for an update (204 before); we accept only v50.0+.
    return Reply(
        201 if created else 200,
        {"id": record_id, "success": True, "errors": [], "created": created},
    )


# ------------------------------------------------------------------------------------ queries


def _batch_size(call: Call) -> int:
    options = call.headers.get("sforce-query-options", "")
    for option in options.split(","):
        name, _, value = option.strip().partition("=")
        if name.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_BATCH, min(DEFAULT_BATCH, int(value)))
    return DEFAULT_BATCH


def _query_page(
    call: Call,
    *,
    cursor_id: str | None,
    rows: list[Mapping[str, Any]],
    start: int,
    size: int,
    endpoint: str,
    compiled: Any,
) -> dict[str, Any]:
    page = rows[start : start + size]
    end = start + len(page)
    result: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
    if end < len(rows):
        if cursor_id is None:
            cursor_id = call.store.open_cursor(compiled, rows, size, endpoint)
        result["nextRecordsUrl"] = f"{call.base}/{endpoint}/{cursor_id}-{end}"
    result["records"] = [compiled.project(row, call.base) for row in page]
    return result


def _run_query(call: Call, endpoint: str) -> Reply:
    text = call.params.get("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        compiled = call.store.compile(text)
    except SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    rows = call.store.select(compiled, include_deleted=endpoint == "queryAll")
    if compiled.count_only:
        if compiled.count_alias:
            aggregate = {"attributes": {"type": "AggregateResult"}, "expr0": len(rows)}
            return Reply(200, {"totalSize": 1, "done": True, "records": [aggregate]})
        return Reply(200, {"totalSize": len(rows), "done": True, "records": []})
    return Reply(
        200,
        _query_page(
            call,
            cursor_id=None,
            rows=rows,
            start=0,
            size=_batch_size(call),
            endpoint=endpoint,
            compiled=compiled,
        ),
    )


def h_query(call: Call) -> Reply:
    return _run_query(call, "query")


def h_query_all(call: Call) -> Reply:
    return _run_query(call, "queryAll")


def h_query_more(call: Call) -> Reply:
    cursor_id, _, position = call.parts[1].partition("-")
    cursor = call.store.cursor(cursor_id)
    if cursor is None or not position.isdigit():
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return Reply(
        200,
        _query_page(
            call,
            cursor_id=cursor_id,
            rows=cursor.rows,
            start=int(position),
            size=cursor.batch_size,
            endpoint=cursor.endpoint,
            compiled=cursor.compiled,
        ),
    )


# ------------------------------------------------------------------------ sObject Collections


def _collection_body(call: Call) -> tuple[bool, list[Any]]:
    body = call.json()
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            'Cannot deserialize the request body: expected {"records": [...]}',
        )
    records = body["records"]
    if len(records) > MAX_COLLECTION_RECORDS:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    return bool(body.get("allOrNone", False)), records


def _typed_records(
    call: Call, records: list[Any], forced: ObjectDef | None = None
) -> list[tuple[ObjectDef, dict[str, Any]]]:
    """Deserialize every record first: one bad field or type fails the whole request."""
    typed = []
    for raw in records:
        if not isinstance(raw, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject")
        attributes = raw.get("attributes") or {}
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        if forced is not None and type_name is None:
            type_name = forced.name
        if not type_name:
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        obj = call.store.object_def(str(type_name))
        if obj is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
        try:
            typed.append((_writable(obj), call.store.deserialize(obj, raw)))
        except FieldTypeError as exc:
            raise exc.as_api_error() from None
    return typed


def _lock_error(call: Call, item: Any, size: int | None) -> DmlError | None:
    """UNABLE_TO_LOCK_ROW for a record whose row (or a parent it refers to) another
    transaction holds, or that an ``unable_to_lock_row`` fault picks; else None.

    Salesforce waits up to 10 s for a lock and then refuses the record; the other records of
    an allOrNone=false collection are saved. The message names the records the save needed
    (``size``: the collection's; None for a single-record save).
    https://help.salesforce.com/apex/HTViewSolution?id=000229525
    """
    values = {"Id": item} if isinstance(item, str) else item[1]
    faulted = call.faults is not None and call.faults.draw_record(API, "unable_to_lock_row")
    if not (faulted or call.store.locked(values)):
        return None
    message = "unable to obtain exclusive access to this record"
    if size is not None:
        message += f" or {size} records"
    return DmlError([{"statusCode": "UNABLE_TO_LOCK_ROW", "message": message, "fields": []}])


def _check_lock(call: Call, obj: ObjectDef, values: Mapping[str, Any]) -> None:
    """Refuse a single-record save (HTTP 400, the list body) as ``_lock_error`` would."""
    locked = _lock_error(call, (obj, dict(values)), None)
    if locked is not None:
        raise locked


def _run_collection(
    call: Call, all_or_none: bool, items: list[Any], apply: Callable[[Any], dict[str, Any]]
) -> Reply:
    store = call.store
    point = store.savepoint()
    results: list[dict[str, Any]] = []
    failed = False
    for item in items:
        try:
            locked = _lock_error(call, item, len(items))
            if locked is not None:
                raise locked
            results.append(apply(item))
        except DmlError as exc:
            failed = True
            results.append({"id": None, "success": False, "errors": exc.errors})
    if all_or_none and failed:
        store.rollback_to(point)
        for result in results:
            if result["success"]:
                result.update(id=None, success=False, errors=[dict(_ROLLED_BACK)])
                if "created" in result:
                    result["created"] = False
    else:
        store.release()
    return Reply(200, results)


def h_collection_create(call: Call) -> Reply:
    all_or_none, records = _collection_body(call)
    typed = _typed_records(call, records)

    def apply(item: tuple[ObjectDef, dict[str, Any]]) -> dict[str, Any]:
        record_id = call.store.create(item[0].name, item[1])
        _assign(call, item[0].name, record_id)
        return {"id": record_id, "success": True, "errors": []}

    return _run_collection(call, all_or_none, typed, apply)


def h_collection_update(call: Call) -> Reply:
    all_or_none, records = _collection_body(call)
    typed = _typed_records(call, records)

    def apply(item: tuple[ObjectDef, dict[str, Any]]) -> dict[str, Any]:
        obj, values = item
        raw_id = values.pop("Id", None)
        if not raw_id:
            raise DmlError(
                [
                    {
                        "statusCode": "MISSING_ARGUMENT",
                        "message": "Id not specified in an update call",
                        "fields": [],
                    }
                ]
            )
        record_id = normalize_id(raw_id)
        if record_id is None or not record_id.startswith(obj.key_prefix):
            raise DmlError(
                [
                    {
                        "statusCode": "MALFORMED_ID",
                        "message": f"Record ID: id value of incorrect type: {raw_id}",
                        "fields": ["Id"],
                    }
                ]
            )
        call.store.update(obj.name, record_id, values)
        _assign(call, obj.name, record_id)
        return {"id": record_id, "success": True, "errors": []}

    return _run_collection(call, all_or_none, typed, apply)


def h_collection_upsert(call: Call) -> Reply:
    obj = _sobject(call, call.parts[2])
    f = obj.field_ci(call.parts[3])
    if f is None or not (f.external_id or f.type == "id"):
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"Field name provided, {call.parts[3]} is not an External ID or indexed field "
            f"for {obj.name}",
        )
    all_or_none, records = _collection_body(call)
    typed = _typed_records(call, records, forced=obj)
    seen: dict[Any, int] = {}
    for _, values in typed:
        key = values.get(f.name)
        if isinstance(key, str):
            key = key.casefold()
        seen[key] = seen.get(key, 0) + 1

    def apply(item: tuple[ObjectDef, dict[str, Any]]) -> dict[str, Any]:
        record_obj, values = item
        if record_obj.name != obj.name:
            raise DmlError(
                [
                    {
                        "statusCode": "INVALID_TYPE",
                        "message": f"Record type {record_obj.name} does not match {obj.name}",
                        "fields": [],
                    }
                ]
            )
        ext_value = values.pop(f.name, None)
        key = ext_value.casefold() if isinstance(ext_value, str) else ext_value
        if ext_value is not None and seen.get(key, 0) > 1:
            raise DmlError(
                [
                    {
                        "statusCode": "DUPLICATE_EXTERNAL_ID",
                        "message": f"Duplicate external id specified: {ext_value}",
                        "fields": [f.name],
                    }
                ]
            )
        record_id, created = call.store.upsert(obj.name, f.name, ext_value, values)
        _assign(call, obj.name, record_id)
        return {"id": record_id, "success": True, "errors": [], "created": created}

    reply = _run_collection(call, all_or_none, typed, apply)
    for result in reply.body:
        result.setdefault("created", False)
    return reply


def h_collection_delete(call: Call) -> Reply:
    raw_ids = [i for i in call.params.get("ids", "").split(",") if i]
    if len(raw_ids) > MAX_COLLECTION_RECORDS:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    all_or_none = call.params.get("allOrNone", "false").lower() == "true"

    def apply(raw_id: str) -> dict[str, Any]:
        record_id = normalize_id(raw_id)
        if record_id is None:
            raise DmlError(
                [{"statusCode": "MALFORMED_ID", "message": f"malformed id {raw_id}", "fields": []}]
            )
        call.store.delete(record_id)
        return {"id": record_id, "success": True, "errors": []}

    reply = _run_collection(call, all_or_none, raw_ids, apply)
    for raw_id, result in zip(raw_ids, reply.body, strict=True):
        if result["id"] is None:
            result["id"] = raw_id
    return reply


def h_collection_retrieve(call: Call) -> Reply:
    obj = _sobject(call, call.parts[2])
    if call.method == "POST":
        body = call.json() or {}
        ids = list(body.get("ids") or [])
        field_names = ",".join(body.get("fields") or [])
    else:
        ids = [i for i in call.params.get("ids", "").split(",") if i]
        field_names = call.params.get("fields", "")
    if not field_names:
        raise ApiError(400, "MISSING_ARGUMENT", "fields parameter is required")
    if len(ids) > MAX_RETRIEVE_IDS:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_RETRIEVE_IDS} records into "
            "this call",
        )
    fields = _fields_param(obj, field_names)
    out: list[Any] = []
    for raw_id in ids:
        record_id = normalize_id(str(raw_id))
        row = call.store.get(obj.name, record_id) if record_id else None
        out.append(
            None if row is None or row.get("IsDeleted") else _record_json(call, obj, row, fields)
        )
    return Reply(200, out)


# ---------------------------------------------------------------------------------- composite


def _composite_limit(message: str) -> Reply:
    return Reply(
        400,
        {
            "compositeResponse": [
                {
                    "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
                    "httpHeaders": {},
                    "httpStatusCode": 400,
                    "referenceId": None,
                }
            ]
        },
    )


def _resolve_refs(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            ref, path = match.group(1), match.group(2)
            if ref not in results:
                raise KeyError(match.group(0))
            current = results[ref]
            for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
                current = current[step[0]] if step[0] else current[int(step[1])]
            return str(current)

        return _REFERENCE.sub(substitute, value)
    if isinstance(value, list):
        return [_resolve_refs(v, results) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_refs(v, results) for k, v in value.items()}
    return value


def _is_collection_or_query(parts: list[str]) -> bool:
    return bool(parts) and (
        parts[0] in ("query", "queryAll") or parts[:2] == ["composite", "sobjects"]
    )


# A subrequest that failed inside the platform: its body is the REST error list, its status
# the one the resource alone would have answered (500), in an HTTP 200 Composite answer.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/responses_composite.htm
_SUBREQUEST_500 = [
    {
        "errorCode": "UNKNOWN_EXCEPTION",
        "message": "An unexpected error occurred. Please include this ErrorId if you contact "
        "support: 1932081743-61927 (-1158432127)",
    }
]


def _run_subrequest(call: Call, sub: dict[str, Any], results: dict[str, Any]) -> Reply:
    """One composite subrequest, after substituting @{ref.field} references to earlier results.
    An sObject Collections write may suffer the ``subrequest_500`` fault: it then saves nothing
    and answers 500 while the other subrequests run as usual."""
    try:
        url = _resolve_refs(str(sub["url"]), results)
        sub_body = sub.get("body")
        if results and b"@{" in orjson.dumps(sub_body, option=orjson.OPT_NON_STR_KEYS):
            sub_body = _resolve_refs(sub_body, results)
    except (KeyError, IndexError, TypeError) as exc:
        message = (
            f"Invalid reference specified. No value for {exc} found. "
            "Provided referenceId must be defined before it is referenced."
        )
        return Reply(400, [{"errorCode": "PROCESSING_HALTED", "message": message}])
    split = urlsplit(url)
    parts = [unquote(p) for p in split.path.split("/")[4:] if p]
    sub_call = Call(
        store=call.store,
        method=str(sub["method"]).upper(),
        parts=parts,
        params=dict(parse_qsl(split.query)),
        headers={k.lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()},
        body=b"",
        version=call.version,
        parsed=sub_body,
        faults=call.faults,
    )
    endpoint, handler = route(sub_call.method, parts)
    if endpoint in ("composite", "versions") or endpoint.startswith("bulk2"):
        message = f"{endpoint} is not supported in a composite request"
        return Reply(400, [{"errorCode": "INVALID_INPUT", "message": message}])
    if (
        endpoint in ("collections_create", "collections_update", "collections_upsert",
                     "collections_delete")
        and call.faults is not None
        and call.faults.draw_record(API, "subrequest_500")
    ):  # fmt: skip
        return Reply(500, [dict(error) for error in _SUBREQUEST_500])
    return dispatch(handler, sub_call)


def h_composite(call: Call) -> Reply:
    body = call.json()
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize the request body: expected compositeRequest",
        )
    subrequests = body["compositeRequest"]
    if len(subrequests) > MAX_SUBREQUESTS:
        return _composite_limit(
            f"The request can\u2019t contain more than {MAX_SUBREQUESTS} operations."
        )
    parsed = []
    for sub in subrequests:
        url = str(sub.get("url", "")) if isinstance(sub, dict) else ""
        path = urlsplit(url).path
        match = re.fullmatch(r"/services/data/v(\d+)\.0/(.*)", path)
        if (
            not isinstance(sub, dict)
            or match is None
            or not sub.get("referenceId")
            or not sub.get("method")
        ):
            raise ApiError(400, "INVALID_INPUT", f"Invalid composite subrequest: {sub!r}")
        parsed.append((sub, [unquote(p) for p in match.group(2).split("/") if p]))
    heavy = sum(1 for _, parts in parsed if _is_collection_or_query(parts))
    if heavy > MAX_COMPOSITE_COLLECTIONS:
        return _composite_limit(
            f"The request can\u2019t contain more than {MAX_COMPOSITE_COLLECTIONS} sObject "
            "Collections or query operations."
        )
    all_or_none = bool(body.get("allOrNone", False))
    store = call.store
    point = store.savepoint()
    results: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    failed = False
    for sub, _ in parsed:
        ref = str(sub["referenceId"])
        if failed and all_or_none:
            responses.append(
                {"body": _HALTED, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ref}
            )
            continue
        reply = _run_subrequest(call, sub, results)
        if reply.status < 300 and isinstance(reply.body, dict | list):
            results[ref] = reply.body
        if reply.status >= 400:
            failed = True
        responses.append(
            {
                "body": reply.body,
                "httpHeaders": reply.headers,
                "httpStatusCode": reply.status,
                "referenceId": ref,
            }
        )
    if failed and all_or_none:
        store.rollback_to(point)
        for response in responses:
            if response["httpStatusCode"] < 400:
                response.update(body=_HALTED, httpHeaders={}, httpStatusCode=400)
    else:
        store.release()
    return Reply(200, {"compositeResponse": responses})


# ------------------------------------------------------------------------------ Bulk API 2.0


def _job(call: Call, kind: str) -> BulkJob:
    job = call.store.bulk_jobs.get(call.parts[2])
    if not isinstance(job, BulkJob) or job.kind != kind:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def h_bulk_ingest_create(call: Call) -> Reply:
    job = create_ingest_job(call.store, call.json(), call.version)
    return Reply(200, job_info(job))


def h_bulk_ingest_upload(call: Call) -> Reply:
    job = _job(call, "ingest")
    if job.state != "Open":
        raise ApiError(409, "INVALIDJOBSTATE", f"Job is not open for uploads (state {job.state})")
    if not call.body:
        raise ApiError(400, "INVALIDJOB", "Empty upload")
    job.uploads.append(call.body.decode("utf-8-sig"))
    return Reply(201, None)


def h_bulk_ingest_state(call: Call) -> Reply:
    job = _job(call, "ingest")
    wanted = (call.json() or {}).get("state")
    if wanted == "UploadComplete":
        if job.state != "Open":
            raise ApiError(
                409, "INVALIDJOBSTATE", f"Job cannot move from {job.state} to UploadComplete"
            )
        process_ingest(call.store, job)
    elif wanted == "Aborted":
        if job.state in ("JobComplete", "Failed"):
            raise ApiError(409, "INVALIDJOBSTATE", f"Job cannot move from {job.state} to Aborted")
        job.state = "Aborted"
    else:
        raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state: {wanted}")
    return Reply(200, job_info(job))


def h_bulk_job_get(call: Call) -> Reply:
    return Reply(200, job_info(_job(call, call.parts[1]), poll=True))


def h_bulk_job_delete(call: Call) -> Reply:
    job = _job(call, call.parts[1])
    del call.store.bulk_jobs[job.id]
    return Reply(204)


def h_bulk_query_abort(call: Call) -> Reply:
    job = _job(call, "query")
    job.state = "Aborted"
    return Reply(200, job_info(job))


def h_bulk_ingest_results(call: Call) -> Reply:
    job = _job(call, "ingest")
    if call.parts[3] not in ("successfulResults", "failedResults", "unprocessedRecords"):
        raise _not_found()
    return Reply(200, text=ingest_results_csv(job, call.parts[3]), content_type="text/csv")


def h_bulk_query_create(call: Call) -> Reply:
    job = create_query_job(call.store, call.json(), call.version)
    return Reply(200, job_info(job))


def h_bulk_query_results(call: Call) -> Reply:
    job = _job(call, "query")
    if job.state != "JobComplete":
        raise ApiError(
            400, "INVALIDJOBSTATE", f"Results are not available: job state is {job.state}"
        )
    raw_max = call.params.get("maxRecords", "")
    max_records = int(raw_max) if raw_max.isdigit() and int(raw_max) > 0 else 50_000
    text, locator, count = query_page(job, call.params.get("locator"), max_records)
    return Reply(
        200,
        text=text,
        content_type="text/csv",
        headers={"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)},
    )


# ------------------------------------------------------------------------------------ routing

# (path pattern, {method: (endpoint name, handler)}); "*" matches one segment. First match wins.
_ROUTES: list[tuple[tuple[str, ...], dict[str, tuple[str, Handler]]]] = [
    ((), {"GET": ("resources", h_resources)}),
    (("limits",), {"GET": ("limits", h_limits)}),
    (("sobjects",), {"GET": ("sobjects", h_sobjects)}),
    (
        ("sobjects", "*"),
        {"GET": ("sobject_info", h_sobject_info), "POST": ("sobject_create", h_create)},
    ),
    (("sobjects", "*", "describe"), {"GET": ("describe", h_describe)}),
    (
        ("sobjects", "*", "*"),
        {
            "GET": ("sobject_get", h_get),
            "PATCH": ("sobject_update", h_update),
            "DELETE": ("sobject_delete", h_delete),
        },
    ),
    (
        ("sobjects", "*", "*", "*"),
        {
            "GET": ("sobject_get_by_external_id", h_get_by_ext),
            "PATCH": ("sobject_upsert", h_upsert),
        },
    ),
    (("tooling", "sobjects", "*"), {"POST": ("tooling_create", h_tooling_create)}),
    (("query",), {"GET": ("query", h_query)}),
    (("query", "*"), {"GET": ("query_more", h_query_more)}),
    (("queryAll",), {"GET": ("query_all", h_query_all)}),
    (("queryAll", "*"), {"GET": ("query_more", h_query_more)}),
    (("composite",), {"POST": ("composite", h_composite)}),
    (
        ("composite", "sobjects"),
        {
            "POST": ("collections_create", h_collection_create),
            "PATCH": ("collections_update", h_collection_update),
            "DELETE": ("collections_delete", h_collection_delete),
        },
    ),
    (
        ("composite", "sobjects", "*"),
        {
            "GET": ("collections_retrieve", h_collection_retrieve),
            "POST": ("collections_retrieve", h_collection_retrieve),
        },
    ),
    (("composite", "sobjects", "*", "*"), {"PATCH": ("collections_upsert", h_collection_upsert)}),
    (("jobs", "ingest"), {"POST": ("bulk2_ingest_create", h_bulk_ingest_create)}),
    (
        ("jobs", "ingest", "*"),
        {
            "GET": ("bulk2_ingest_get", h_bulk_job_get),
            "PATCH": ("bulk2_ingest_state", h_bulk_ingest_state),
            "DELETE": ("bulk2_ingest_delete", h_bulk_job_delete),
        },
    ),
    (("jobs", "ingest", "*", "batches"), {"PUT": ("bulk2_ingest_upload", h_bulk_ingest_upload)}),
    (("jobs", "ingest", "*", "*"), {"GET": ("bulk2_ingest_results", h_bulk_ingest_results)}),
    (("jobs", "query"), {"POST": ("bulk2_query_create", h_bulk_query_create)}),
    (
        ("jobs", "query", "*"),
        {
            "GET": ("bulk2_query_get", h_bulk_job_get),
            "PATCH": ("bulk2_query_abort", h_bulk_query_abort),
            "DELETE": ("bulk2_query_delete", h_bulk_job_delete),
        },
    ),
    (("jobs", "query", "*", "results"), {"GET": ("bulk2_query_results", h_bulk_query_results)}),
]


def _not_found_handler(_call: Call) -> Reply:
    raise _not_found()


def route(method: str, parts: list[str]) -> tuple[str, Handler]:
    """The (stable endpoint name, handler) for a method and path below the version prefix."""
    for pattern, methods in _ROUTES:
        if len(pattern) != len(parts):
            continue
        if all(p in ("*", s) for p, s in zip(pattern, parts, strict=True)):
            if method in methods:
                return methods[method]
            allowed = ",".join(sorted(methods))

            def not_allowed(call: Call, allowed: str = allowed) -> Reply:
                raise ApiError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{call.method}' not allowed. Allowed are {allowed}",
                )

            return "method_not_allowed", not_allowed
    return "not_found", _not_found_handler


def dispatch(handler: Handler, call: Call) -> Reply:
    """Run a handler under the store lock, turning raised API errors into replies."""
    with call.store.lock:
        try:
            return handler(call)
        except ApiError as exc:
            return Reply(exc.status, exc.errors)
        except DmlError as exc:
            return _dml_reply(exc)


# ----------------------------------------------------------------------------------- the app


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS) if body is not None else b"",
        status,
        headers,
        JSON_TYPE,
    )


def _fault_response(kind: str, store: SalesforceStore, token: str | None) -> Response | None:
    if kind in ("429", "403"):
        return _json_response(
            403,
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
        )
    if kind == "500":
        return _json_response(
            500,
            [
                {
                    "errorCode": "UNKNOWN_EXCEPTION",
                    "message": "An unexpected error occurred. Please include this ErrorId if "
                    "you contact support: 1612075842-38461 (-1158432127)",
                }
            ],
        )
    if kind == "503":
        return _json_response(
            503,
            [
                {
                    "errorCode": "SERVER_UNAVAILABLE",
                    "message": "Server temporarily unavailable. Please try again later.",
                }
            ],
        )
    if kind == "expired_token":
        if token is not None and token in store.tokens:
            store.tokens[token]["revoked"] = True
        return _json_response(
            401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        )
    return None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


def _token_valid(store: SalesforceStore, token: str | None) -> bool:
    if token is None:
        return False
    if token == credentials.SALESFORCE_SESSION_ID:
        return True
    info = store.tokens.get(token)
    return info is not None and not info.get("revoked")


def _mint(store: SalesforceStore, instance_url: str) -> dict[str, Any]:
    token = f"00Dsandbox!{secrets.token_urlsafe(24)}"
    issued = str(int(time.time() * 1000))
    store.tokens[token] = {"issued_at": issued, "revoked": False}
    identity = f"https://login.salesforce.com/id/00Dsandbox000000AAA/{store.user_id}"
    signature = base64.b64encode(
        hmac.new(
            credentials.SALESFORCE_CLIENT_SECRET.encode(),
            (identity + issued).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    return {
        "access_token": token,
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": signature,
    }


# Token endpoint answers, as Salesforce gives them (400 with an OAuth error body).
_AUTH_FAILURE = (400, {"error": "invalid_grant", "error_description": "authentication failure"})
_INVALID_ASSERTION = (400, {"error": "invalid_grant", "error_description": "invalid assertion"})
_BAD_AUDIENCE = (400, {"error": "invalid_grant", "error_description": "audience is invalid"})
_BAD_CLIENT_ID = (
    400,
    {"error": "invalid_client_id", "error_description": "client identifier invalid"},
)
_BAD_CLIENT = (400, {"error": "invalid_client", "error_description": "invalid client credentials"})
# The authorization servers a JWT bearer assertion may name (plus the org's Experience Cloud
# sites): https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm
JWT_AUDIENCES = frozenset({"https://login.salesforce.com", "https://test.salesforce.com"})
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _check_password(store: SalesforceStore, form: dict[str, str]) -> tuple[int, Any] | None:
    if form.get("client_id") != credentials.SALESFORCE_CLIENT_ID:
        return _BAD_CLIENT_ID
    if form.get("client_secret") != credentials.SALESFORCE_CLIENT_SECRET:
        return _BAD_CLIENT
    expected = credentials.SALESFORCE_PASSWORD + credentials.SALESFORCE_SECURITY_TOKEN
    if form.get("username") != credentials.SALESFORCE_USERNAME or not hmac.compare_digest(
        form.get("password", ""), expected
    ):
        return _AUTH_FAILURE
    if not store.password_flow_allowed:
        # Blocked by default in orgs created in Summer '23 or later; Salesforce answers as for
        # a wrong password (Login History says "Username-Password Flow Disabled").
        return _AUTH_FAILURE
    return None


def _signed_by(store: SalesforceStore, assertion: str) -> bool:
    """Whether the assertion's RS256 signature verifies with a registered certificate."""
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    for pem in store.jwt_certificates:
        data = pem.encode()
        try:
            key = (
                x509.load_pem_x509_certificate(data).public_key()
                if b"CERTIFICATE" in data
                else load_pem_public_key(data)
            )
            jwt.decode(
                assertion,
                key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False},
            )
        except (ValueError, TypeError, jwt.PyJWTError):
            continue
        return True
    return False


def _check_jwt(store: SalesforceStore, form: dict[str, str]) -> tuple[int, Any] | None:
    """The claims Salesforce checks: iss = the connected app's consumer key, a signature by the
    app's certificate, aud = an authorization server, exp not passed, sub = a user."""
    import jwt

    assertion = form.get("assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return _INVALID_ASSERTION
    if header.get("alg") != "RS256":
        return _INVALID_ASSERTION
    if claims.get("iss") != credentials.SALESFORCE_CLIENT_ID:
        return _BAD_CLIENT_ID
    if not _signed_by(store, assertion):
        return _INVALID_ASSERTION
    if claims.get("aud") not in JWT_AUDIENCES | store.experience_sites:
        return _BAD_AUDIENCE
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time():
        return 400, {"error": "invalid_grant", "error_description": "expired authorization code"}
    if claims.get("sub") != credentials.SALESFORCE_USERNAME:
        return 400, {
            "error": "invalid_grant",
            "error_description": "user hasn't approved this consumer",
        }
    return None


def _check_grant(store: SalesforceStore, form: dict[str, str]) -> tuple[int, Any] | None:
    grant = form.get("grant_type", "")
    if grant == "password":
        return _check_password(store, form)
    if grant == "client_credentials":
        if form.get("client_id") != credentials.SALESFORCE_CLIENT_ID or not hmac.compare_digest(
            form.get("client_secret", ""), credentials.SALESFORCE_CLIENT_SECRET
        ):
            return _BAD_CLIENT
        return None
    if grant == JWT_GRANT:
        return _check_jwt(store, form)
    return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}


def _resolve(method: str, raw_path: str) -> tuple[str, Handler, str, list[str]]:
    """(endpoint name, handler, API version, path parts) of a ``/services/data`` request."""
    # Split the raw path before unquoting so an encoded "/" inside an external id stays in it.
    segments = [unquote(p) for p in raw_path.split("?", 1)[0].split("/") if p]
    if len(segments) == 2:
        return "versions", h_versions, f"{MIN_VERSION}.0", []
    match = re.fullmatch(r"v(\d+)\.0", segments[2])
    parts = segments[3:]
    if match is None or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
        return "not_found", _not_found_handler, f"{MIN_VERSION}.0", parts
    endpoint, handler = route(method, parts)
    return endpoint, handler, f"{match.group(1)}.0", parts


def build_app(state: SandboxState) -> Starlette:
    """The Salesforce emulator app; creates the org store in ``state.vendors["salesforce"]``."""
    store: SalesforceStore = state.vendors.setdefault(API, SalesforceStore())

    async def token_endpoint(request: Request) -> Response:
        state.count(API, "oauth_token")
        kind = state.faults.draw(API, "oauth_token")
        if kind in ("500", "503"):
            response = _fault_response(kind, store, None)
            assert response is not None
            return response
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        instance_url = f"{request.url.scheme}://{request.url.netloc}"
        with store.lock:
            problem = _check_grant(store, form)
            if problem is not None:
                return _json_response(problem[0], problem[1])
            return _json_response(200, _mint(store, instance_url))

    async def data_endpoint(request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        endpoint, handler, version, parts = _resolve(request.method, raw.decode("latin-1"))
        state.count(API, endpoint)
        kind = state.faults.draw(API, endpoint)
        token = _bearer(request)
        body = await request.body()
        if kind == "timeout":
            await asyncio.sleep(state.timeout_hold_s)
            return Response(b"upstream request timeout", 504, media_type="text/plain")
        with store.lock:
            limit_headers = {"Sforce-Limit-Info": f"api-usage={store.api_used}/{store.daily_limit}"}
            if kind is not None and kind != "lost_response":
                response = _fault_response(kind, store, token)
                if response is not None:
                    response.headers.update(limit_headers)
                    return response
            if not _token_valid(store, token):
                return _json_response(
                    401,
                    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                    limit_headers,
                )
            if store.api_used >= store.daily_limit:
                return _json_response(
                    403,
                    [
                        {
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                            "message": "TotalRequests Limit exceeded.",
                        }
                    ],
                    limit_headers,
                )
            store.api_used += 1
            call = Call(
                store=store,
                method=request.method,
                parts=parts,
                params=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                version=version,
                faults=state.faults,
            )
            reply = dispatch(handler, call)
            headers = {
                **reply.headers,
                "Sforce-Limit-Info": f"api-usage={store.api_used}/{store.daily_limit}",
            }
        state.applied(API, endpoint, request.method)
        if kind == "lost_response":
            # The call took effect; its answer is lost between Salesforce and the client.
            return Response(b"Bad Gateway", 502, media_type="text/plain")
        if reply.text is not None:
            return Response(reply.text.encode(), reply.status, headers, reply.content_type)
        if reply.status == 204 or (reply.body is None and reply.status in (201,)):
            return Response(b"", reply.status, headers)
        return _json_response(reply.status, reply.body, headers)

    async def other_endpoint(_request: Request) -> Response:
        state.count(API, "not_found")
        return _json_response(
            404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        )

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]
    return Starlette(
        routes=[
            Route("/services/oauth2/token", token_endpoint, methods=["POST"]),
            Route("/services/data", data_endpoint, methods=methods),
            Route("/services/data/{path:path}", data_endpoint, methods=methods),
            Route("/{path:path}", other_endpoint, methods=methods),
        ]
    )
