"""The corpus of bad webhook bodies: each answered with its status and reason, never a crash.

A case under ``webhook/`` is either an ``item`` (posted in a batch after a good activity: the good
one is stored, the bad one becomes a dead letter with ``expect.code`` and ``expect.reason``, and
the answer is a 207) or a whole body (``raw`` text or ``raw_hex`` bytes; ``content_type``,
``secret`` and ``age_seconds`` change how it is sent): refused with ``expect.status``, a dead
letter when the sender was authenticated, and nothing stored.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from connectors.webhook import WebhookSettings, sign
from sync.cli.serve_cmd import build_service_app
from sync.ledger import DeadLetterRow, TouchRow, open_ledger
from tests.corpus.harness import json_cases, time_limit

SECRET = "whsec-corpus-0123456789abcdef"
SOURCE = "events"
GOOD = {
    "id": "evt-good", "kind": "webinar_attended", "email": "good@example.com",
    "occurred_at": "2024-12-30T10:00:00Z", "campaign": "Winter webinar",
}  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


def post(engine: Engine, case: dict[str, Any]) -> Any:
    """Send the case's body the way its manifest says; the HTTP response."""
    if "item" in case:
        body = json.dumps([GOOD, case["item"]]).encode()
    elif "raw_hex" in case:
        body = bytes.fromhex(case["raw_hex"])
    else:
        body = case["raw"].encode()
    stamp = int(time.time()) - int(case.get("age_seconds", 0))
    headers = {
        "Content-Type": case.get("content_type", "application/json"),
        "X-Closedloop-Timestamp": str(stamp),
        "X-Closedloop-Signature": sign(case.get("secret", SECRET), stamp, body),
    }
    sources = {SOURCE: WebhookSettings(secret=SecretStr(SECRET))}
    app = build_service_app(engine, sources)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
            return await client.post(f"/hooks/{SOURCE}", content=body, headers=headers)

    return asyncio.run(send())


def stored(engine: Engine) -> tuple[list[str], list[tuple[str, str]]]:
    """Keys of the touches stored, and (code, reason) of the dead letters."""
    touches, letters = TouchRow.__table__, DeadLetterRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        keys = [r[0] for r in conn.execute(select(touches.c.key))]
        dead = [(r[0], r[1]) for r in conn.execute(select(letters.c.code, letters.c.reason))]
        assert conn.execute(select(func.count()).select_from(letters)).scalar() == len(dead)
    return keys, dead


@pytest.mark.parametrize("case", json_cases("webhook"))
def test_a_bad_webhook_body_gets_its_answer_and_dead_letter_and_stores_nothing_bad(
    case: dict[str, Any], ledger: Engine
) -> None:
    expect = case["expect"]

    with time_limit():
        response = post(ledger, case)
    keys, dead = stored(ledger)

    assert response.status_code == expect["status"], response.text
    assert expect["reason"] in response.text
    if response.status_code < 300:
        assert keys == [f"{SOURCE}:evt-good"]  # the good one flowed, the bad one did not
    else:
        assert keys == []
    if expect.get("code"):
        assert len(dead) == 1, dead
        assert dead[0][0] == expect["code"]
        assert expect["reason"] in dead[0][1]
    else:
        assert dead == []  # strangers cannot fill the ledger
