"""Shared machinery of the emulators: call counters, fault injection, latency, loopback servers.

Each vendor emulator is a Starlette app built by its own module from a shared ``SandboxState``.
This module knows nothing of vendor payloads: it counts calls, decides (deterministically, from
a seed) whether a call should fail and how, and runs the apps on free loopback ports, Salesforce
over HTTPS with a trustme test CA written to a file clients can trust.

Fault spec grammar (``--faults``)::

    SPEC  := RULE ("," RULE)*
    RULE  := API ["/" ENDPOINT] ":" KIND "=" RATE    e.g. salesforce:expired_token=0.01
    API   := salesforce | hubspot | marketo | *
    KIND  := 429 | 403 | 500 | 503 | timeout | expired_token | unable_to_lock_row
           | subrequest_500 | lost_response | cut_off
    RATE  := a probability in [0, 1]

Each vendor app turns a drawn fault into its own error shape (Salesforce 403
REQUEST_LIMIT_EXCEEDED, HubSpot 429 with policyName, Marketo HTTP 200 with code 606, ...).

``ENDPOINT`` narrows a rule to one endpoint, named as the call counters name it (e.g.
``marketo/export.create:lost_response=1``, ``hubspot/notes.batch_create:lost_response=0.2``,
``salesforce/composite:lost_response=0.2``); every emulator passes its endpoint names.
``lost_response`` applies the call and then loses its answer (the client sees HTTP 502 from a
gateway): the fault that makes a non-idempotent call dangerous to repeat (all three emulators).
``cut_off`` (Marketo only; meant for ``marketo/export.file``) sends the first half of an answer's
body and then drops the connection, as a long download breaking off mid-transfer.

``SandboxState.on_applied`` (a test hook, never set by the sandbox itself) is called with
``(api, endpoint, method)`` after a call was applied and before its answer is sent: a test can
SIGKILL the client there, so the write stands and its answer is never read.

Most kinds fail a whole call (one draw per call). ``RECORD_FAULT_KINDS`` fail single items
inside a call that succeeds (one draw per item, from a generator of their own, so adding one
leaves the call-level sequence unchanged): ``unable_to_lock_row`` is a Salesforce save result
refused because another transaction held the row; ``subrequest_500`` is one sObject Collections
subrequest of a Salesforce Composite request failing whole with HTTP 500 UNKNOWN_EXCEPTION
while the others succeed (Salesforce only).
"""

from __future__ import annotations

import contextlib
import random
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.errors import ConfigError

__all__ = [
    "APIS",
    "FAULT_KINDS",
    "OWNED_FAULT_KINDS",
    "RECORD_FAULT_KINDS",
    "FaultRule",
    "Faults",
    "LoopbackServer",
    "SandboxState",
    "free_port",
    "parse_faults",
]

APIS = ("salesforce", "hubspot", "marketo")
FAULT_KINDS = (
    "429",
    "403",
    "500",
    "503",
    "timeout",
    "expired_token",
    "unable_to_lock_row",
    "subrequest_500",
    "lost_response",
    "cut_off",
)
# Kinds drawn per item inside a call (``Faults.draw_record``), and the APIs that know them.
RECORD_FAULT_KINDS = {"unable_to_lock_row": "salesforce", "subrequest_500": "salesforce"}
# Kinds only some emulators implement, and which one (``*`` rules reach only that one).
OWNED_FAULT_KINDS = {**RECORD_FAULT_KINDS, "cut_off": "marketo"}


@dataclass(frozen=True)
class FaultRule:
    """Fail calls to ``api`` (only its ``endpoint`` when given) with ``kind`` at ``rate``."""

    api: str
    kind: str
    rate: float
    endpoint: str | None = None

    def matches(self, api: str, endpoint: str | None) -> bool:
        """Whether this rule applies to a call of ``endpoint`` on ``api``."""
        if self.api not in (api, "*") or OWNED_FAULT_KINDS.get(self.kind, api) != api:
            return False
        return self.endpoint is None or self.endpoint == endpoint


def parse_faults(spec: str | None) -> list[FaultRule]:
    """Parse a ``--faults`` spec; a malformed rule is a ConfigError naming it."""
    rules: list[FaultRule] = []
    if not spec:
        return rules
    for raw in spec.split(","):
        text = raw.strip()
        if not text:
            continue
        try:
            target, rate_text = text.split("=", 1)
            scope, kind = target.split(":", 1)
            rate = float(rate_text)
        except ValueError:
            raise ConfigError(
                f"bad fault rule {text!r}: expected API:KIND=RATE, e.g. hubspot:429=0.2"
            ) from None
        api, _, endpoint = scope.partition("/")
        if api not in (*APIS, "*"):
            raise ConfigError(f"bad fault rule {text!r}: API must be one of {', '.join(APIS)} or *")
        if kind not in FAULT_KINDS:
            kinds = ", ".join(FAULT_KINDS)
            raise ConfigError(f"bad fault rule {text!r}: KIND must be one of {kinds}")
        owner = OWNED_FAULT_KINDS.get(kind)
        if owner is not None and api not in (owner, "*"):
            raise ConfigError(f"bad fault rule {text!r}: {kind} is a {owner} fault")
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"bad fault rule {text!r}: RATE must be between 0 and 1")
        rules.append(FaultRule(api, kind, rate, endpoint or None))
    return rules


