"""``closedloop serve``: the long-running HTTP service (webhook receiver and health probes).

``build_service_app`` assembles the ASGI app so later additions (the scheduler, metrics) can
extend it: it takes extra routes and a lifespan. Routes:

- ``POST /hooks/{source}``: the signed webhook receiver (``connectors.webhook``), one source per
  ``webhook`` connection; touches are committed (``sync.ingest.GroupCommitter``: concurrent
  requests share a transaction) before the sender gets its answer; refused items become dead
  letters of pipeline ``webhook:<source>``.
- ``GET /healthz``: the process is alive (no I/O).
- ``GET /readyz``: the ledger answers a query (503 with a reason when it does not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
    from starlette.types import Lifespan

    from connectors.base import Touch
    from connectors.webhook import ItemReject, WebhookSettings
    from sync.config import Config

__all__ = ["build_service_app", "serve_command", "webhook_sources"]


def webhook_sources(config: Config) -> dict[str, WebhookSettings]:
    """The ``webhook`` connections of ``config``, by name (the path segment senders post to)."""
    from connectors.webhook import WebhookSettings

    return {
        name: conn.settings
        for name, conn in config.connections.items()
        if isinstance(conn.settings, WebhookSettings)
    }


def build_service_app(
    engine: Engine,
    sources: Mapping[str, WebhookSettings],
    *,
    extra_routes: Sequence[BaseRoute] = (),
    lifespan: Lifespan[Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The service's ASGI app: webhook receiver, /healthz, /readyz, plus ``extra_routes``."""
    from sqlalchemy import text
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from connectors.webhook import WebhookReceiver
    from sync.ingest import GroupCommitter, store_rejects

    committer = GroupCommitter(engine)

    async def commit(touches: Sequence[Touch]) -> None:
        await committer.commit_async(touches)

    def dead_letter(source: str, rejects: Sequence[ItemReject]) -> None:
        store_rejects(engine, f"webhook:{source}", "pull", rejects)

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_request: Request) -> Response:
        try:
            await run_in_threadpool(ping)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            reason = f"the ledger does not answer ({type(exc).__name__})"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    receiver = WebhookReceiver(sources, commit, dead_letter, clock=clock)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *receiver.routes(),
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.webhook = receiver
    app.state.engine = engine
    return app


def serve_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="closedloop.yaml (default: $CLOSEDLOOP_CONFIG, ./closedloop.yaml)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Ledger URL (default: config, env).")
    ] = None,
) -> None:
    """Serve the webhook receiver and the health probes until interrupted."""
    import uvicorn
    from rich.console import Console

    from sync.config import config_path, load_config
    from sync.ledger import default_database_url, mask_url, open_ledger
    from sync.logs import configure_logging

    loaded = load_config(config_path(config))
    fmt = loaded.logging.format
    configure_logging(loaded.logging.level, json=None if fmt == "auto" else fmt == "json")
    sources = webhook_sources(loaded)
    url = database_url or loaded.database_url() or default_database_url()
    engine = open_ledger(url)
    console = Console(stderr=True, highlight=False)
    console.print(f"ledger: {mask_url(url)}")
    if sources:
        for name in sorted(sources):
            console.print(f"webhook: POST http://{host}:{port}/hooks/{name}")
    else:
        console.print("no webhook connections in the config: only /healthz and /readyz are served")
    app = build_service_app(engine, sources)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        engine.dispose()
