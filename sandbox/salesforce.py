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

The handlers live by resource: ``salesforce_call`` (``Call``, ``Reply``), ``salesforce_resources``
(versions, limits, describes, Tooling), ``salesforce_records`` (single records and sObject
Collections), ``salesforce_queries`` (SOQL), ``salesforce_bulk_api`` (Bulk API 2.0) and
``salesforce_oauth`` (the token endpoint). This module routes each call to its handler, runs the
composite resource (whose subrequests go through the same routes) and serves the app.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import credentials
from sandbox.core import SandboxState
from sandbox.salesforce_bulk_api import (
    h_bulk_ingest_create,
    h_bulk_ingest_results,
    h_bulk_ingest_state,
    h_bulk_ingest_upload,
    h_bulk_job_delete,
    h_bulk_job_get,
    h_bulk_query_abort,
    h_bulk_query_create,
    h_bulk_query_results,
)
from sandbox.salesforce_call import API, JSON_TYPE, Call, Handler, Reply, dml_reply, not_found
from sandbox.salesforce_oauth import check_grant, mint
from sandbox.salesforce_queries import h_query, h_query_all, h_query_more
from sandbox.salesforce_records import (
    h_collection_create,
    h_collection_delete,
    h_collection_retrieve,
    h_collection_update,
    h_collection_upsert,
    h_create,
    h_delete,
    h_get,
    h_get_by_ext,
    h_update,
    h_upsert,
)
from sandbox.salesforce_resources import (
    MAX_VERSION,
    MIN_VERSION,
    h_describe,
    h_limits,
    h_resources,
    h_sobject_info,
    h_sobjects,
    h_tooling_create,
    h_versions,
)
from sandbox.salesforce_store import (
    ApiError,
    DmlError,
    SalesforceStore,
    StoreClock,
)

__all__ = ["API", "SalesforceStore", "StoreClock", "build_app"]

MAX_SUBREQUESTS = 25
MAX_COMPOSITE_COLLECTIONS = 5
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_HALTED = [
    {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same "
        "transaction failed.",
    }
]


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
    raise not_found()


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
            return dml_reply(exc)


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
            problem = check_grant(store, form)
            if problem is not None:
                return _json_response(problem[0], problem[1])
            return _json_response(200, mint(store, instance_url))

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
