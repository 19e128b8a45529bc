"""The Marketo emulator: a Starlette app serving a strict subset of Marketo's REST API.

Paths, parameters and response fields follow Adobe's Swagger description of the API
(identity, lead database activities and paging tokens, leads, static lists, bulk activity
export, daily usage). As in Marketo, errors are HTTP 200 with ``success: false`` and string
codes: 600/601/602 (token missing/invalid/expired; the token travels only in the Authorization
header since the ``access_token`` query parameter was removed on 31 August 2026), 606 (more than
``rate_max`` calls in a rolling ``rate_window_s``), 607 (daily quota), 615 (more than
``max_concurrent`` calls in flight), 1003 (invalid parameter values, too many matching leads),
1006 (unknown field), 1011 (a field that cannot be a filterType), 1013 (unknown list), 1029
(export queue full, job already queued, daily export quota spent). A call answered with an
error does not count against the rate limit or the daily quota. Only two HTTP errors come from
the API itself: 413 (a body over 1 MB) and 414 (a URI over 8 KB); an export file that is not
ready is a plain-text 404. The file endpoint honours a single ``Range: bytes=N-`` (or ``N-M``)
with 206 and ``Content-Range`` (416 past the end), for resumable downloads.

Bulk exports follow Marketo's queue: at most ``export_queue_limit`` jobs queued or processing,
at most ``export_max_processing`` processing at once, and ``export_daily_bytes`` of files a day
(Central time) before create and enqueue answer 1029. An API user's jobs of the past 7 days are
listed by status (``GET /bulk/v1/activities/export.json?status=Created``). Faults may be scoped to
one endpoint (``marketo/export.create:lost_response=0.5``); ``lost_response`` applies the call and
answers HTTP 502, as when a gateway loses Marketo's answer.

Activity pages are cut on fixed time slices (``page_slice``) so that, as in Marketo, a page may
be empty while ``moreResult`` is true; the client must keep paging until it is false. An empty
page has no ``result`` member at all, another Marketo quirk clients must survive.

Poison records, a test hook only: every activity the store makes (``add_activity``, the seed
world) is well-formed, as Marketo's Swagger ``Activity`` requires. ``MarketoStore.plant_activity``
puts an activity in the log exactly as given (no id, an unreadable ``activityDate``, a NUL in a
text field ...), at a chosen place in time, and both the REST pages and the bulk export files
serve it like any other; nothing else in the emulator produces one.

The instance itself (data, tokens, limits, exports) is ``marketo_store.MarketoStore``; this module
is the HTTP side: routes, the checks and faults around every call, the identity endpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox import credentials
from sandbox.core import SandboxState
from sandbox.hubspot_clock import to_ms
from sandbox.marketo_errors import HttpError, MarketoError
from sandbox.marketo_limits import SCOPE
from sandbox.marketo_schema import ACTIVITY_TYPES
from sandbox.marketo_store import MarketoStore, encode_token, parse_ids, parse_time

__all__ = ["HttpError", "MarketoError", "MarketoStore", "build_app"]

API = "marketo"
# https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes
MAX_BODY_BYTES = 1024 * 1024
MAX_URI_BYTES = 8 * 1024


Handler = Callable[[Request, MarketoStore], Awaitable[dict[str, Any] | Response]]


def _store(state: SandboxState) -> MarketoStore:
    store = state.vendors.get(API)
    if not isinstance(store, MarketoStore):
        store = MarketoStore()
        state.vendors[API] = store
    return store


def _failure(store: MarketoStore, code: str, message: str) -> Response:
    return JSONResponse(
        {
            "requestId": store.request_id(),
            "success": False,
            "errors": [{"code": code, "message": message}],
        }
    )


def _token_of(request: Request) -> str:
    # Only the Authorization header: Marketo removed the access_token query parameter on
    # 31 August 2026 (https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication).
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return ""


async def _http_limits(request: Request) -> None:
    """Raise the HTTP errors Marketo answers before looking at a call: 414 and 413."""
    uri = request.url.path + ("?" + request.url.query if request.url.query else "")
    if len(uri.encode()) > MAX_URI_BYTES:
        raise HttpError(414, "Request-URI Too Long")
    if len(await request.body()) > MAX_BODY_BYTES:
        raise HttpError(413, "Request Entity Too Large")


async def _fault(state: SandboxState, store: MarketoStore, kind: str, token: str) -> Response:
    if kind == "timeout":
        await asyncio.sleep(state.timeout_hold_s)
        return Response("Gateway Timeout", status_code=504, media_type="text/plain")
    if kind == "429":
        window = f"{store.rate_window_s:g}"
        return _failure(
            store, "606", f"Max rate limit '{store.rate_max}' exceeded with in '{window}' secs"
        )
    if kind == "403":
        return _failure(store, "607", "Daily quota reached")
    if kind == "expired_token":
        store.revoke(token)
        return _failure(store, "602", "Access token expired")
    status = int(kind)
    text = "Internal Server Error" if status == 500 else "Service Temporarily Unavailable"
    return Response(text, status_code=status, media_type="text/plain")


class _CutOff(ConnectionResetError):
    """The connection of a ``cut_off`` answer drops here (uvicorn closes it unfinished)."""


def _cut_off(answer: Response) -> Response:
    """``answer`` announced whole (its Content-Length) but only its first half sent before
    the connection drops: a download breaking off mid-transfer."""
    body = bytes(answer.body)

    async def half() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise _CutOff("cut_off fault: the transfer breaks off")

    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    headers["content-length"] = str(len(body))
    return StreamingResponse(half(), status_code=answer.status_code, headers=headers)


def _wrap(
    state: SandboxState, endpoint: str, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Run one vendor call: concurrency, count, fault, token, rate limits, then the handler."""

    async def run(request: Request) -> Response:
        store = _store(state)
        admitted = store.enter()
        try:
            state.count(API, endpoint)
            kind = state.faults.draw(API, endpoint)
            if not admitted:
                return _failure(store, "615", "Concurrent access limit reached")
            token = _token_of(request)
            if kind is not None and kind not in ("lost_response", "cut_off"):
                return await _fault(state, store, kind, token)
            answer = await _answer(request, store, token, handler)
            state.applied(API, endpoint, request.method)
            if kind == "lost_response":
                # The call took effect; its answer is lost between Marketo and the client.
                return Response("Bad Gateway", status_code=502, media_type="text/plain")
            if kind == "cut_off":
                return _cut_off(answer)
            return answer
        finally:
            store.leave()

    return run


