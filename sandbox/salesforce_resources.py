"""The Salesforce emulator's describe side: API versions, resources, limits, sObject describes,
and the Tooling API's CustomField create (an admin adding a field to the org's schema).
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce_call import Call, Reply, get_sobject
from sandbox.salesforce_schema import CustomFieldError, ObjectDef, describe_field
from sandbox.salesforce_values import ApiError

__all__ = [
    "MAX_VERSION",
    "MIN_VERSION",
    "h_describe",
    "h_limits",
    "h_resources",
    "h_sobject_info",
    "h_sobjects",
    "h_tooling_create",
    "h_versions",
    "release_label",
]

# The API versions the org serves: a project floor of v50.0 (Salesforce still serves v31.0 and
# later) up to the newest release, Winter '27 (v68.0). Salesforce ships three releases a year,
# each one API version up, named Winter/Spring/Summer: v50.0 was Winter '21.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_versions.htm,
# https://developer.salesforce.com/docs/platform/api/guide/api-eol-soap.html ("31.0 through 68.0")
MIN_VERSION = 50
MAX_VERSION = 68


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
    obj = get_sobject(call, call.parts[1])
    return Reply(200, {"objectDescribe": _object_summary(call, obj), "recentItems": []})


def h_describe(call: Call) -> Reply:
    obj = get_sobject(call, call.parts[1])
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
