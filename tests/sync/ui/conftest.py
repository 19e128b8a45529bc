"""The sync-health page served for real (uvicorn on loopback) over a ledger the test fills."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from argon2 import PasswordHasher
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from sandbox.core import free_port
from sync.config import Config, load_config

PASSWORDS = {"vera": "viewer-password-1", "otto": "operator-password-1"}
ROLES = {"vera": "viewer", "otto": "operator"}


def write_users(folder: Path) -> Path:
    """A users file with the viewer vera and the operator otto."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    lines = [f"{n}:{ROLES[n]}:{hasher.hash(p)}" for n, p in PASSWORDS.items()]
    path = folder / "ui-users.txt"
    path.write_text("# the page's users\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def ui_config(folder: Path, ledger_url: str, **ui: Any) -> Config:
    """A config with no connections, the ledger at ``ledger_url`` and a ``ui`` section."""
    write_users(folder)
    data = {"version": 1, "ledger": {"url": ledger_url}, "ui": {"users_file": "ui-users.txt", **ui}}
    path = folder / "closedloop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


@dataclass
class Served:
    """A running server: its base URL, and the clients the test opened (closed at the end)."""

    url: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)
        self.clients.append(client)
        return client

    def sign_in(self, user: str) -> httpx.Client:
        """A client signed in as ``user``."""
        client = self.client()
        answer = client.post("/ui/sign-in", data={"user": user, "password": PASSWORDS[user]})
        assert answer.status_code == 303, answer.text
        return client


def serve(routes: list[BaseRoute]) -> Iterator[Served]:
    """Serve ``routes`` with uvicorn on a free loopback port until the generator is closed."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=port,
                       log_level="warning", lifespan="off")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the page's server did not start")
        time.sleep(0.02)
    served = Served(f"http://127.0.0.1:{port}")
    try:
        yield served
    finally:
        for client in served.clients:
            client.close()
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def serve_page() -> Iterator[Callable[..., Served]]:
    """Start the page of a config and ledger (stopped after the test)."""
    from sync.ui.app import UiApp

    running: list[Iterator[Served]] = []

    def start(config: Config, engine: Engine, connections: Any = None, **kwargs: Any) -> Served:
        generator = serve(UiApp(config, engine, connections, **kwargs).routes())
        running.append(generator)
        return next(generator)

    yield start
    for generator in running:
        generator.close()
