"""A test sender: signs bodies the way a real webhook sender must, with a controllable clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.base import Touch
from connectors.webhook import ItemReject, WebhookSettings, sign

SECRET = "whsec-test-0123456789abcdef"
OTHER_SECRET = "whsec-other-0123456789abcdef"
NOW = 1_735_689_600.0  # 2025-01-01T00:00:00Z


def settings(**overrides: Any) -> WebhookSettings:
    """Webhook settings with the test secret."""
    return WebhookSettings(secret=SecretStr(SECRET), **overrides)


def activity(index: int = 0, **fields: Any) -> dict[str, Any]:
    """A valid activity item, unique per index; ``fields`` override (``...`` removes a key)."""
    item: dict[str, Any] = {
        "id": f"evt-{index}",
        "kind": "webinar_registered",
        "email": f"person{index}@example.com",
        "occurred_at": "2024-12-31T10:00:00Z",
        "campaign": "Winter webinar",
        "attributes": {"seat": index},
    }
    for key, value in fields.items():
        if value is ...:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def signed_headers(body: bytes, *, timestamp: float = NOW, secret: str = SECRET) -> dict[str, str]:
    """The headers a sender sets for ``body``."""
    ts = int(timestamp)
    return {
        "Content-Type": "application/json",
        "X-Closedloop-Timestamp": str(ts),
        "X-Closedloop-Signature": sign(secret, ts, body),
    }


def encode(document: Any) -> bytes:
    """JSON bytes as a sender would post them."""
    return json.dumps(document).encode("utf-8")


@dataclass
class Recorder:
    """The injected ledger callables, recording what the receiver committed and refused."""

    committed: list[Touch] = field(default_factory=list)
    refused: list[tuple[str, ItemReject]] = field(default_factory=list)
    commits: int = 0
    fail: bool = False

    def commit(self, touches: Sequence[Touch]) -> None:
        """Record a commit (or fail like an unreachable ledger)."""
        if self.fail:
            raise ConnectionError("ledger down")
        self.commits += 1
        self.committed.extend(touches)

    def dead_letter(self, source: str, rejects: Sequence[ItemReject]) -> None:
        """Record dead letters."""
        self.refused.extend((source, r) for r in rejects)


class Client:
    """A synchronous in-process client for an ASGI app (httpx's ASGI transport, one loop a call).

    starlette.testclient wants the separate ``httpx2`` package; this needs only httpx.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request through the app and return its response (body read)."""

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as c:
                response = await c.request(method, path, **kwargs)
                await response.aread()
                return response

        return asyncio.run(go())

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST ``path``."""
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)
