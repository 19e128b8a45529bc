"""A Salesforce org's own field schema, read with describe, as closedloop's vendor-neutral rows.

``describe_fields(client, objects)`` reads ``GET /services/data/vXX.X/sobjects/{Object}/describe``
for every object, batched into Composite requests of up to 25 subrequests: a Composite request
counts as ONE call against the org's daily allocation, however many describes it holds
(https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html).
An object the org lacks, or the integration user cannot see, answers 404 NOT_FOUND: its entry is
None. Fields the user has no field-level security on are not in the describe at all, so a field
that exists in Setup but not here needs FLS for the integration user.

``field_row`` keeps, per describe field, what mapping validation needs
(https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm):

- ``picklist``: the ACTIVE picklist values only (``picklistValues[].active``); ``restricted``:
  ``restrictedPicklist``, where the API refuses a value outside the list
  (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/access_for_fields.htm);
- ``required`` on create: not ``nillable``, ``createable`` and not ``defaultedOnCreate``;
- ``length`` of text fields, ``createable`` / ``updateable`` for the integration user, ``custom``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from connectors.errors import AuthError, ConfigError, Fatal, Transient

if TYPE_CHECKING:
    from connectors.salesforce.client import SalesforceClient

__all__ = ["MAX_DESCRIBES_PER_CALL", "describe_fields", "field_row"]

# Composite: at most 25 subrequests per request (same source as the module docstring).
MAX_DESCRIBES_PER_CALL = 25
# Describe types whose values are text with a length.
_TEXT_TYPES = frozenset(
    {"string", "textarea", "combobox", "email", "phone", "url", "picklist", "multipicklist",
     "encryptedstring"}
)  # fmt: skip


def field_row(field: Mapping[str, Any]) -> dict[str, Any]:
    """One describe field as a vendor-neutral row (``sync.mapping.catalogue.FieldInfo``)."""
    kind = str(field.get("type") or "string")
    createable = bool(field.get("createable", False))
    values = field.get("picklistValues") or []
    picklist = [
        str(v.get("value"))
        for v in values
        if isinstance(v, Mapping) and v.get("active", True) and v.get("value") is not None
    ]
    length = field.get("length")
    return {
        "name": str(field["name"]),
        "label": field.get("label"),
        "type": kind,
        "length": int(length) if kind in _TEXT_TYPES and length else None,
        "picklist": picklist,
        "restricted": bool(field.get("restrictedPicklist", False)),
        "createable": createable,
        "updateable": bool(field.get("updateable", False)),
        "required": (
            not field.get("nillable", True)
            and createable
            and not field.get("defaultedOnCreate", False)
        ),
        "custom": bool(field.get("custom", False)),
        "field_type": None,
    }


def describe_fields(
    client: SalesforceClient, objects: Iterable[str], *, budgeted: bool = True
) -> dict[str, list[dict[str, Any]] | None]:
    """Object -> its field rows (None when the org has no such object visible to the user)."""
    names = list(dict.fromkeys(objects))
    out: dict[str, list[dict[str, Any]] | None] = {}
    for start in range(0, len(names), MAX_DESCRIBES_PER_CALL):
        chunk = names[start : start + MAX_DESCRIBES_PER_CALL]
        subrequests = [
            client.subrequest("GET", f"sobjects/{name}/describe", f"describe{i}")
            for i, name in enumerate(chunk)
        ]
        body = {"allOrNone": False, "compositeRequest": subrequests}
        answer = client.call("POST", "composite", json=body, budgeted=budgeted)
        responses = answer.get("compositeResponse") if isinstance(answer, dict) else None
        if not isinstance(responses, list) or len(responses) != len(chunk):
            raise Fatal("Salesforce describe: the composite answer does not match the request")
        for name, response in zip(chunk, responses, strict=True):
            out[name] = _rows(name, response)
    return out


def _rows(name: str, response: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    status = int(response.get("httpStatusCode") or 0)
    body = response.get("body")
    if status == 404:
        return None
    if 200 <= status < 300 and isinstance(body, Mapping):
        return [field_row(f) for f in body.get("fields") or [] if isinstance(f, Mapping)]
    first = body[0] if isinstance(body, list) and body else body
    code = str(first.get("errorCode", "")) if isinstance(first, Mapping) else ""
    message = str(first.get("message", "")) if isinstance(first, Mapping) else str(body)[:200]
    detail = f"Salesforce describe of {name}: HTTP {status} {code} {message}".rstrip()
    if status in (401, 403):
        raise AuthError(f"{detail}; give the integration user access to {name}")
    if status >= 500:
        raise Transient(detail)
    raise ConfigError(detail)
