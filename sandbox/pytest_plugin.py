"""pytest fixtures that give any test a running sandbox (enable with ``pytest_plugins``).

- ``sandbox_session``: one started ``SandboxServer`` with the demo world (seed 42) per test
  session (per xdist worker); its ports are free ports chosen at start. The world ends at the
  start of the day the session started (UTC, ``world.now``): tests compute dates from it, or
  build a world of their own with ``now`` pinned when their hand-computed figures need one.
- ``sandbox``: that same server, reset before the test (counters zeroed, no faults or latency,
  demo world reloaded), so each test starts from the same state without paying for a start.
- ``sandbox_readonly``: the same server with counters, faults and latency reset but the stores
  left as they are; cheaper, for tests that only read.
- ``sandbox_factory``: builds and starts a dedicated server with any ``SandboxServer``
  arguments (another seed, faults from the start, fixed ports); stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.server import SandboxServer

__all__ = ["DEMO_SEED", "sandbox", "sandbox_factory", "sandbox_readonly", "sandbox_session"]

DEMO_SEED = 42


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox with the demo world shared by the whole session; reset it before use."""
    server = SandboxServer(seed=DEMO_SEED, size="demo", tls_dir=tmp_path_factory.mktemp("tls"))
    with server:
        yield server


@pytest.fixture
def sandbox(sandbox_session: SandboxServer) -> SandboxServer:
    """The session's sandbox, reset to the demo world with zero counters and no faults."""
    sandbox_session.reset()
    return sandbox_session


@pytest.fixture
def sandbox_readonly(sandbox_session: SandboxServer) -> SandboxServer:
    """The session's sandbox with counters, faults and latency reset but stores kept as they are.

    Cheaper than ``sandbox`` (no world reload): for tests that only read from the emulators.
    """
    sandbox_session.reset(reload_world=False)
    return sandbox_session


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[Callable[..., SandboxServer]]:
    """Start dedicated sandboxes (``SandboxServer`` keyword arguments); stopped after the test."""
    started: list[SandboxServer] = []

    def make(**kwargs: Any) -> SandboxServer:
        kwargs.setdefault("tls_dir", tmp_path / f"tls-{len(started)}")
        server = SandboxServer(**kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
