"""Local emulators of the Salesforce, HubSpot and Marketo APIs, with a seeded company to serve.

The public surface: ``SandboxServer`` (the three emulators on loopback, with a control API),
``SandboxControl`` (its HTTP client), ``generate`` (the seed world) and the shared machinery of
``core``. The vendor apps live in ``salesforce``, ``hubspot`` and ``marketo``; pytest fixtures in
``sandbox.pytest_plugin``.
"""

from __future__ import annotations

from sandbox.core import (
    APIS,
    FAULT_KINDS,
    FaultRule,
    Faults,
    LoopbackServer,
    SandboxState,
    TlsFiles,
    make_tls_files,
    parse_faults,
)
from sandbox.seed import generate
from sandbox.server import SandboxControl, SandboxServer, world_summary
from sandbox.world import World

__all__ = [
    "APIS",
    "FAULT_KINDS",
    "FaultRule",
    "Faults",
    "LoopbackServer",
    "SandboxControl",
    "SandboxServer",
    "SandboxState",
    "TlsFiles",
    "World",
    "generate",
    "make_tls_files",
    "parse_faults",
    "world_summary",
]
