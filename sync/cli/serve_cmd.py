"""``closedloop serve``: the long-running service: scheduler, webhook receiver, probes, metrics.

``serve_command`` runs the pipeline scheduler (``sync.scheduler``: every scheduled, enabled
pipeline of the config under a lease in the ledger, so that replicas on PostgreSQL run each
pipeline once per tick) next to the HTTP app. ``build_service_app`` assembles the ASGI app; it
takes extra routes, a readiness check and a lifespan. Routes:

- ``POST /hooks/{source}``: the signed webhook receiver (``connectors.webhook``), one source per
  ``webhook`` connection; touches are committed (``sync.ingest.GroupCommitter``: concurrent
  requests share a transaction) before the sender gets its answer; refused items become dead
  letters of pipeline ``webhook:<source>``. New touches wake the scheduled touches pipelines of
  their source at once (``sync.wakeups``), on this replica and, through the ledger, on the others.
- ``GET /healthz``: the process is alive (no I/O).
- ``GET /readyz``: the ledger answers a query and the scheduler runs (503 with a reason when not).
- ``GET /metrics``: Prometheus exposition (``sync.metrics``).
- ``/ui/``: the sync-health page (``sync.ui``), unless ``ui.enabled`` is false. Bound to an
  address other than loopback, serve refuses to start (exit 2) while the page has no way to
  sign anyone in (``ui.users_file`` or ``ui.proxy``).

Before anything is served, every mapping the scheduled pipelines use is checked the way
``config check`` does (``config_cmd.require_valid_mappings``): a broken one exits 2 at once.

Slow clients are bounded (``sync.http_limits``): a request's head must arrive within
``--header-timeout`` (10 s), its body within ``--body-timeout`` (30 s) of the head, and at most
``--max-connections`` (2048) are open; beyond the cap the connection waiting longest for a head
is closed.

SIGTERM (or Ctrl-C): the scheduler stops starting runs, running pipelines finish and commit
their current batch, leases are released, the HTTP server closes, and the process exits 0.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Route
    from starlette.types import Lifespan

    from connectors.base import Touch
    from connectors.webhook import ItemReject, WebhookSettings
    from sync.config import Config
    from sync.metrics import ServiceMetrics
    from sync.scheduler import PipelineScheduler

__all__ = [
    "build_service_app",
    "metrics_route",
    "refuse_open_page",
    "scheduler_lifespan",
    "serve_command",
    "webhook_sources",
]


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
    ready: Callable[[], str | None] | None = None,
    on_stored: Callable[[set[str]], None] | None = None,
) -> Starlette:
    """The service's ASGI app: webhook receiver, /healthz, /readyz, plus ``extra_routes``.

    ``ready`` is asked by /readyz after the ledger: None when ready, else the reason why not.
    ``on_stored`` is told the sources of a request once touches new to the ledger committed.
    """
    from sqlalchemy import text
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from connectors.webhook import WebhookReceiver
    from sync.ingest import GroupCommitter, store_rejects

    committer = GroupCommitter(engine)

    async def commit(touches: Sequence[Touch]) -> None:
        stored = await committer.commit_async(touches)
        if stored.inserted and on_stored is not None:
            on_stored({touch.source for touch in touches})

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
        not_ready = ready() if ready is not None else None
        if not_ready is not None:
            return JSONResponse({"status": "unavailable", "reason": not_ready}, status_code=503)
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


def metrics_route(metrics: ServiceMetrics) -> Route:
    """``GET /metrics``: the Prometheus text exposition of ``metrics``."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    from sync.metrics import CONTENT_TYPE_LATEST

    async def render(_request: Request) -> Response:
        # Ledger figures are read at scrape time: keep the blocking queries off the event loop.
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", render, methods=["GET"])


def scheduler_lifespan(scheduler: PipelineScheduler, on_exit: Callable[[], None]) -> Lifespan[Any]:
    """Start ``scheduler`` with the app; at shutdown stop it (runs commit their batch), then
    call ``on_exit``."""
    from starlette.concurrency import run_in_threadpool

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        scheduler.start()
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.stop)
            on_exit()

    return lifespan


