"""The Salesforce emulator's record writes and reads: single-record REST and sObject Collections.

Single records: create, get, update, delete, and get/upsert by an external id. Collections:
create, update, upsert and delete up to 200 records a call with allOrNone rollback, and retrieve
by ids. A save runs the org's lead assignment rules (``Sforce-Auto-Assign``) and may be refused
with UNABLE_TO_LOCK_ROW: a record of a collection while the call succeeds, a single-record save
as an HTTP 400.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.salesforce_call import API, Call, Reply, dml_reply, get_sobject, not_found
from sandbox.salesforce_schema import FieldDef, ObjectDef
from sandbox.salesforce_soql import normalize_id
from sandbox.salesforce_values import ApiError, DmlError, FieldTypeError

__all__ = [
    "MAX_COLLECTION_RECORDS",
    "MAX_RETRIEVE_IDS",
    "h_collection_create",
    "h_collection_delete",
    "h_collection_retrieve",
    "h_collection_update",
    "h_collection_upsert",
    "h_create",
    "h_delete",
    "h_get",
    "h_get_by_ext",
    "h_update",
    "h_upsert",
]

MAX_COLLECTION_RECORDS = 200
MAX_RETRIEVE_IDS = 2_000
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    "fields": [],
}


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


# ------------------------------------------------------------------------------ single records


def _assign(call: Call, sobject: str, record_id: str) -> None:
    """Lead assignment rules as the request's ``Sforce-Auto-Assign`` header says (absent:
    TRUE, the active rule), after a create or update (``SalesforceStore.assign``)."""
    call.store.assign(sobject, record_id, call.headers.get("sforce-auto-assign"))


def h_create(call: Call) -> Reply:
    obj = get_sobject(call, call.parts[1])
    values = _record_body(call, obj)
    try:
        _check_lock(call, obj, values)
        record_id = call.store.create(obj.name, values)
        _assign(call, obj.name, record_id)
    except DmlError as exc:
        return dml_reply(exc)
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
        raise not_found()
    if row.get("IsDeleted"):
        raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return row


def h_get(call: Call) -> Reply:
    obj = get_sobject(call, call.parts[1])
    row = _live_row(call, obj, call.parts[2])
    return Reply(200, _record_json(call, obj, row, _fields_param(obj, call.params.get("fields"))))


def h_update(call: Call) -> Reply:
    obj = get_sobject(call, call.parts[1])
    row = _live_row(call, obj, call.parts[2])
    values = _record_body(call, obj)
    try:
        _check_lock(call, obj, {**values, "Id": row["Id"]})
        call.store.update(obj.name, row["Id"], values)
        _assign(call, obj.name, row["Id"])
    except DmlError as exc:
        return dml_reply(exc)
    return Reply(204)


def h_delete(call: Call) -> Reply:
    obj = get_sobject(call, call.parts[1])
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
    obj = get_sobject(call, call.parts[1])
    f = _ext_field(obj, call.parts[2])
    matches = call.store.find(obj.name, f.name, call.parts[3])
    if not matches:
        raise not_found()
    if len(matches) > 1:
        return Reply(300, [f"{call.base}/sobjects/{obj.name}/{m}" for m in matches])
    row = call.store.get(obj.name, matches[0])
    assert row is not None
    return Reply(200, _record_json(call, obj, row, _fields_param(obj, call.params.get("fields"))))


def h_upsert(call: Call) -> Reply:
    obj = get_sobject(call, call.parts[1])
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
        return dml_reply(exc)
    # API v46.0+ answers 200 with a body for an update (204 before); we accept only v50.0+.
    return Reply(
        201 if created else 200,
        {"id": record_id, "success": True, "errors": [], "created": created},
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
    obj = get_sobject(call, call.parts[2])
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
    obj = get_sobject(call, call.parts[2])
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