class Faults:
    """Deterministic fault draws: one seeded generator per API, so APIs stay independent."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.seed = seed
        self.rules: list[FaultRule] = list(rules or [])
        self._rngs = {api: random.Random(f"{seed}:{api}") for api in APIS}
        self._record_rngs: dict[tuple[str, str], random.Random] = {}
        # Faults drawn since the last ``configure``, as "api:kind".
        self.injected: Counter[str] = Counter()

    def configure(self, rules: list[FaultRule], seed: int | None = None) -> None:
        """Replace the rules (and optionally the seed), restarting the random sequences."""
        with self._lock:
            self.rules = list(rules)
            if seed is not None:
                self.seed = seed
            self._rngs = {api: random.Random(f"{self.seed}:{api}") for api in APIS}
            self._record_rngs = {}
            self.injected = Counter()

    def draw(self, api: str, endpoint: str | None = None) -> str | None:
        """The fault kind this call to ``api`` should suffer, or None (one draw per call that
        some rule applies to; ``endpoint`` names the call for endpoint-scoped rules)."""
        with self._lock:
            rules = [
                r
                for r in self.rules
                if r.matches(api, endpoint) and r.kind not in RECORD_FAULT_KINDS
            ]
            if not rules:
                return None
            roll = self._rngs[api].random()
            cumulative = 0.0
            for rule in rules:
                cumulative += rule.rate
                if roll < cumulative:
                    self.injected[f"{api}:{rule.kind}"] += 1
                    return rule.kind
            return None

    def draw_record(self, api: str, kind: str) -> bool:
        """Whether this one record inside a call to ``api`` suffers the record fault ``kind``."""
        with self._lock:
            rate = sum(r.rate for r in self.rules if r.kind == kind and r.api in (api, "*"))
            if rate <= 0:
                return False
            rng = self._record_rngs.get((api, kind))
            if rng is None:
                rng = self._record_rngs[(api, kind)] = random.Random(f"{self.seed}:{api}:{kind}")
            hit = rng.random() < rate
            if hit:
                self.injected[f"{api}:{kind}"] += 1
            return hit


@dataclass
class SandboxState:
    """Everything the three emulators share: counters, faults, latency and their vendor stores.

    ``vendors`` holds each emulator's own store object under its API name; the emulator modules
    create and own those. ``reset`` empties counters and asks every store to reset itself.
    """

    faults: Faults = field(default_factory=Faults)
    latency_ms: int = 0
    # How long a "timeout" fault holds the request before the server drops it.
    timeout_hold_s: float = 5.0
    # Test hook: called (api, endpoint, method) once a call was applied, before it is answered.
    on_applied: Callable[[str, str, str], None] | None = None
    vendors: dict[str, Any] = field(default_factory=dict)
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, api: str, endpoint: str) -> None:
        """Record one call of ``endpoint`` (a stable name such as "composite") on ``api``."""
        with self._lock:
            self._counts[(api, endpoint)] += 1

    def counts(self, api: str | None = None) -> dict[str, int]:
        """Calls per endpoint as ``"api.endpoint"`` (or just endpoint when ``api`` is given)."""
        with self._lock:
            if api is None:
                return {f"{a}.{e}": n for (a, e), n in sorted(self._counts.items())}
            return {e: n for (a, e), n in sorted(self._counts.items()) if a == api}

    def total_calls(self, api: str) -> int:
        """All counted calls to ``api``."""
        with self._lock:
            return sum(n for (a, _), n in self._counts.items() if a == api)

    def applied(self, api: str, endpoint: str, method: str) -> None:
        """Tell the ``on_applied`` hook (if any) that a call took effect and is about to be
        answered."""
        hook = self.on_applied
        if hook is not None:
            hook(api, endpoint, method)

    def reset_counters(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts.clear()

    def reset(self) -> None:
        """Zero counters, clear faults and latency, and reset every vendor store."""
        self.reset_counters()
        self.faults.configure([])
        self.latency_ms = 0
        self.on_applied = None
        for store in self.vendors.values():
            reset = getattr(store, "reset", None)
            if callable(reset):
                reset()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now, for a server another process will bind.

    Chosen at random below the kernel's ephemeral range: a port from that range (what binding
    port 0 gives) can be taken by any outgoing connection before the other process binds it.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = range(10000, low) if low > 11000 else range(1024, 10000)
    for _ in range(200):
        port = random.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port found on {host}")


class LoopbackServer:
    """Runs one ASGI app with uvicorn on a loopback port in a daemon thread."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        import uvicorn

        self.host = host
        self.tls = tls
        # The socket is bound here and handed to uvicorn: a port picked now and bound later
        # (after the world loads) could be taken meanwhile by any other process of the machine.
        # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
        # so, and with Nagle on small answers wait for the client's delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port or 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL clients use."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on {self.host}:{self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass(frozen=True)
class TlsFiles:
    """A trustme CA and a server certificate for 127.0.0.1/localhost, written to ``directory``."""

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path | None = None) -> TlsFiles:
    """Mint a test CA and a loopback server certificate; clients trust ``ca_file``."""
    import trustme

    target = directory or Path(tempfile.mkdtemp(prefix="closedloop-sandbox-tls-"))
    target.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = target / "sandbox-ca.pem"
    cert_file = target / "server.pem"
    key_file = target / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return TlsFiles(target, ca_file, cert_file, key_file)