def serve_command(  # noqa: PLR0917 - Typer maps each parameter to a CLI option
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
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds",
            envvar="CLOSEDLOOP_LEASE_SECONDS",
            min=0.5,
            help="Lease period of a running pipeline: a dead replica's pipelines move to a "
            "live one within this time plus one schedule interval.",
        ),
    ] = 60.0,  # sync.scheduler.DEFAULT_LEASE_SECONDS (not imported: keeps --help fast)
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            envvar="CLOSEDLOOP_HEADER_TIMEOUT",
            min=0.1,
            help="Seconds a client has to send a request's head (line and headers), counted "
            "from when it connected or got its previous answer; then it is disconnected.",
        ),
    ] = 10.0,  # sync.http_limits.DEFAULT_LIMITS (not imported: keeps --help fast)
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            envvar="CLOSEDLOOP_BODY_TIMEOUT",
            min=0.1,
            help="Seconds a client has to send a request's body once its head arrived; then "
            "it gets 408 and is disconnected.",
        ),
    ] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            envvar="CLOSEDLOOP_MAX_CONNECTIONS",
            min=1,
            help="Open connections at most: beyond it the connection that has waited longest "
            "for a request head is closed, or the new one gets 503 if all are busy.",
        ),
    ] = 2048,
) -> None:
    """Run the scheduled pipelines and serve webhooks, /healthz, /readyz and /metrics."""
    import uvicorn
    from rich.console import Console

    from sync.cli.config_cmd import require_valid_mappings
    from sync.config import config_path, load_config
    from sync.connections import Connections
    from sync.http_limits import ServerLimits, fit_descriptor_limit, server_config
    from sync.ledger import default_database_url, mask_url, open_ledger
    from sync.metrics import ServiceMetrics
    from sync.scheduler import PipelineScheduler
    from sync.wakeups import Notifier

    # Loading the config applies its logging section (sync.logs: --log-level / env var win).
    loaded = load_config(config_path(config))
    refuse_open_page(loaded, host)
    sources = webhook_sources(loaded)
    url = database_url or loaded.database_url() or default_database_url()
    engine = open_ledger(url)
    connections = Connections(loaded)
    try:
        # Every mapping the scheduled pipelines use, before the first run: exit 2 when broken.
        require_valid_mappings(
            loaded, _scheduled(loaded), engine=engine, connect=connections.get,
            what="closedloop did not start",
        )  # fmt: skip
    except BaseException:
        connections.close()
        engine.dispose()
        raise
    metrics = ServiceMetrics(engine, connections=connections)
    scheduler = PipelineScheduler.from_config(
        loaded, engine, connections=connections, lease_seconds=lease_seconds, observer=metrics
    )
    console = Console(stderr=True, highlight=False)
    console.print(f"ledger: {mask_url(url)}")
    for name in sorted(scheduler.jobs):
        schedule = loaded.pipelines[name].schedule
        if schedule is not None:
            when = f"every {schedule.every}" if schedule.every else f"cron {schedule.cron!r}"
            console.print(f"pipeline {name}: {when}")
    if not scheduler.jobs:
        console.print("no scheduled pipelines in the config: nothing will run on a schedule")
    for name in sorted(sources):
        console.print(f"webhook: POST http://{host}:{port}/hooks/{name}")
    console.print(f"health: http://{host}:{port}/healthz, /readyz, /metrics")
    limits, lowered = fit_descriptor_limit(
        ServerLimits(header_timeout, body_timeout, max_connections)
    )
    if lowered:
        console.print(lowered)

    def scheduler_ready() -> str | None:
        return None if scheduler.running else "the scheduler is not running"

    app = build_service_app(
        engine,
        sources,
        extra_routes=[metrics_route(metrics), *_page_routes(loaded, engine, connections, console)],
        lifespan=scheduler_lifespan(scheduler, connections.close),
        ready=scheduler_ready,
        on_stored=Notifier(engine, on_raised=scheduler.poke).touched,
    )

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Tell running pipelines at once; uvicorn reaches the lifespan shutdown later.
            scheduler.request_stop()
            super().handle_exit(sig, frame)

    server = _Server(server_config(app, host=host, port=port, limits=limits))
    # uvicorn installs its own handlers while it serves and, once shut down, re-raises the
    # signal it caught to the handlers it found: these, so that a graceful stop exits 0 (and a
    # signal in the instant before uvicorn's handlers are in place still stops it).
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in _STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.dispose()


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _page_routes(config: Config, engine: Engine, connections: Any, console: Any) -> list[Any]:
    """The sync-health page's routes, unless ``ui.enabled`` is false."""
    if not config.ui.enabled:
        return []
    from sync.ui.app import ui_routes

    console.print("sync health page: /ui/")
    return list(ui_routes(config, engine, connections))


def refuse_open_page(config: Config, host: str) -> None:
    """Exit 2 when the page would be reachable from the network with no way to sign in."""
    import ipaddress

    from connectors.errors import ConfigError

    if not config.ui.enabled or config.ui.has_credentials:
        return
    try:
        loopback = host in _LOOPBACK or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"closedloop did not start: on {host} the sync-health page (/ui/) would be open to "
            "the network, and no one can sign in to it: give ui.users_file or ui.proxy in the "
            "config, set ui.enabled: false, or listen on 127.0.0.1"
        )


def _scheduled(config: Config) -> list[str]:
    """The pipelines ``serve`` runs: enabled ones with a schedule."""
    return [n for n, p in config.pipelines.items() if p.enabled and p.schedule is not None]
