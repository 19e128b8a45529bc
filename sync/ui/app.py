"""The page's routes under ``/ui/`` (Starlette, server-rendered with Jinja2, no script needed).

=====================================  ==========  ===============================================
route                                  who         what
=====================================  ==========  ===============================================
GET  /ui/sign-in, POST /ui/sign-in     anyone      password sign-in (rate-limited)
POST /ui/sign-out                      signed in   ends the session (CSRF token)
GET  /ui/                              viewer      pipelines, backlog, lag, API calls, audit
GET  /ui/errors                        viewer      open dead letters grouped
GET  /ui/errors/{group}                viewer      a group's records
GET  /ui/letters/{id}                  viewer      one record: touch, payload, answer, history
GET  /ui/runs, /ui/runs/{id}           viewer      runs with their fingerprints; one run
GET  /ui/export/{name}                 viewer      ``runs.csv`` or ``errors-<group>.csv``
POST /ui/act                           operator    replay / discard / run now (CSRF token)
GET  /ui/static/{file}                 anyone      the stylesheet and the script
=====================================  ==========  ===============================================

Every answer carries a Content-Security-Policy that allows only this origin's stylesheet and
script, ``no-store`` caching and ``frame-ancestors 'none'``. A request without a session is sent
to the sign-in page (GET) or refused with 401 (POST); a viewer's action gets 403, and so does
an action whose CSRF token is not the session's or whose Origin is another site.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sync.csvout import write_rows
from sync.ledger.types import utcnow
from sync.logs import redact
from sync.ui import actions, queries
from sync.ui.auth import COOKIE, Authenticator, Session
from sync.ui.grouping import GROUP_KEY

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sync.config import Config
    from sync.connections import Connections

__all__ = ["UiApp", "ui_routes"]

_log = structlog.get_logger("closedloop.ui")

PREFIX = "/ui"
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
_EXPORT = re.compile(r"runs\.csv|errors-([0-9a-f]{16})\.csv")
_MAX_FORM = 1_000_000
_REPORT_TEMPLATE = Path(__file__).resolve().parents[1] / "report" / "report.html.j2"
_STATIC = Path(__file__).resolve().parent / "static"


def report_css() -> str:
    """The HTML report's stylesheet (the page looks the same), then the page's own additions."""
    text = _REPORT_TEMPLATE.read_text(encoding="utf-8")
    start, end = text.index("<style>") + len("<style>"), text.index("</style>")
    return text[start:end] + "\n" + (_STATIC / "ui.css").read_text(encoding="utf-8")


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sync.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Every value shown goes through the log redactor: a secret the config loaded that a
        # vendor echoed into a message (or a payload) is masked, never rendered.
        finalize=lambda value: redact(value) if isinstance(value, str) else value,
    )
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["short"] = _short
    env.filters["pretty"] = _pretty
    return env


class UiApp:
    """The page's state: config, ledger, connections, the authenticator and the templates."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        connections: Connections | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        auth: Authenticator | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.connections = connections
        self.clock = clock
        self.auth = auth or Authenticator(config.ui)
        self.env = _environment()
        self.css = report_css()
        self.js = (_STATIC / "ui.js").read_text(encoding="utf-8")
        self.icon = (_STATIC / "favicon.svg").read_text(encoding="utf-8")

    def routes(self) -> list[BaseRoute]:
        """The routes to mount next to the service's own."""
        return [
            Route(f"{PREFIX}/static/ui.css", self.static_css, methods=["GET"]),
            Route(f"{PREFIX}/static/ui.js", self.static_js, methods=["GET"]),
            Route(f"{PREFIX}/static/favicon.svg", self.static_icon, methods=["GET"]),
            Route(f"{PREFIX}/sign-in", self.sign_in, methods=["GET", "POST"]),
            Route(f"{PREFIX}/sign-out", self.sign_out, methods=["POST"]),
            Route(f"{PREFIX}/", self.overview, methods=["GET"]),
            Route(PREFIX, self.to_overview, methods=["GET"]),
            Route(f"{PREFIX}/errors", self.errors, methods=["GET"]),
            Route(f"{PREFIX}/errors/{{key}}", self.group, methods=["GET"]),
            Route(f"{PREFIX}/letters/{{letter_id:int}}", self.letter, methods=["GET"]),
            Route(f"{PREFIX}/runs", self.runs, methods=["GET"]),
            Route(f"{PREFIX}/runs/{{run_id:int}}", self.run, methods=["GET"]),
            Route(f"{PREFIX}/export/{{name:path}}", self.export, methods=["GET"]),
            Route(f"{PREFIX}/act", self.act, methods=["POST"]),
        ]

    # -- plumbing --------------------------------------------------------------------------

    def _secure(self, request: Request) -> bool:
        mode = self.config.ui.secure_cookie
        if mode != "auto":
            return mode == "always"
        if request.url.scheme == "https":
            return True
        proxy = self.config.ui.proxy
        client = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-proto", "").lower()
        return proxy is not None and proxy.trusts(client) and forwarded == "https"

    def _set_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            COOKIE, token, max_age=int(self.auth.lifetime), path=f"{PREFIX}/", httponly=True,
            samesite="strict", secure=self._secure(request),
        )  # fmt: skip

    def _session(self, request: Request) -> tuple[Session | None, str | None]:
        """The request's session, opening one for a user the trusted proxy names."""
        token = request.cookies.get(COOKIE)
        session = self.auth.session(token)
        client = request.client.host if request.client else None
        vouched = self.auth.proxy_user(client, dict(request.headers))
        if vouched is not None:
            if session is None or session.user != vouched[0] or not session.via_proxy:
                token = self.auth.open_session(*vouched, via_proxy=True)
                return self.auth.session(token), token
            return session, None
        if session is not None and session.via_proxy:
            return None, None  # the proxy no longer vouches for this request
        return session, None

    def _page(
        self, _request: Request, session: Session, template: str, status: int = 200, **values: Any
    ) -> Response:
        flash, session.flash = session.flash, None
        body = self.env.get_template(template).render(
            session=session, flash=flash, prefix=PREFIX, now=self.clock(), page=template, **values
        )
        return HTMLResponse(body, status, headers=_HEADERS)

    async def _guard(self, request: Request) -> tuple[Session | None, Response | None]:
        session, new_token = self._session(request)
        if session is None:
            if request.method == "GET":
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                response: Response = RedirectResponse(
                    f"{PREFIX}/sign-in?next={_quote(target)}", 303, headers=_HEADERS
                )
            else:
                response = PlainTextResponse("sign in first", 401, headers=_HEADERS)
            return None, response
        request.state.new_token = new_token
        return session, None

    def _finish(self, request: Request, response: Response) -> Response:
        token = getattr(request.state, "new_token", None)
        if token:
            self._set_cookie(response, request, token)
        return response

    async def _form(self, request: Request) -> dict[str, list[str]] | None:
        body = await request.body()
        if len(body) > _MAX_FORM:
            return None
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

    def _same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host", "")

    # -- routes ----------------------------------------------------------------------------

    async def static_css(self, _request: Request) -> Response:
        return Response(self.css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    async def static_js(self, _request: Request) -> Response:
        return Response(
            self.js, media_type="text/javascript", headers={"Cache-Control": "max-age=300"}
        )

    async def static_icon(self, _request: Request) -> Response:
        return Response(
            self.icon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"}
        )

    async def to_overview(self, _request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", 308)

    async def sign_in(self, request: Request) -> Response:
        next_url = _safe_next(request.query_params.get("next"))
        users = bool(self.auth.users)
        if request.method == "GET":
            return self._sign_in_page(next_url, None, 200, users)
        if not self._same_origin(request):
            return PlainTextResponse("cross-site sign-in refused", 403, headers=_HEADERS)
        form = await self._form(request) or {}
        name = (form.get("user") or [""])[0][:128]
        password = (form.get("password") or [""])[0][:1024]
        client = request.client.host if request.client else "?"
        keys = (f"ip:{client}", f"user:{name.lower()}")
        wait = self.auth.limiter.blocked_for(*keys)
        if wait > 0:
            response = self._sign_in_page(
                next_url, "Too many failed sign-ins: wait a few minutes and try again.", 429, users
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = await run_in_threadpool(self.auth.check_password, name, password) if users else None
        if user is None:
            self.auth.limiter.failed(*keys)
            return self._sign_in_page(next_url, "Wrong user name or password.", 401, users)
        token = self.auth.open_session(user.name, user.role)
        await run_in_threadpool(
            actions.audit, self.engine, user.name, "sign-in", "ui", role=user.role
        )
        response = RedirectResponse(next_url, 303, headers=_HEADERS)
        self._set_cookie(response, request, token)
        return response

    def _sign_in_page(self, next_url: str, error: str | None, status: int, users: bool) -> Response:
        body = self.env.get_template("sign_in.html.j2").render(
            prefix=PREFIX,
            next_url=next_url,
            error=error,
            users=users,
            session=None,
            flash=None,
            now=self.clock(),
            page="sign_in.html.j2",
        )
        return HTMLResponse(body, status, headers=_HEADERS)

    async def sign_out(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            assert refused is not None
            return refused
        form = await self._form(request) or {}
        if not session.csrf_ok((form.get("csrf") or [""])[0]) or not self._same_origin(request):
            return PlainTextResponse("refused: the form's token is not this session's", 403)
        self.auth.close_session(request.cookies.get(COOKIE))
        response = RedirectResponse(f"{PREFIX}/sign-in", 303, headers=_HEADERS)
        response.delete_cookie(COOKIE, path=f"{PREFIX}/")
        return response

    async def overview(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        now = self.clock()

        def read() -> dict[str, Any]:
            return {
                "pipelines": queries.pipeline_statuses(self.config, self.engine, now),
                "calls": queries.api_calls_today(self.config, self.engine, now),
                "forecasts": _forecasts(self.config, self.engine, now),
                "audit": queries.audit_entries(self.engine),
                "open_cap": queries.OPEN_CAP,
            }

        values = await run_in_threadpool(read)
        return self._finish(request, self._page(request, session, "overview.html.j2", **values))

    async def errors(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        groups = await run_in_threadpool(queries.error_groups, self.engine)
        return self._finish(request, self._page(request, session, "errors.html.j2", groups=groups))

    async def group(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        key = request.path_params["key"]
        if not GROUP_KEY.fullmatch(key):
            return PlainTextResponse("no such error group", 404, headers=_HEADERS)
        group, letters = await run_in_threadpool(queries.group_letters, self.engine, key)
        if group is None:
            return self._finish(
                request, self._page(request, session, "group.html.j2", 200, group=None, key=key,
                                    letters=[])
            )  # fmt: skip
        page = self._page(request, session, "group.html.j2", group=group, key=key, letters=letters)
        return self._finish(request, page)

    async def letter(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        detail = await run_in_threadpool(
            queries.letter_detail, self.engine, request.path_params["letter_id"]
        )
        if detail is None:
            return PlainTextResponse("no such dead letter", 404, headers=_HEADERS)
        group = detail.letter.group_key
        return self._finish(
            request, self._page(request, session, "letter.html.j2", d=detail, group=group)
        )

    async def runs(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        before_text = request.query_params.get("before", "")
        before = int(before_text) if before_text.isdigit() else None
        rows = await run_in_threadpool(lambda: queries.runs(self.engine, before=before))
        return self._finish(request, self._page(request, session, "runs.html.j2", runs=rows))

    async def run(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        run, letters = await run_in_threadpool(
            queries.run_detail, self.engine, request.path_params["run_id"]
        )
        if run is None:
            return PlainTextResponse("no such run", 404, headers=_HEADERS)
        from sync.pipelines.runner import summary_from_row

        page = self._page(
            request, session, "run.html.j2", run=run, summary=summary_from_row(run), letters=letters
        )
        return self._finish(request, page)

    async def export(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        name = request.path_params["name"]
        match = _EXPORT.fullmatch(name)
        if match is None:
            return PlainTextResponse("no such export", 404, headers=_HEADERS)
        handle = io.StringIO()
        if match.group(1):
            _group, letters = await run_in_threadpool(
                queries.group_letters, self.engine, match.group(1), 100_000
            )
            write_rows(
                handle,
                ["id", "pipeline", "stage", "code", "record", "reason", "created_at", "attempts"],
                ([r.id, r.pipeline, r.stage, r.code, r.record_key, r.reason, r.created_at,
                  r.attempts] for r in letters),
            )  # fmt: skip
        else:
            rows = await run_in_threadpool(lambda: queries.runs(self.engine, limit=10_000))
            write_rows(
                handle,
                ["id", "pipeline", "state", "started_at", "finished_at", "counts", "api_calls",
                 "config_fingerprint", "mapping_fingerprint", "error"],
                ([r.id, r.pipeline, r.state, r.started_at, r.finished_at,
                  json.dumps(r.counts, sort_keys=True), json.dumps(r.api_calls, sort_keys=True),
                  r.config_fingerprint, r.mapping_fingerprint, r.error] for r in rows),
            )  # fmt: skip
        headers = {**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
        return self._finish(
            request, Response(handle.getvalue(), media_type="text/csv", headers=headers)
        )

    async def act(self, request: Request) -> Response:
        session, refused = await self._guard(request)
        if session is None:
            return refused  # type: ignore[return-value]
        form = await self._form(request)
        if form is None:
            return PlainTextResponse("the form is too large", 413, headers=_HEADERS)
        if not self._same_origin(request):
            return PlainTextResponse("refused: the action came from another site", 403)
        if not session.csrf_ok((form.get("csrf") or [""])[0]):
            return PlainTextResponse("refused: the form's token is not this session's", 403)
        if not session.operator:
            return PlainTextResponse("refused: viewers cannot act; ask an operator", 403)
        action = (form.get("action") or [""])[0]
        back = _safe_next((form.get("back") or [f"{PREFIX}/errors"])[0])
        message = await run_in_threadpool(self._act, session, action, form)
        session.flash = message
        return self._finish(request, RedirectResponse(back, 303, headers=_HEADERS))

    def _act(self, session: Session, action: str, form: dict[str, list[str]]) -> str:
        group = (form.get("group") or [""])[0]
        ids = sorted({int(i) for i in form.get("ids", []) if i.isdigit()})
        if action in ("replay-group", "discard-group"):
            if not GROUP_KEY.fullmatch(group):
                return "No such error group."
            ids = queries.group_ids(self.engine, group)
            action = action.removesuffix("-group")
        if action == "run":
            pipeline = (form.get("pipeline") or [""])[0]
            why = actions.run_now(self.config, self.engine, self.connections, pipeline)
            actions.audit(self.engine, session.user, "run", pipeline, started=why is None,
                          refused=why)  # fmt: skip
            return f"Run of {pipeline} started." if why is None else f"Not started: {why}."
        if action not in ("replay", "discard"):
            return "Unknown action."
        if not ids:
            return "Select at least one record."
        target = f"group {group}" if group else f"{len(ids)} record(s)"
        if action == "discard":
            outcome = actions.discard(self.engine, ids)
            actions.audit(self.engine, session.user, "discard", target, ids=ids[:1000], **outcome)
            return f"Discarded {outcome['discarded']} record(s)."
        if self.connections is None:
            return "Replay needs the connections of closedloop serve."
        try:
            outcome = actions.replay(self.config, self.engine, self.connections, ids)
        except Exception as exc:  # noqa: BLE001 - shown and audited; the run records it too
            actions.audit(self.engine, session.user, "replay", target, ids=ids[:1000],
                          error=type(exc).__name__)  # fmt: skip
            return f"Replay failed: {type(exc).__name__}: {exc}"
        actions.audit(self.engine, session.user, "replay", target, ids=ids[:1000], **outcome)
        text = (
            f"Replayed {outcome['replayed']}, still failing {outcome['failed']}, "
            f"skipped {outcome['skipped']}."
        )
        if outcome.get("skip_reasons"):
            text += " " + "; ".join(outcome["skip_reasons"])
        return text


def _forecasts(config: Config, engine: Engine, now: datetime) -> dict[str, Any]:
    """Each budgeted connection's budget today and its forecast to the end of the vendor's day
    (``sync.budgets.forecasts``), where this build has budgets."""
    try:
        from sync import budgets  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return {}
    try:
        found = budgets.forecasts(config, engine, now=now)
    except Exception as exc:  # noqa: BLE001 - the page shows the rest without forecasts
        _log.warning("budget forecast failed", error=type(exc).__name__)
        return {}
    return {f.connection: f for f in found}


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def _safe_next(value: str | None) -> str:
    """A place inside the page to go back to (never another site)."""
    if not value or not value.startswith(f"{PREFIX}/") or value.startswith("//"):
        return f"{PREFIX}/"
    if "\\" in value or any(ord(c) < 32 for c in value):
        return f"{PREFIX}/"
    return value


def ui_routes(
    config: Config, engine: Engine, connections: Connections | None = None
) -> Sequence[BaseRoute]:
    """The page's routes for ``closedloop serve``."""
    return UiApp(config, engine, connections).routes()
