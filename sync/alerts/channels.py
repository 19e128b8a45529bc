"""Sending one notice to one channel: a Slack incoming webhook, SMTP with STARTTLS, or a
generic webhook whose body is signed with HMAC-SHA256.

Slack: a JSON body ``{"text": ...}`` POSTed to the webhook URL; HTTP 200 is success, any other
status a failure whose body names it (``invalid_payload``, ``channel_not_found``,
``channel_is_archived`` ...; docs/vendor-behaviour.md). The URL is the credential: it never
appears in a message or a log line.

E-mail: ``smtplib`` to ``host:port``, ``STARTTLS`` (a server that does not offer it is refused,
so the password never crosses in clear), then ``LOGIN`` when a username is given; one message to
every ``to`` address.

Webhook: a JSON body (the notice's fields) POSTed with ``X-Closedloop-Timestamp`` (Unix
seconds) and ``X-Closedloop-Signature: sha256=<hex>``, the HMAC-SHA256 under the channel's
secret of ``<timestamp>.<body>``; the receiver recomputes it and refuses stale timestamps
(``verify_signature``).

Every failure is an ``AlertError`` whose message names the channel and what went wrong, never
a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx
import orjson

from connectors.errors import ClosedloopError
from sync.alerts.settings import Channel, EmailChannel, SlackChannel, WebhookChannel

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertError",
    "Notice",
    "send",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Closedloop-Signature"
TIMESTAMP_HEADER = "X-Closedloop-Timestamp"
_TIMEOUT_S = 15.0


class AlertError(ClosedloopError):
    """A notice could not be delivered to a channel."""


@dataclass(frozen=True)
class Notice:
    """One notice: a condition started (``started``) or cleared (``cleared``)."""

    key: str  # the condition: trigger and what it is about, e.g. "run_failed:badges"
    trigger: str
    pipeline: str | None
    started: bool  # True: the condition starts; False: it clears
    title: str  # one line: what happened, naming the pipeline
    detail: str  # the figures, in words
    figures: dict[str, Any] = field(default_factory=dict)
    page_url: str | None = None
    at: datetime | None = None

    @property
    def subject(self) -> str:
        """The e-mail subject and the first line of every notice."""
        return f"[closedloop] {'ALERT' if self.started else 'RESOLVED'}: {self.title}"

    def text(self) -> str:
        """The notice as plain text: subject, detail, figures, and the link to the page."""
        lines = [self.subject, self.detail]
        if self.figures:
            lines.append(", ".join(f"{k}: {v}" for k, v in self.figures.items()))
        if self.page_url:
            lines.append(f"Open the sync health page: {self.page_url}")
        return "\n".join(lines)

    def document(self) -> dict[str, Any]:
        """The notice as the JSON body of a generic webhook."""
        return {
            "event": "alert.started" if self.started else "alert.cleared",
            "key": self.key,
            "trigger": self.trigger,
            "pipeline": self.pipeline,
            "title": self.title,
            "detail": self.detail,
            "figures": self.figures,
            "page_url": self.page_url,
            "at": self.at.isoformat() if self.at else None,
            "text": self.text(),
        }


def send(name: str, channel: Channel, notice: Notice) -> None:
    """Deliver ``notice`` through ``channel`` (named ``name`` in the config)."""
    if isinstance(channel, SlackChannel):
        _slack(name, channel, notice)
    elif isinstance(channel, EmailChannel):
        _email(name, channel, notice)
    else:
        _webhook(name, channel, notice)


def _verify(ca_file: Any) -> Any:
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True


def _post(
    where: tuple[str, str], url: str, body: bytes, headers: dict[str, str], verify: Any
) -> None:
    name, what = where
    try:
        with httpx.Client(verify=verify, timeout=_TIMEOUT_S, follow_redirects=False) as client:
            answer = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        # The URL may be the credential (Slack): name the failure, not the address.
        raise AlertError(f"alert channel {name!r} ({what}): {type(exc).__name__}") from None
    if not 200 <= answer.status_code < 300:
        said = answer.text.strip()[:200]
        raise AlertError(
            f"alert channel {name!r} ({what}) answered HTTP {answer.status_code}"
            + (f": {said}" if said else "")
        )


def _slack(name: str, channel: SlackChannel, notice: Notice) -> None:
    body = orjson.dumps({"text": notice.text()})
    _post((name, "slack"), channel.webhook_url.get_secret_value(), body,
          {"Content-Type": "application/json"}, _verify(channel.ca_file))  # fmt: skip


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, max_age_s: float = 300.0
) -> bool:
    """Whether ``signature`` is ours for ``body`` and ``timestamp`` is recent (receivers)."""
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _webhook(name: str, channel: WebhookChannel, notice: Notice) -> None:
    body = orjson.dumps(notice.document())
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(channel.secret.get_secret_value(), stamp, body),
    }
    _post((name, "webhook"), channel.url, body, headers, _verify(channel.ca_file))


def _email(name: str, channel: EmailChannel, notice: Notice) -> None:
    message = EmailMessage()
    message["Subject"] = notice.subject
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(notice.text())
    context = ssl.create_default_context(cafile=str(channel.ca_file) if channel.ca_file else None)
    where = f"alert channel {name!r} (e-mail via {channel.host}:{channel.port})"
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_s) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise AlertError(f"{where}: the server does not offer STARTTLS; refused to send")
            smtp.starttls(context=context)
            smtp.ehlo()
            if channel.username and channel.password is not None:
                smtp.login(channel.username, channel.password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertError(f"{where}: login refused (SMTP {exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raise AlertError(f"{where}: SMTP {exc.smtp_code}: {_said(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertError(f"{where}: {type(exc).__name__}: {exc}") from None


def _said(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.strip()[:200]
