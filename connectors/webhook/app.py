"""The receiver: ``POST /hooks/{source}`` turns signed activity JSON into committed touches.

Checks, in order, each answered with a JSON body ``{"error": <code>, "reason": <text>}``:

==========  =====================================================================
404         unknown source (no ``webhook`` connection of that name)
415         Content-Type is not ``application/json`` (charset, if given, utf-8)
413         body larger than the source's ``max_body_bytes`` (checked against
            Content-Length first, then counted while streaming: never buffered
            beyond the limit), or more than ``max_items`` items
401         timestamp or signature missing, malformed, stale or wrong
400         body not UTF-8, not JSON, not an object or a list, or an empty list
==========  =====================================================================

Once authenticated, every item is judged on its own. Valid items are committed through the
injected ``commit`` callable and invalid ones go to ``dead_letter``; only after both returned
does the sender get its answer (``{"accepted": n, "rejected": m, "errors": [...]}``):

- 200: every item committed.
- 207 Multi-Status: some items committed, some refused (listed by index with a reason). It is a
  2xx on purpose: the good items are safely stored, so the sender must not retry the batch,
  and retrying would not fix the bad ones. 202 would wrongly say "not processed yet".
- 422: no item was valid (all dead-lettered); the sender should fix its payload.
- 503 with Retry-After: the ledger could not commit; nothing is acknowledged, retry later.

Bodies that fail after authentication (not UTF-8, not JSON) are dead-lettered too; requests that
fail authentication are only logged, so strangers cannot fill the ledger. Signatures, secrets and
bodies never appear in logs.

An exact re-delivery inside the tolerance window is answered from the ``ReplayCache`` without a
second commit; outside the window it is refused as stale. Either way the touch key in the ledger
is what guarantees that a touch is never stored twice.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.base import Touch
from connectors.webhook.payload import ItemReject, jsonable, parse_item, reject_key
from connectors.webhook.settings import WebhookSettings
from connectors.webhook.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CachedAnswer,
    ReplayCache,
    SignatureError,
    verify,
)

__all__ = ["Commit", "DeadLetter", "WebhookReceiver", "build_webhook_app"]

# Either a plain function (run in a worker thread) or a coroutine function (awaited).
Commit = Callable[[Sequence[Touch]], None] | Callable[[Sequence[Touch]], Awaitable[Any]]
DeadLetter = Callable[[str, Sequence[ItemReject]], None]

_log = structlog.get_logger(__name__)
_JSON = "application/json"
_MAX_ERRORS_LISTED = 100


def _answer(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")).encode(), status, headers, media_type=_JSON
    )


def _error(status: int, code: str, reason: str, **extra: Any) -> Response:
    return _answer(status, {"error": code, "reason": reason, **extra})


class _TooLarge(Exception):
    pass


class WebhookReceiver:
    """The endpoint's state: per-source settings, injected ledger callables, the replay cache."""

    def __init__(
        self,
        sources: Mapping[str, WebhookSettings],
        commit: Commit,
        dead_letter: DeadLetter | None = None,
        *,
        clock: Callable[[], float] = time.time,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self.sources = dict(sources)
        self.commit = commit
        self.dead_letter = dead_letter
        self.clock = clock
        self.replays = replay_cache if replay_cache is not None else ReplayCache()
        # Secrets are read once; SecretStr keeps them out of reprs.
        self._secrets = {name: s.secret.get_secret_value() for name, s in self.sources.items()}

    def routes(self) -> list[BaseRoute]:
        """The routes to mount: ``POST /hooks/{source}``."""
        return [Route("/hooks/{source}", self.receive, methods=["POST"], name="webhook")]

    async def receive(self, request: Request) -> Response:
        """Handle one delivery (see the module docstring for every answer)."""
        source = request.path_params["source"]
        settings = self.sources.get(source)
        if settings is None:
            return _error(404, "unknown_source", f"no webhook source named {source[:64]!r}")
        media_type, _, params = request.headers.get("content-type", "").partition(";")
        charset = params.strip().lower().removeprefix("charset=").strip('"') if params else "utf-8"
        if media_type.strip().lower() != _JSON or charset not in ("utf-8", "utf8"):
            return _error(415, "unsupported_media_type", "send Content-Type: application/json")
        try:
            body = await self._read_body(request, settings.max_body_bytes)
        except _TooLarge:
            _log.warning("webhook_body_too_large", source=source, limit=settings.max_body_bytes)
            return _error(
                413, "too_large", f"the body is larger than {settings.max_body_bytes} bytes"
            )
        now = self.clock()
        try:
            signature = verify(
                self._secrets[source],
                request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                body,
                now=now,
                tolerance=settings.tolerance_seconds,
            )
        except SignatureError as exc:
            _log.warning("webhook_refused", source=source, code=exc.code)
            return _error(401, exc.code, exc.reason)
        cached = self.replays.get(source, signature, now)
        if cached is not None:
            return Response(
                cached.body, cached.status, {"X-Closedloop-Redelivery": "1"}, media_type=_JSON
            )
        response = await self._process(source, settings, body, now)
        if 200 <= response.status_code < 300 or response.status_code == 422:
            answer = CachedAnswer(
                response.status_code, bytes(response.body), now + settings.tolerance_seconds
            )
            self.replays.put(source, signature, answer, now)
        return response

    async def _read_body(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _process(
        self, source: str, settings: WebhookSettings, body: bytes, now: float
    ) -> Response:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"the body is not valid UTF-8 (byte {exc.start})"
            return await self._refuse_body(
                source, "non_utf8", reason, body.decode("utf-8", "backslashreplace")
            )
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            return await self._refuse_body(source, "invalid_json", reason, text)
        except ValueError:
            # Python reads integers of at most 4,300 digits (sys.get_int_max_str_digits()).
            reason = "the body holds a number too long to read (more than 4,300 digits)"
            return await self._refuse_body(source, "invalid_json", reason, text)
        except RecursionError:
            return await self._refuse_body(source, "too_deep", "the JSON is nested too deep", text)
        if not isinstance(document, list | dict):
            reason = "expected an activity object or a list of them"
            return await self._refuse_body(source, "wrong_type", reason, text)
        items = document if isinstance(document, list) else [document]
        if not items:
            return _error(400, "empty_batch", "the list holds no activity")
        if len(items) > settings.max_items:
            return _error(
                413, "too_many_items", f"at most {settings.max_items} activities per request"
            )
        when = datetime.fromtimestamp(now, UTC)
        touches: list[Touch] = []
        rejects: list[ItemReject] = []
        for index, item in enumerate(items):
            parsed = parse_item(source, index, item, when)
            if isinstance(parsed, Touch):
                touches.append(parsed)
            else:
                rejects.append(parsed)
        try:
            if touches:
                await self._commit(touches)
            if rejects and self.dead_letter is not None:
                await run_in_threadpool(self.dead_letter, source, rejects)
        except Exception as exc:  # noqa: BLE001 - any ledger failure: tell the sender to retry
            _log.error("webhook_commit_failed", source=source, error=type(exc).__name__)
            reason = "the activity could not be stored; retry later"
            body_503 = {"error": "ledger_unavailable", "reason": reason}
            return _answer(503, body_503, {"Retry-After": "5"})
        body_out: dict[str, Any] = {"accepted": len(touches), "rejected": len(rejects)}
        if rejects:
            body_out["errors"] = [
                {"index": r.index, "error": r.code, "reason": r.reason}
                for r in rejects[:_MAX_ERRORS_LISTED]
            ]
            _log.info("webhook_items_rejected", source=source, rejected=len(rejects))
        status = 200 if not rejects else (207 if touches else 422)
        return _answer(status, body_out)

    async def _commit(self, touches: list[Touch]) -> None:
        if inspect.iscoroutinefunction(self.commit):
            await self.commit(touches)
        else:
            await run_in_threadpool(self.commit, touches)

    async def _refuse_body(self, source: str, code: str, reason: str, text: str) -> Response:
        reject = ItemReject(None, code, reason, {"body": jsonable(text)}, reject_key(source, text))
        if self.dead_letter is not None:
            try:
                await run_in_threadpool(self.dead_letter, source, [reject])
            except Exception as exc:  # noqa: BLE001 - the refusal stands even if storing it fails
                _log.error("webhook_dead_letter_failed", source=source, error=type(exc).__name__)
        return _error(400, code, reason)


def build_webhook_app(
    sources: Mapping[str, WebhookSettings],
    commit: Commit,
    dead_letter: DeadLetter | None = None,
    *,
    clock: Callable[[], float] = time.time,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """A Starlette app serving ``POST /hooks/{source}`` (plus ``extra_routes``) for ``sources``."""
    receiver = WebhookReceiver(sources, commit, dead_letter, clock=clock)
    app = Starlette(routes=[*receiver.routes(), *extra_routes])
    app.state.webhook = receiver
    return app
