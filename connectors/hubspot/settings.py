"""Settings of a ``type: hubspot`` connection, validated by ``closedloop config check``.

Only the settings live here; the connector itself is ``connectors.hubspot.connector``. Secret
values are ``SecretStr`` so they never print; in ``closedloop.yaml`` each may instead be given as
``<name>_file: path`` (read by the config loader).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

__all__ = ["HubSpotAuth", "HubSpotSettings", "OAuthAuth", "PrivateAppAuth"]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) URL such as https://api.hubapi.com")
    return value.rstrip("/")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrivateAppAuth(_Strict):
    """A private app's access token (``pat-...``)."""

    method: Literal["private_app"]
    access_token: SecretStr


class OAuthAuth(_Strict):
    """A public app's OAuth credentials; access tokens are refreshed from ``refresh_token``."""

    method: Literal["oauth"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr


HubSpotAuth = Annotated[PrivateAppAuth | OAuthAuth, Field(discriminator="method")]

EmailEventType = Literal["SENT", "DELIVERED", "OPEN", "CLICK", "BOUNCE", "STATUSCHANGE"]


class HubSpotSettings(_Strict):
    """A HubSpot portal: API host, credentials, and how much of its rate limits to use."""

    host: Annotated[str, AfterValidator(_http_url)] = "https://api.hubapi.com"
    auth: HubSpotAuth
    # The engagement property holding the touch key (searchable; HubSpot does not deduplicate
    # engagements and allows no unique values on activities: see connectors.hubspot.engagements).
    touch_key_property: str = Field(default="closedloop_touch_key", pattern=r"^[a-z][a-z0-9_]*$")
    # How long after a write its record can be relied on to show in CRM search: HubSpot's index
    # trails writes by seconds (third-party reports; HubSpot documents no figure). A write whose
    # answer was lost is looked for only this long after it was sent.
    search_settle_seconds: float = Field(default=30.0, ge=0, le=600)
    # HubSpot's limits by app type: https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details
    # Private apps only: the share of the account's daily limit (250,000 Free/Starter, 625,000
    # Professional, 1,000,000 Enterprise) closedloop may use. OAuth apps have no daily limit,
    # so it does not apply to them.
    daily_budget_share: float = Field(default=0.5, gt=0, le=1)
    # Calls per rolling 10 s at most; the portal's X-HubSpot-RateLimit-Max lowers it. Private
    # apps may make 100 (Free/Starter), 190 (Professional/Enterprise) or 250 (API limit
    # increase), OAuth apps 110 per account they are installed in: 100 fits every app type.
    burst_limit_per_10s: int = Field(default=100, gt=0)
    # CRM search has its own limit, 5 requests per second, and takes no slot of the 10-s window.
    search_per_second: int = Field(default=4, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    # A private app's daily limit resets at midnight in the portal's time zone (Settings >
    # Account defaults).
    portal_timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    # Attempts for a transient failure (5xx, dropped connection) of a call safe to repeat.
    max_attempts: int = Field(default=4, ge=1, le=10)
    # How many 429 answers one call waits out before giving up with RateLimited.
    max_rate_waits: int = Field(default=8, ge=1)
    # Change pulls re-read this much before their cursor: the search index trails the
    # modification time by seconds (see connectors.lagwindow).
    reread_lag_seconds: int = Field(default=300, ge=0, le=86_400)
    # Marketing source: where the first pull starts, and which e-mail events become touches.
    initial_lookback_days: int = Field(default=180, ge=1, le=3650)
    email_event_types: tuple[EmailEventType, ...] = ("SENT", "DELIVERED", "OPEN", "CLICK", "BOUNCE")
    # Form GUIDs whose submissions are pulled; None means every form of the portal.
    form_ids: tuple[str, ...] | None = None
