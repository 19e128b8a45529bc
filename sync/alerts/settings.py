"""The ``alerts:`` section of closedloop.yaml: where notices go and what raises them.

Example::

    alerts:
      page_url: https://closedloop.example.com/     # linked from every notice
      channels:
        ops-slack:
          type: slack
          webhook_url_file: secrets/slack-webhook   # or webhook_url: ${SLACK_WEBHOOK_URL}
        ops-mail:
          type: email
          host: smtp.example.com                    # STARTTLS is always used
          port: 587
          username: closedloop@example.com
          password_file: secrets/smtp-password
          sender: closedloop@example.com
          to: [marketing-ops@example.com]
        pager:
          type: webhook
          url: https://hooks.example.com/closedloop
          secret_file: secrets/webhook-key          # HMAC-SHA256 key of the signature header
      triggers:
        run_failed: true          # a pipeline's last run failed
        dead_letters: 100         # open dead letters of a pipeline over this many
        new_error_group: true     # a new (pipeline, stage, code) among open dead letters
        budget_share: 0.8         # a connection used this share of its daily API cap (budgets:)
        lag: 2h                   # a pipeline has not run successfully for this long
        backlog_age: 1h           # the oldest touch waiting for its CRM is this old
        lease_lost: true          # a replica lost its lease in the middle of a run

Secrets (the Slack URL, the SMTP password, the webhook key) come from a file (``<key>_file``) or
the environment (``${NAME}``), never from the YAML itself in production; they are registered
for redaction and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from sync.durations import duration_text

__all__ = [
    "AlertsConfig",
    "Channel",
    "EmailChannel",
    "SlackChannel",
    "Triggers",
    "WebhookChannel",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: Any) -> Any:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str):
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http:// or https:// URL")
    return value


def _signing_key(value: Any) -> Any:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str) and len(text) < 16:
        raise ValueError("expected a signing key of at least 16 characters")
    return value


class SlackChannel(_Strict):
    """A Slack incoming webhook (the URL is the credential: keep it in a file or the
    environment)."""

    type: Literal["slack"]
    webhook_url: Annotated[SecretStr, BeforeValidator(_http_url)]
    ca_file: Path | None = None  # CA bundle to trust instead of the system's (a proxy, tests)


class EmailChannel(_Strict):
    """An SMTP server reached with STARTTLS (a server that does not offer it is refused)."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(min_length=3, pattern=r"@")
    to: list[Annotated[str, Field(min_length=3, pattern=r"@")]] = Field(min_length=1)
    ca_file: Path | None = None  # CA bundle to trust instead of the system's
    timeout_s: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login_whole(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "give both username and password (password_file) to log in, or neither"
            )
        return self


class WebhookChannel(_Strict):
    """A generic JSON webhook; each body is signed with HMAC-SHA256 of ``secret``."""

    type: Literal["webhook"]
    url: Annotated[str, BeforeValidator(_http_url)]
    secret: Annotated[SecretStr, BeforeValidator(_signing_key)]
    ca_file: Path | None = None


Channel = Annotated[SlackChannel | EmailChannel | WebhookChannel, Field(discriminator="type")]


class Triggers(_Strict):
    """Which conditions raise a notice (unset thresholds are off)."""

    run_failed: bool = True
    dead_letters: int | None = Field(default=None, ge=0)
    new_error_group: bool = True
    budget_share: float | None = Field(default=None, gt=0, le=1)
    lag: Annotated[str, BeforeValidator(duration_text)] | None = None
    backlog_age: Annotated[str, BeforeValidator(duration_text)] | None = None
    lease_lost: bool = True


class AlertsConfig(_Strict):
    """The ``alerts:`` section; without channels nothing is sent (and nothing is evaluated)."""

    page_url: str | None = None
    channels: dict[str, Channel] = Field(default_factory=dict)
    triggers: Triggers = Triggers()
