"""Signed webhook receiver: senders that can only call a URL post activity JSON to closedloop.

Registered as the ``webhook`` connector type; ``closedloop serve`` mounts the app. The receiver
never touches the ledger: it is given a ``commit`` callable and answers only after it returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import CheckResult
from connectors.registry import ConnectorInfo
from connectors.webhook.app import Commit, DeadLetter, WebhookReceiver, build_webhook_app
from connectors.webhook.payload import ITEM_FIELDS, ItemReject, parse_item
from connectors.webhook.settings import WebhookSettings
from connectors.webhook.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayCache,
    SignatureError,
    sign,
    verify,
)

__all__ = [
    "INFO",
    "ITEM_FIELDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Commit",
    "DeadLetter",
    "ItemReject",
    "ReplayCache",
    "SignatureError",
    "WebhookEndpoint",
    "WebhookReceiver",
    "WebhookSettings",
    "build_webhook_app",
    "parse_item",
    "sign",
    "verify",
]


@dataclass(frozen=True)
class WebhookEndpoint:
    """A configured sender: its connection name (the URL path and the touches' source)."""

    name: str
    settings: WebhookSettings

    @property
    def path(self) -> str:
        """The path the sender posts to."""
        return f"/hooks/{self.name}"

    def check(self) -> list[CheckResult]:
        """Nothing to call out to: report where the sender must post."""
        return [CheckResult(f"{self.name}: webhook", True, f"senders post to {self.path}")]


def _build(name: str, settings: WebhookSettings) -> WebhookEndpoint:
    return WebhookEndpoint(name, settings)


INFO = ConnectorInfo(
    name="webhook",
    roles=frozenset({"source"}),
    settings_model=WebhookSettings,
    factory=_build,
    description="Signed HTTP receiver (POST /hooks/<connection>) served by `closedloop serve`",
)
