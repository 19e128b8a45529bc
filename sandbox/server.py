"""One running sandbox: the three vendor emulators on loopback ports plus their control API.

``SandboxServer`` builds the Salesforce (HTTPS), HubSpot and Marketo apps over one shared
``SandboxState``, loads the seed world into their stores and serves each on its own port. Every
app is wrapped so that:

- ``/__sandbox/...`` answers the control API (the same on all three ports, same shared state):
  ``GET counters``, ``POST reset``, ``GET|POST faults`` {"spec", "seed"}, ``GET|POST latency``
  {"ms"}, ``GET state`` (every store's ``dump()``), ``GET world`` (a summary of the seed world);
- every other request first waits ``state.latency_ms`` and then reaches the vendor app.

``reset`` returns the sandbox to how it started: counters zeroed, the faults and latency it was
started with (restarting the fault sequence, so a reset run replays the same faults), and the
seed world reloaded into freshly reset stores.

``SandboxControl`` is the small httpx client of the control API used by tests and the demo.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import shutil
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.errors import ConfigError
from sandbox.core import (
    APIS,
    FaultRule,
    Faults,
    LoopbackServer,
    SandboxState,
    TlsFiles,
    make_tls_files,
    parse_faults,
)
from sandbox.seed import generate, world_now
from sandbox.world import World

__all__ = [
    "CONTROL_PREFIX",
    "AppBuilder",
    "SandboxControl",
    "SandboxServer",
    "default_builders",
    "world_summary",
]

CONTROL_PREFIX = "/__sandbox/"

AppBuilder = Callable[[SandboxState], ASGIApp]

_VENDOR_MODULES = {
    "salesforce": "sandbox.salesforce",
    "hubspot": "sandbox.hubspot",
    "marketo": "sandbox.marketo",
}


def default_builders() -> dict[str, AppBuilder]:
    """The real emulators' ``build_app`` functions, imported only when a server starts."""
    builders: dict[str, AppBuilder] = {}
    for api, module_name in _VENDOR_MODULES.items():
        module = importlib.import_module(module_name)
        builders[api] = module.build_app
    return builders


def world_summary(world: World | None) -> dict[str, Any]:
    """What the control API's ``GET /__sandbox/world`` answers: seed, date and record counts."""
    if world is None:
        return {"seed": None, "loaded": False}
    return {
        "seed": world.seed,
        "loaded": True,
        "now": world.now.isoformat(),
        "counts": {
            "owners": len(world.owners),
            "accounts": len(world.accounts),
            "people": len(world.people),
            "leads": sum(1 for p in world.people if p.crm_kind == "lead"),
            "contacts": sum(1 for p in world.people if p.crm_kind == "contact"),
            "marketing_only": sum(1 for p in world.people if p.crm_kind == "none"),
            "campaigns": len(world.campaigns),
            "opportunities": len(world.opportunities),
            "contact_roles": len(world.contact_roles),
            "activities": len(world.activities),
            "status_events": len(world.status_events),
        },
        "activity_kinds": dict(sorted(Counter(a.kind for a in world.activities).items())),
        "first_activity": world.activities[0].occurred_at.isoformat() if world.activities else None,
        "last_activity": world.activities[-1].occurred_at.isoformat() if world.activities else None,
    }


