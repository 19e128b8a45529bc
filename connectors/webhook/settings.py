"""Settings of a ``webhook`` connection: the shared secret and the limits of one sender.

Each connection is one sender, posting to ``/hooks/<connection name>``::

    connections:
      events_platform:
        type: webhook
        secret_file: .closedloop/secrets/events_platform   # or secret: ${EVENTS_SECRET}
        tolerance_seconds: 300
        max_body_bytes: 1048576
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["MIN_SECRET_CHARS", "WebhookSettings"]

# 16 random characters is the least that resists guessing; senders generate 32 or more.
MIN_SECRET_CHARS = 16


class WebhookSettings(BaseModel):
    """One sender's secret (HMAC-SHA256 key) and the limits its requests must respect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr
    # Requests whose timestamp is further than this from our clock are refused as replays.
    tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_items: int = Field(default=1000, ge=1, le=100_000)

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"the secret must be at least {MIN_SECRET_CHARS} characters long")
        return value