async def _answer(request: Request, store: MarketoStore, token: str, handler: Handler) -> Response:
    """The token, the limits, then the handler: Marketo's answer to an admitted call."""
    taken = False
    try:
        await _http_limits(request)
        store.check_token(token)
        store.take_call()
        taken = True
        answer = await handler(request, store)
    except MarketoError as exc:
        if taken:
            store.refund()
        return _failure(store, exc.code, exc.message)
    except HttpError as exc:
        return Response(exc.text, status_code=exc.status, media_type="text/plain")
    if isinstance(answer, Response):
        return answer
    return JSONResponse({"requestId": store.request_id(), "success": True, **answer})


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise MarketoError("609", "Invalid JSON") from None
    if not isinstance(body, dict):
        raise MarketoError("609", "Invalid JSON")
    return body


def _list_id(request: Request) -> int:
    raw = request.path_params["list_id"]
    if not str(raw).isdigit():
        raise MarketoError("1003", f"Invalid listId '{raw}'")
    return int(raw)


def _params(request: Request) -> dict[str, str]:
    """Query parameters; a repeated one (``activityTypeIds=1&activityTypeIds=12``, as Marketo's
    docs write them) joins into one comma-separated value, as a comma-separated one is sent."""
    return {key: ",".join(request.query_params.getlist(key)) for key in request.query_params}


async def _usage(_request: Request, store: MarketoStore) -> dict[str, Any]:
    return store.usage()


async def _activity_types(_request: Request, _marketo: MarketoStore) -> dict[str, Any]:
    return {"result": list(ACTIVITY_TYPES.values())}


async def _paging_token(request: Request, _marketo: MarketoStore) -> dict[str, Any]:
    since = request.query_params.get("sinceDatetime")
    if not since:
        raise MarketoError("701", "sinceDatetime cannot be blank")
    return {"nextPageToken": encode_token(to_ms(parse_time(since, "sinceDatetime")), 0)}


async def _activities(request: Request, store: MarketoStore) -> dict[str, Any]:
    with store.lock:
        return store.activities_page(_params(request))


async def _leads(request: Request, store: MarketoStore) -> dict[str, Any]:
    with store.lock:
        return store.leads_by_filter(_params(request))


async def _programs(request: Request, store: MarketoStore) -> dict[str, Any]:
    with store.lock:
        return store.programs_page(_params(request))


async def _lists(request: Request, store: MarketoStore) -> dict[str, Any]:
    with store.lock:
        return store.lists_page(_params(request))


async def _list_leads(request: Request, store: MarketoStore) -> dict[str, Any]:
    list_id = _list_id(request)
    if request.method == "GET":
        with store.lock:
            return store.list_members(list_id, _params(request))
    body = await _json_body(request)
    ids = [int(i["id"]) for i in body.get("input", []) if isinstance(i, dict) and "id" in i]
    ids += parse_ids(_params(request).get("id"), "id")
    with store.lock:
        return store.change_list(list_id, ids, add=request.method == "POST")