class _JSON(JSONResponse):
    """JSON that tolerates datetimes and Decimals in store dumps."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str) -> Response:
    return _JSON({"error": message}, status_code=status)


def _rule_json(rule: FaultRule) -> dict[str, Any]:
    scope = {"endpoint": rule.endpoint} if rule.endpoint else {}
    return {"api": rule.api, **scope, "kind": rule.kind, "rate": rule.rate}


def _rules_json(faults: Faults) -> dict[str, Any]:
    return {"seed": faults.seed, "rules": [_rule_json(r) for r in faults.rules]}


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _build_control_app(server: SandboxServer) -> Starlette:
    """The control API over ``server``'s shared state (one instance serves all three ports)."""
    state = server.state

    async def counters(_request: Request) -> Response:
        return _JSON({api: state.counts(api) for api in APIS})

    async def reset(_request: Request) -> Response:
        await run_in_threadpool(server.reset)
        return _JSON({"status": "reset", "world": world_summary(server.world)["counts"]})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            if body is None:
                return _error(400, 'expected a JSON object like {"spec": "hubspot:429=0.1"}')
            seed = body.get("seed", state.faults.seed)
            if not isinstance(seed, int) or isinstance(seed, bool):
                return _error(400, "seed must be an integer")
            spec = body.get("spec")
            if spec is not None and not isinstance(spec, str):
                return _error(400, "spec must be a string such as 'hubspot:429=0.1' or null")
            try:
                server.set_faults(spec, seed=seed)
            except ConfigError as exc:
                return _error(400, str(exc))
        return _JSON(_rules_json(state.faults))

    async def latency(request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            ms = body.get("ms") if body is not None else None
            if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
                return _error(400, 'expected {"ms": N} with N a whole number >= 0')
            server.set_latency(ms)
        return _JSON({"ms": state.latency_ms})

    async def dump(_request: Request) -> Response:
        return _JSON(await run_in_threadpool(server.dump))

    async def world(_request: Request) -> Response:
        return _JSON(world_summary(server.world))

    async def not_found(request: Request) -> Response:
        return _error(404, f"no sandbox control endpoint {request.url.path}")

    prefix = CONTROL_PREFIX.rstrip("/")
    return Starlette(
        routes=[
            Route(f"{prefix}/counters", counters, methods=["GET"]),
            Route(f"{prefix}/reset", reset, methods=["POST"]),
            Route(f"{prefix}/faults", faults, methods=["GET", "POST"]),
            Route(f"{prefix}/latency", latency, methods=["GET", "POST"]),
            Route(f"{prefix}/state", dump, methods=["GET"]),
            Route(f"{prefix}/world", world, methods=["GET"]),
            Route(f"{prefix}/{{rest:path}}", not_found),
        ]
    )


class _SandboxApp:
    """Routes ``/__sandbox/...`` to the control API; delays everything else by the latency."""

    def __init__(self, vendor: ASGIApp, control: ASGIApp, state: SandboxState) -> None:
        self.vendor = vendor
        self.control = control
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"].startswith(CONTROL_PREFIX):
                await self.control(scope, receive, send)
                return
            if self.state.latency_ms > 0:
                await asyncio.sleep(self.state.latency_ms / 1000)
        await self.vendor(scope, receive, send)


class SandboxServer:
    """The three emulators, seeded and served on loopback; use as a context manager.

    ``seed=None`` starts empty stores; ``now`` says what day it is (default: today): the world
    ends at that day's UTC midnight (``sandbox.seed.world_now``) and the store clocks start there
    whenever the world is loaded (start, reset) and run on in real time; ``ports`` maps an API
    name to a port (absent or 0: a free port); ``tls_dir`` is where the test CA and server
    certificate go (a temporary directory, removed on stop, when omitted). ``builders`` replaces
    the vendor apps (tests of the composition itself use small stand-ins).
    """

    def __init__(
        self,
        seed: int | None = None,
        size: str | int = "demo",
        *,
        now: datetime | None = None,
        faults: str | None = None,
        latency_ms: int = 0,
        fault_seed: int = 0,
        ports: Mapping[str, int] | None = None,
        tls_dir: Path | None = None,
        builders: Mapping[str, AppBuilder] | None = None,
    ) -> None:
        unknown = set(ports or {}) - set(APIS)
        if unknown:
            raise ConfigError(f"unknown sandbox API in ports: {', '.join(sorted(unknown))}")
        if latency_ms < 0:
            raise ConfigError("latency must be >= 0 ms")
        self._initial_rules: list[FaultRule] = parse_faults(faults)
        self._initial_fault_seed = fault_seed
        self._initial_latency = latency_ms
        self._state = SandboxState(faults=Faults(self._initial_rules, fault_seed))
        self._state.latency_ms = latency_ms
        self._initial_timeout_hold_s = self._state.timeout_hold_s
        self._world = generate(seed, size, world_now(now)) if seed is not None else None
        self._ports = dict(ports or {})
        self._tls_dir = tls_dir
        self._builders = dict(builders) if builders is not None else None
        self._tls: TlsFiles | None = None
        self._owns_tls_dir = False
        self._servers: dict[str, LoopbackServer] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Build the apps, load the world and start serving; returns once all ports accept."""
        if self._servers:
            raise RuntimeError("sandbox server already started")
        builders = self._builders if self._builders is not None else default_builders()
        missing = set(APIS) - set(builders)
        if missing:
            raise ConfigError(f"no app builder for {', '.join(sorted(missing))}")
        self._tls = make_tls_files(self._tls_dir)
        self._owns_tls_dir = self._tls_dir is None
        control = _build_control_app(self)
        servers: dict[str, LoopbackServer] = {}
        for api in APIS:
            app = builders[api](self._state)
            tls = (self._tls.cert_file, self._tls.key_file) if api == "salesforce" else None
            servers[api] = LoopbackServer(
                _SandboxApp(app, control, self._state), port=self._ports.get(api) or None, tls=tls
            )
        self._load_world()
        # The seed world lives as long as the server: move it (and whatever else the process
        # holds by now) out of the cyclic garbage collector's reach, whose full passes would
        # otherwise rescan those few hundred thousand objects about every 10,000 records written
        # (a third of the sandbox's CPU in a batch-write run). ``stop`` undoes it.
        gc.freeze()
        try:
            for api, server in servers.items():
                server.start()
                self._servers[api] = server
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every port and remove the temporary TLS directory if this server made it."""
        # Each uvicorn server needs a poll interval to notice; stop the three side by side.
        stoppers = [threading.Thread(target=s.stop) for s in self._servers.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        self._servers.clear()
        gc.unfreeze()  # process-wide: after this, everything frozen is collectable again
        if self._tls is not None and self._owns_tls_dir:
            shutil.rmtree(self._tls.directory, ignore_errors=True)
        self._tls = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ------------------------------------------------------------------------------

    @property
    def state(self) -> SandboxState:
        """The state the three emulators share (counters, faults, latency, stores)."""
        return self._state

    @property
    def world(self) -> World | None:
        """The seed world loaded into the stores, or None for an empty sandbox."""
        return self._world

    def _url(self, api: str) -> str:
        server = self._servers.get(api)
        if server is None:
            raise RuntimeError("sandbox server is not started")
        return server.url

    @property
    def salesforce_url(self) -> str:
        """The Salesforce instance URL (https, trusted through ``ca_file``)."""
        return self._url("salesforce")

    @property
    def hubspot_url(self) -> str:
        """The HubSpot API base URL (http)."""
        return self._url("hubspot")

    @property
    def marketo_url(self) -> str:
        """The Marketo base URL (http), the part before ``/rest`` and ``/identity``."""
        return self._url("marketo")

    @property
    def urls(self) -> dict[str, str]:
        """Base URL per API name."""
        return {api: self._url(api) for api in APIS}

    @property
    def ca_file(self) -> Path:
        """The PEM file of the test CA that signed the Salesforce emulator's certificate."""
        if self._tls is None:
            raise RuntimeError("sandbox server is not started")
        return self._tls.ca_file

    # -- control -----------------------------------------------------------------------------------

    def store(self, api: str) -> Any:
        """The vendor store of ``api`` (``SalesforceStore``, ``HubSpotStore``, ``MarketoStore``)."""
        try:
            return self._state.vendors[api]
        except KeyError:
            raise KeyError(f"no store for {api!r}: is the sandbox started?") from None

    def _load_world(self) -> None:
        if self._world is None:
            return
        for store in self._state.vendors.values():
            load = getattr(store, "load_world", None)
            if callable(load):
                load(self._world)
        self._sync_programs_to_campaigns()

    # The world's programs whose Marketo program is synced to its Salesforce campaign (Marketo's
    # Salesforce Campaign Sync); the others (ads, content) match their campaign by name only.
    _SYNCED_CHANNELS = ("email", "webinar", "event", "trade_show")

    def _sync_programs_to_campaigns(self) -> None:
        marketo = self._state.vendors.get("marketo")
        salesforce = self._state.vendors.get("salesforce")
        world = self._world
        if marketo is None or salesforce is None or world is None:
            return
        ids = getattr(salesforce, "world_ids", {})
        linked = {
            c.id: (ids[c.id], c.name[:80])
            for c in world.campaigns
            if c.id in ids and c.channel in self._SYNCED_CHANNELS
        }
        sync = getattr(marketo, "sync_crm_campaigns", None)
        if callable(sync):  # a stand-in store of a test may lack it
            sync(linked)

    def reset(self, *, reload_world: bool = True) -> None:
        """Zero counters and restore the starting faults, latency and timeout hold.

        With ``reload_world`` (the default) every store is also emptied and the seed world loaded
        again; without it the stores keep their data (a cheap reset for read-only tests).
        """
        if reload_world:
            self._state.reset()
        else:
            self._state.reset_counters()
        self._state.faults.configure(self._initial_rules, self._initial_fault_seed)
        self._state.latency_ms = self._initial_latency
        self._state.timeout_hold_s = self._initial_timeout_hold_s
        if reload_world:
            self._load_world()

    def set_faults(self, spec: str | None, seed: int | None = None) -> list[FaultRule]:
        """Replace the fault rules (ConfigError on a bad spec) and restart the fault sequence."""
        rules = parse_faults(spec)
        self._state.faults.configure(rules, seed)
        return rules

    def set_latency(self, ms: int) -> None:
        """Delay every vendor request by ``ms`` milliseconds from now on."""
        if ms < 0:
            raise ConfigError("latency must be >= 0 ms")
        self._state.latency_ms = ms

    def dump(self) -> dict[str, Any]:
        """Every store's ``dump()``, by API name."""
        return {api: store.dump() for api, store in sorted(self._state.vendors.items())}

    def control(self) -> SandboxControl:
        """A control-API client on this server (over the plain-HTTP HubSpot port)."""
        return SandboxControl(self.hubspot_url)


class SandboxControl:
    """A client of the control API of a running sandbox (any of its three base URLs)."""

    def __init__(
        self, base_url: str, *, ca_file: Path | str | None = None, timeout: float = 30.0
    ) -> None:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        )
        # trust_env=False: a proxy from the environment must never see loopback calls.
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + CONTROL_PREFIX.rstrip("/"),
            verify=verify,
            timeout=timeout,
            trust_env=False,
        )

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._client.request(method, path, json=body)
        if response.status_code == 400:
            raise ConfigError(f"sandbox control: {response.json().get('error', response.text)}")
        response.raise_for_status()
        return response.json()

    def counters(self) -> dict[str, dict[str, int]]:
        """Calls per endpoint, per API."""
        result: dict[str, dict[str, int]] = self._call("GET", "/counters")
        return result

    def total_calls(self, api: str) -> int:
        """All counted calls to ``api``."""
        return sum(self.counters().get(api, {}).values())

    def reset(self) -> None:
        """Reset counters, faults, latency and reload the seed world."""
        self._call("POST", "/reset")

    def set_faults(self, spec: str | None, seed: int = 0) -> dict[str, Any]:
        """Inject faults (``hubspot:429=0.1,...``; None clears); answers the active rules."""
        result: dict[str, Any] = self._call("POST", "/faults", {"spec": spec, "seed": seed})
        return result

    def faults(self) -> dict[str, Any]:
        """The active fault rules and seed."""
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def set_latency(self, ms: int) -> None:
        """Delay every vendor request by ``ms`` milliseconds."""
        self._call("POST", "/latency", {"ms": ms})

    def latency(self) -> int:
        """The current added latency in milliseconds."""
        ms: int = self._call("GET", "/latency")["ms"]
        return ms

    def state(self) -> dict[str, Any]:
        """Every store's dump, by API name."""
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def world(self) -> dict[str, Any]:
        """A summary of the loaded seed world."""
        result: dict[str, Any] = self._call("GET", "/world")
        return result

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
