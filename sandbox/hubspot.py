"""The HubSpot emulator: a Starlette app serving a strict subset of HubSpot's public API.

Served (plain HTTP, bearer auth with ``credentials.HUBSPOT_TOKEN`` or a token minted by
``POST /oauth/v1/token``): CRM objects v3 (CRUD, batch create/read/update/upsert/archive,
search), properties, owners, lists v3 memberships, associations v4 batch read/create, timeline
events, custom behavioral events (one or a batch), and the marketing read side (legacy e-mail
events, forms and form submissions). Data and validation live in ``hubspot_store.PortalData``;
this module adds what HubSpot does around every call: call counting and injected faults
(``core.SandboxState``), token checks, and the rate limits by app type
(https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details):

- the private app (``credentials.HUBSPOT_TOKEN``): ``rate_limit_max`` calls per rolling 10 s
  and ``daily_limit`` a day for the account, with every ``X-HubSpot-RateLimit-*`` header;
- the public (OAuth) app: ``oauth_rate_limit_max`` (110) per 10 s per account it is installed
  in, shared by all its tokens, no daily limit and no ``Daily`` headers;
- CRM search: ``search_per_second`` (5) per second per account, outside the 10-s window, and
  its answers carry no rate-limit headers; over the limit it answers 429 ``SECONDLY``.

An injected ``429`` fault answers as that limiter would answer the caller: ``SECONDLY`` without
headers for a CRM search, else ``TEN_SECONDLY_ROLLING`` with the caller's app's headers.

The portal itself (data, tokens, rate-limit windows) is ``hubspot_account.HubSpotStore``; this
module is the HTTP side: routes, handlers, faults and the token endpoint.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.core import SandboxState
from sandbox.hubspot_account import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    HubSpotStore,
    is_oauth,
)
from sandbox.hubspot_schema import ASSOCIATION_TYPES, OBJECT_TYPE_IDS
from sandbox.hubspot_store import TIMELINE_BATCH_LIMIT, HubSpotApiError
from sandbox.hubspot_subscriptions import SubscriptionError

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "REFRESH_TOKEN",
    "HubSpotStore",
    "build_app",
]

API = "hubspot"


# ------------------------------------------------------------------------ the app
Handler = Callable[[Request, HubSpotStore], Awaitable[tuple[int, Any]]]


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status, headers, "application/json"
    )


def _error(
    status: int, category: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return _json(
        status, HubSpotApiError(status, category, message, **extra).body(_correlation_id()), headers
    )


_RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


def _rate_limited(policy: str, token: str, search: bool, headers: dict[str, str]) -> Response:
    """A 429 as HubSpot's limiter sends it to ``token``'s app type (or to a CRM search)."""
    app = "oauth" if is_oauth(token) else "private-app"
    body = {
        "status": "error",
        "message": _RATE_LIMIT_MESSAGES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": _correlation_id(),
        "policyName": policy,
        "requestId": _correlation_id(),
        "groupName": f"publicapi:{'search' if search else app}:sandbox",
    }
    return _json(429, body, headers)


async def _fault(
    state: SandboxState, kind: str, store: HubSpotStore, token: str, *, search: bool = False
) -> Response:
    if kind == "timeout":
        await asyncio.sleep(state.timeout_hold_s)
        return Response("upstream request timeout", status_code=504, media_type="text/plain")
    if kind == "429":
        # What the real limiter answers this caller: CRM search its per-second policy with no
        # headers; other calls the 10-s window of the caller's app, used up, with that app's
        # headers (no Daily ones for an OAuth app).
        if search:
            return _rate_limited("SECONDLY", token, True, {})
        return _rate_limited("TEN_SECONDLY_ROLLING", token, False, store.exhausted_headers(token))
    if kind == "403":
        return _error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call.",
        )
    if kind == "expired_token":
        store.revoke(token)
        return _error(
            401,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired 0 second(s) ago.",
        )
    status = int(kind)
    return _error(
        status, "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE", "internal error"
    )


def _wrap(
    state: SandboxState,
    endpoint: str | Callable[[Request], str],
    handler: Handler,
    *,
    search: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """Run one vendor call: count, fault, auth, rate limit, then the handler under the lock."""

    async def run(request: Request) -> Response:
        store = _store(state)
        name = endpoint(request) if callable(endpoint) else endpoint
        state.count(API, name)
        kind = state.faults.draw(API, name)
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if kind is not None and kind != "lost_response":
            return await _fault(state, kind, store, token, search=search)
        verdict = store.token_state(token) if token else "missing"
        if verdict == "expired":
            return _error(
                401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired."
            )
        if verdict != "valid":
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        breached, headers = store.take_call(token, search=search)
        if breached is not None:
            return _rate_limited(breached, token, search, headers)
        try:
            status, body = await handler(request, store)
        except HubSpotApiError as exc:
            return _json(exc.status, exc.body(_correlation_id()), headers)
        state.applied(API, name, request.method)
        if kind == "lost_response":
            # The call took effect; its answer is lost between HubSpot and the client.
            return Response("Bad Gateway", status_code=502, media_type="text/plain")
        return _json(status, body, headers)

    return run


def _store(state: SandboxState) -> HubSpotStore:
    store = state.vendors.get(API)
    if not isinstance(store, HubSpotStore):
        store = HubSpotStore()
        state.vendors[API] = store
    return store


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except ValueError:
        raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON on line 1.") from None


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object.")
    return body


def _wanted(request: Request) -> list[str] | None:
    values = [v for raw in request.query_params.getlist("properties") for v in raw.split(",") if v]
    return values or None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise HubSpotApiError(400, "VALIDATION_ERROR", f"Invalid {name} {raw!r}.") from None


def _object_type(request: Request) -> str:
    object_type: str = request.path_params["object_type"]
    if object_type not in OBJECT_TYPE_IDS:
        raise HubSpotApiError(
            400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}"
        )
    return object_type


def _type_name(suffix: str) -> Callable[[Request], str]:
    return lambda request: f"{request.path_params['object_type']}.{suffix}"


# --- handlers (each returns (status, JSON body or None)) ---
async def _list_objects(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    with store.lock:
        return 200, store.data.list_objects(
            object_type,
            _int(request, "limit", 10),
            request.query_params.get("after"),
            _wanted(request),
            _flag(request, "archived"),
        )


async def _create_object(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    body = _object_body(await _body(request))
    with store.lock:
        return 201, store.data.create_one(object_type, body)


async def _get_object(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    with store.lock:
        return 200, store.data.get_one(
            object_type,
            request.path_params["object_id"],
            request.query_params.get("idProperty"),
            _wanted(request),
            _flag(request, "archived"),
        )


async def _update_object(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    body = _object_body(await _body(request))
    with store.lock:
        return 200, store.data.update_one(
            object_type,
            request.path_params["object_id"],
            request.query_params.get("idProperty"),
            body,
        )


async def _archive_object(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    with store.lock:
        store.data.archive_one(object_type, request.path_params["object_id"])
    return 204, None


async def _batch(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    action = request.path_params["action"]
    body = _object_body(await _body(request))
    data = store.data
    with store.lock:
        if action == "create":
            return data.batch_create(object_type, body)
        if action == "read":
            return data.batch_read(object_type, body, _flag(request, "archived"))
        if action == "update":
            return data.batch_update(object_type, body)
        if action == "upsert":
            return data.batch_upsert(object_type, body)
        if action == "archive":
            data.batch_archive(object_type, body)
            return 204, None
    raise HubSpotApiError(404, "OBJECT_NOT_FOUND", f"Unknown batch action {action}.")


async def _search(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    body = _object_body(await _body(request))
    with store.lock:
        return 200, store.data.search(object_type, body)


async def _properties(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    if request.method == "POST":
        body = _object_body(await _body(request))
        with store.lock:
            return 201, store.data.create_property(object_type, body)
    with store.lock:
        return 200, {"results": list(store.data.properties[object_type].values())}


async def _property(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    object_type = _object_type(request)
    with store.lock:
        return 200, store.data.get_property(object_type, request.path_params["name"])


async def _owners(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    with store.lock:
        return 200, store.data.owners_page(
            _int(request, "limit", 100),
            request.query_params.get("after"),
            request.query_params.get("email"),
        )


async def _owner(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    with store.lock:
        return 200, store.data.get_owner(request.path_params["owner_id"])


def _channel(request: Request) -> None:
    if request.query_params.get("channel") != "EMAIL":
        raise HubSpotApiError(400, "VALIDATION_ERROR", "channel is required (EMAIL).")


def _subscriptions(action: str) -> Handler:
    """A communication-preferences endpoint over ``store.data.subscriptions``."""

    async def handle(request: Request, store: HubSpotStore) -> tuple[int, Any]:
        body = await _body(request) if request.method == "POST" else None
        if action.startswith("v4_") and action not in ("v4_definitions", "v4_write"):
            _channel(request)
        with store.lock:
            subs = store.data.subscriptions
            try:
                if action == "v3_status":
                    return 200, subs.v3_status(request.path_params["email"])
                if action in ("v3_subscribe", "v3_unsubscribe"):
                    return 200, subs.v3_change(body, subscribe=action == "v3_subscribe")
                method = getattr(subs, action)
                return 200, method(body) if body is not None else method()
            except SubscriptionError as exc:
                raise HubSpotApiError(exc.status, exc.category, exc.message) from None

    return handle


async def _create_list(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    body = _object_body(await _body(request))
    with store.lock:
        return 200, store.data.create_list(body)


async def _memberships(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    with store.lock:
        return 200, store.data.list_memberships(
            request.path_params["list_id"],
            _int(request, "limit", 100),
            request.query_params.get("after"),
        )


async def _change_membership(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    body = await _body(request)
    with store.lock:
        return 200, store.data.change_membership(
            request.path_params["list_id"], body, add=request.path_params["action"] == "add"
        )


async def _association_batch(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    source = request.path_params["from_type"]
    target = request.path_params["to_type"]
    for name in (source, target):
        if name not in OBJECT_TYPE_IDS:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}"
            )
    body = _object_body(await _body(request))
    with store.lock:
        if request.path_params["action"] == "read":
            return store.data.associations_read(source, target, body)
        if (source, target) not in ASSOCIATION_TYPES:
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", f"{source} cannot be associated with {target}."
            )
        return store.data.associations_create(source, target, body)


async def _timeline_one(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    body = _object_body(await _body(request))
    with store.lock:
        return 201, store.data.timeline_event(body)


async def _timeline_batch(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    body = _object_body(await _body(request))
    inputs = store.data._check_batch(body.get("inputs"), TIMELINE_BATCH_LIMIT)
    started = store.clock.now()
    with store.lock:
        results = [store.data.timeline_event(item) for item in inputs]
    return 201, {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started.isoformat().replace("+00:00", "Z"),
        "completedAt": store.clock.now().isoformat().replace("+00:00", "Z"),
    }


async def _behavioral_event(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    body = _object_body(await _body(request))
    with store.lock:
        store.data.behavioral_event(body)
    return 204, None


async def _behavioral_batch(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    body = _object_body(await _body(request))
    with store.lock:
        store.data.behavioral_event_batch(body)
    return 204, None


async def _email_events(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    with store.lock:
        return 200, store.data.email_events_page(dict(request.query_params))


async def _forms(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    with store.lock:
        return 200, store.data.forms_page(
            _int(request, "limit", 20), request.query_params.get("after")
        )


async def _submissions(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    with store.lock:
        return 200, store.data.submissions_page(
            request.path_params["form_id"],
            _int(request, "limit", 20),
            request.query_params.get("after"),
        )


def _token_endpoint(state: SandboxState) -> Callable[[Request], Awaitable[Response]]:
    async def token(request: Request) -> Response:
        store = _store(state)
        state.count(API, "oauth.token")
        kind = state.faults.draw(API, "oauth.token")
        if kind in ("500", "503"):
            return await _fault(state, kind, store, "")
        # urlencoded by hand: Starlette's form parser needs python-multipart.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"status": "BAD_GRANT_TYPE", "message": "unsupported grant_type"})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return _json(
                400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"}
            )
        if form.get("refresh_token") != REFRESH_TOKEN:
            return _json(
                400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
            )
        return _json(
            200,
            {
                "token_type": "bearer",
                "refresh_token": REFRESH_TOKEN,
                "access_token": store.mint_token(),
                "expires_in": store.token_lifetime_s,
            },
        )

    return token


_VERBS = {"GET": "get", "PATCH": "update", "DELETE": "archive"}


def build_app(state: SandboxState) -> Starlette:
    """The HubSpot API app over ``state.vendors["hubspot"]`` (created here if absent)."""
    _store(state)
    objects = "/crm/v3/objects/{object_type}"
    routes = [
        Route("/oauth/v1/token", _token_endpoint(state), methods=["POST"]),
        Route(
            f"{objects}/batch/{{action}}",
            _wrap(
                state,
                lambda r: f"{r.path_params['object_type']}.batch_{r.path_params['action']}",
                _batch,
            ),
            methods=["POST"],
        ),
        Route(
            f"{objects}/search",
            _wrap(state, _type_name("search"), _search, search=True),
            methods=["POST"],
        ),
        Route(
            objects,
            _wrap(
                state,
                lambda r: (
                    f"{r.path_params['object_type']}.{'create' if r.method == 'POST' else 'list'}"
                ),
                _list_or_create,
            ),
            methods=["GET", "POST"],
        ),
        Route(
            f"{objects}/{{object_id}}",
            _wrap(
                state,
                lambda r: f"{r.path_params['object_type']}.{_VERBS[r.method]}",
                _one,
            ),
            methods=["GET", "PATCH", "DELETE"],
        ),
        Route(
            "/crm/v3/properties/{object_type}",
            _wrap(
                state,
                lambda r: "properties.create" if r.method == "POST" else "properties.list",
                _properties,
            ),
            methods=["GET", "POST"],
        ),
        Route(
            "/crm/v3/properties/{object_type}/{name}",
            _wrap(state, "properties.get", _property),
            methods=["GET"],
        ),
        Route("/crm/v3/owners/", _wrap(state, "owners.list", _owners), methods=["GET"]),
        Route("/crm/v3/owners", _wrap(state, "owners.list", _owners), methods=["GET"]),
        Route("/crm/v3/owners/{owner_id}", _wrap(state, "owners.get", _owner), methods=["GET"]),
        *_subscription_routes(state),
        Route("/crm/v3/lists/", _wrap(state, "lists.create", _create_list), methods=["POST"]),
        Route("/crm/v3/lists", _wrap(state, "lists.create", _create_list), methods=["POST"]),
        Route(
            "/crm/v3/lists/{list_id}/memberships",
            _wrap(state, "lists.memberships", _memberships),
            methods=["GET"],
        ),
        Route(
            "/crm/v3/lists/{list_id}/memberships/{action:str}",
            _wrap(
                state, lambda r: f"lists.memberships_{r.path_params['action']}", _change_membership
            ),
            methods=["PUT"],
        ),
        Route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/{action}",
            _wrap(
                state, lambda r: f"associations.batch_{r.path_params['action']}", _association_batch
            ),
            methods=["POST"],
        ),
        Route(
            "/integrators/timeline/v3/events",
            _wrap(state, "timeline.create", _timeline_one),
            methods=["POST"],
        ),
        Route(
            "/integrators/timeline/v3/events/batch/create",
            _wrap(state, "timeline.batch_create", _timeline_batch),
            methods=["POST"],
        ),
        Route(
            "/crm/v3/timeline/events",
            _wrap(state, "timeline.create", _timeline_one),
            methods=["POST"],
        ),
        Route(
            "/crm/v3/timeline/events/batch/create",
            _wrap(state, "timeline.batch_create", _timeline_batch),
            methods=["POST"],
        ),
        Route("/events/v3/send", _wrap(state, "events.send", _behavioral_event), methods=["POST"]),
        Route(
            "/events/v3/send/batch",
            _wrap(state, "events.send.batch", _behavioral_batch),
            methods=["POST"],
        ),
        Route(
            "/email/public/v1/events", _wrap(state, "email.events", _email_events), methods=["GET"]
        ),
        Route("/marketing/v3/forms/", _wrap(state, "forms.list", _forms), methods=["GET"]),
        Route("/marketing/v3/forms", _wrap(state, "forms.list", _forms), methods=["GET"]),
        Route(
            "/form-integrations/v1/submissions/forms/{form_id}",
            _wrap(state, "forms.submissions", _submissions),
            methods=["GET"],
        ),
    ]
    return Starlette(routes=routes)


def _subscription_routes(state: SandboxState) -> list[Route]:
    v3, v4 = "/communication-preferences/v3", "/communication-preferences/v4"
    table = [
        (f"{v3}/definitions", "GET", "v3_definitions"),
        (f"{v3}/status/email/{{email}}", "GET", "v3_status"),
        (f"{v3}/subscribe", "POST", "v3_subscribe"),
        (f"{v3}/unsubscribe", "POST", "v3_unsubscribe"),
        (f"{v4}/definitions", "GET", "v4_definitions"),
        (f"{v4}/statuses/batch/read", "POST", "v4_read"),
        (f"{v4}/statuses/batch/write", "POST", "v4_write"),
        (f"{v4}/statuses/batch/unsubscribe-all", "POST", "v4_unsubscribe_all"),
        (f"{v4}/statuses/batch/unsubscribe-all/read", "POST", "v4_unsubscribe_all_read"),
    ]
    return [
        Route(path, _wrap(state, f"subscriptions.{action}", _subscriptions(action)),
              methods=[method])
        for path, method, action in table
    ]  # fmt: skip


async def _list_or_create(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    if request.method == "POST":
        return await _create_object(request, store)
    return await _list_objects(request, store)


async def _one(request: Request, store: HubSpotStore) -> tuple[int, Any]:
    if request.method == "GET":
        return await _get_object(request, store)
    if request.method == "PATCH":
        return await _update_object(request, store)
    return await _archive_object(request, store)