async def _export_jobs(request: Request, store: MarketoStore) -> dict[str, Any]:
    with store.lock:
        return store.list_exports(_params(request))


async def _export_create(request: Request, store: MarketoStore) -> dict[str, Any]:
    body = await _json_body(request)
    with store.lock:
        return store.create_export(body)


def _export_action(action: str) -> Handler:
    async def run(request: Request, store: MarketoStore) -> dict[str, Any] | Response:
        export_id = request.path_params["export_id"]
        with store.lock:
            if action == "enqueue":
                return store.enqueue_export(export_id)
            if action == "status":
                return store.export_status(export_id)
            if action == "cancel":
                return store.cancel_export(export_id)
            content = store.export_file(export_id)
        return _file_part(content, request.headers.get("range"))

    return run


def _file_part(content: bytes, wanted: str | None) -> Response:
    """An export file, or the part a ``Range: bytes=N-`` / ``bytes=N-M`` header asks for (206;
    416 past the end), as Marketo's file endpoints allow for resumable retrieval."""
    size = len(content)
    unit, _, span = (wanted or "").partition("=")
    first, _, last = span.partition("-")
    if unit.strip() != "bytes" or not first.strip().isdigit() or "," in span:
        return Response(content, media_type="text/csv")  # no (single byte) range: all of it
    start = int(first)
    end = min(int(last), size - 1) if last.strip().isdigit() else size - 1
    if start >= size or end < start:
        return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return Response(
        content[start : end + 1],
        status_code=206,
        media_type="text/csv",
        headers={"Content-Range": f"bytes {start}-{end}/{size}"},
    )


def _identity(state: SandboxState) -> Callable[[Request], Awaitable[Response]]:
    async def token(request: Request) -> Response:
        store = _store(state)
        state.count(API, "identity.token")
        kind = state.faults.draw(API, "identity.token")
        if kind in ("500", "503"):
            return await _fault(state, store, kind, "")
        params = request.query_params
        if params.get("grant_type") != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                status_code=400,
            )
        if (
            params.get("client_id") != credentials.MARKETO_CLIENT_ID
            or params.get("client_secret") != credentials.MARKETO_CLIENT_SECRET
        ):
            return JSONResponse(
                {"error": "unauthorized", "error_description": "Bad client credentials"},
                status_code=401,
            )
        access, remaining = store.issue_token()
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": remaining,
                "scope": SCOPE,
            }
        )

    return token


def build_app(state: SandboxState) -> Starlette:
    """The Marketo API app over ``state.vendors["marketo"]`` (created here if absent)."""
    _store(state)
    exports = "/bulk/v1/activities/export"
    routes = [
        Route("/identity/oauth/token", _identity(state), methods=["GET", "POST"]),
        Route(
            "/rest/v1/activities/types.json",
            _wrap(state, "activities.types", _activity_types),
            methods=["GET"],
        ),
        Route(
            "/rest/v1/activities/pagingtoken.json",
            _wrap(state, "activities.pagingtoken", _paging_token),
            methods=["GET"],
        ),
        Route("/rest/v1/activities.json", _wrap(state, "activities", _activities), methods=["GET"]),
        Route("/rest/v1/leads.json", _wrap(state, "leads", _leads), methods=["GET"]),
        Route("/rest/v1/lists.json", _wrap(state, "lists", _lists), methods=["GET"]),
        Route("/rest/asset/v1/programs.json", _wrap(state, "programs", _programs), methods=["GET"]),
        Route("/rest/v1/stats/usage.json", _wrap(state, "stats.usage", _usage), methods=["GET"]),
        Route(
            "/rest/v1/lists/{list_id}/leads.json",
            _wrap(state, "lists.leads", _list_leads),
            methods=["GET", "POST", "DELETE"],
        ),
        Route(f"{exports}.json", _wrap(state, "export.jobs", _export_jobs), methods=["GET"]),
        Route(
            f"{exports}/create.json",
            _wrap(state, "export.create", _export_create),
            methods=["POST"],
        ),
        Route(
            f"{exports}/{{export_id}}/enqueue.json",
            _wrap(state, "export.enqueue", _export_action("enqueue")),
            methods=["POST"],
        ),
        Route(
            f"{exports}/{{export_id}}/status.json",
            _wrap(state, "export.status", _export_action("status")),
            methods=["GET"],
        ),
        Route(
            f"{exports}/{{export_id}}/cancel.json",
            _wrap(state, "export.cancel", _export_action("cancel")),
            methods=["POST"],
        ),
        Route(
            f"{exports}/{{export_id}}/file.json",
            _wrap(state, "export.file", _export_action("file")),
            methods=["GET"],
        ),
    ]
    return Starlette(routes=routes)
