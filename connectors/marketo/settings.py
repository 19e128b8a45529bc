"""Settings of a ``type: marketo`` connection, validated by ``closedloop config check``.

Only the settings live here; the connector is ``connectors.marketo.source``. The limits default
to Marketo's documented instance-wide ones (ARCHITECTURE.md "Limits"); lower them when other
integrations share the instance.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

__all__ = ["MarketoSettings"]


def _rest_base(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL such as https://123-ABC-456.mktorest.com")
    if parts.path.rstrip("/").endswith(("/rest", "/identity", "/bulk")):
        raise ValueError(
            "give the instance's base URL without /rest or /identity, "
            "e.g. https://123-ABC-456.mktorest.com"
        )
    return value.rstrip("/")


class MarketoSettings(BaseModel):
    """A Marketo instance: REST base URL, API-only user credentials, what to pull, and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Admin > Web Services > REST API: the "Endpoint" without its /rest suffix.
    base_url: Annotated[str, AfterValidator(_rest_base)]
    # Admin > LaunchPoint > the API-only user's custom service > View Details.
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # Activity type names or ids to pull; None means every standard type we map to a touch kind.
    activity_types: list[str | int] | None = None
    # Where the first pull starts when the cursor is empty.
    initial_lookback_days: int = Field(default=180, ge=1, le=3650)
    # Pulls spanning more days than this use the bulk activity extract; None disables it.
    bulk_backfill_days: int | None = Field(default=30, ge=1)
    calls_per_20s: int = Field(default=100, ge=1, le=100)
    max_concurrency: int = Field(default=10, ge=1, le=10)
    daily_quota: int = Field(default=50_000, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    # Activities and leads come at most 300 per page/call.
    page_size: int = Field(default=300, ge=1, le=300)
    # Attempts for a transient failure (5xx, timeouts) of a call that is safe to repeat.
    max_attempts: int = Field(default=4, ge=1, le=10)
    # How many times a call waits out 606/615 before giving up with RateLimited.
    max_rate_waits: int = Field(default=6, ge=1)
    # A job's status changes at most once a minute: polling faster only spends calls.
    # https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/bulk-extract
    # The first poll comes after bulk_poll_first_s, each next one after twice the previous pause,
    # up to bulk_poll_interval_s: a job done in seconds is not waited on for a whole minute.
    bulk_poll_interval_s: float = Field(default=60.0, gt=0)
    bulk_poll_first_s: float = Field(default=1.0, gt=0)
    bulk_poll_timeout_s: float = Field(default=3 * 3600.0, gt=0)
