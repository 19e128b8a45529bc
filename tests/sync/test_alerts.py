"""Alert channels against real local receivers, and the monitor's one-notice-per-change rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, insert, update

from sync.alerts.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertError,
    Notice,
    send,
    verify_signature,
)
from sync.alerts.monitor import AlertMonitor
from sync.alerts.settings import AlertsConfig, EmailChannel, SlackChannel, Triggers, WebhookChannel
from sync.config import Config, LedgerConfig, LoggingConfig, Pipeline
from sync.ledger.models import DeadLetterRow, DeliveryRow, SyncRunRow, TouchRow
from tests.sync.alert_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    HttpReceiver,
    SmtpServer,
    http_receiver,
    smtp_server,
)

PAGE = "https://closedloop.example.com/health"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SIGNING_KEY = "webhook-signing-key-0123"
_RUN = SyncRunRow.__table__  # type: ignore[attr-defined]
_DEAD = DeadLetterRow.__table__  # type: ignore[attr-defined]


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = http_receiver()
    yield server
    server.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = smtp_server(tmp_path)
    yield server
    server.stop()


def _email(smtp: SmtpServer, **changes: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "type": "email", "host": "127.0.0.1", "port": smtp.port, "username": SMTP_USER,
        "password": SMTP_PASSWORD, "sender": "closedloop@example.com",
        "to": ["ops@example.com", "lead@example.com"], "ca_file": smtp.ca_file,
    }  # fmt: skip
    values.update(changes)
    return EmailChannel.model_validate(values)


def _notice(started: bool = True) -> Notice:
    return Notice(
        key="run_failed:badges", trigger="run_failed", pipeline="badges", started=started,
        title="badges: the last run failed", detail="run 7 failed: AuthError: session expired",
        figures={"run": 7}, page_url=PAGE, at=NOW,
    )  # fmt: skip


# --- channels ---------------------------------------------------------------------------------


def test_an_email_notice_goes_over_starttls_after_a_login(smtp: SmtpServer) -> None:
    send("ops-mail", _email(smtp), _notice())

    [mail] = smtp.mails
    assert (mail.tls, mail.login) == (True, SMTP_USER)
    assert mail.recipients == ["ops@example.com", "lead@example.com"]
    assert mail.message["Subject"] == "[closedloop] ALERT: badges: the last run failed"
    body = mail.message.get_payload()
    assert isinstance(body, str)
    assert "run 7 failed: AuthError: session expired" in body
    assert PAGE in body


def test_a_server_without_starttls_gets_no_mail_and_no_password(tmp_path: Path) -> None:
    plain = smtp_server(tmp_path, offer_starttls=False)
    try:
        with pytest.raises(AlertError, match="does not offer STARTTLS") as caught:
            send("ops-mail", _email(plain), _notice())
    finally:
        plain.stop()
    assert plain.mails == []
    assert SMTP_PASSWORD not in str(caught.value)


def test_a_refused_smtp_login_is_reported_without_the_password(smtp: SmtpServer) -> None:
    wrong = "not-the-password-987"
    with pytest.raises(AlertError, match="login refused") as caught:
        send("ops-mail", _email(smtp, password=wrong), _notice())
    assert wrong not in str(caught.value)
    assert smtp.mails == []


def test_an_untrusted_smtp_certificate_is_refused(smtp: SmtpServer) -> None:
    with pytest.raises(AlertError, match="SSL"):
        send("ops-mail", _email(smtp, ca_file=None), _notice())
    assert smtp.mails == []


def test_a_slack_notice_is_a_json_text_and_a_refusal_hides_the_webhook_url(
    receiver: HttpReceiver,
) -> None:
    url = f"{receiver.url}/services/T000/B000/secret-path-xyz"
    channel = SlackChannel(type="slack", webhook_url=SecretStr(url))
    send("ops-slack", channel, _notice(started=False))
    receiver.answer(404)
    with pytest.raises(AlertError, match="answered HTTP 404: no_service") as caught:
        send("ops-slack", channel, _notice())

    first = receiver.posted[0]
    assert first.path == "/services/T000/B000/secret-path-xyz"
    text = json.loads(first.body)["text"]
    assert text.startswith("[closedloop] RESOLVED: badges: the last run failed\n")
    assert PAGE in text
    assert "secret-path-xyz" not in str(caught.value)


def test_a_webhook_body_carries_an_hmac_signature_the_receiver_can_check(
    receiver: HttpReceiver,
) -> None:
    channel = WebhookChannel(type="webhook", url=f"{receiver.url}/hook",
                             secret=SecretStr(SIGNING_KEY))  # fmt: skip
    send("pager", channel, _notice())

    [posted] = receiver.posted
    stamp, signature = posted.headers[TIMESTAMP_HEADER], posted.headers[SIGNATURE_HEADER]
    assert signature.startswith("sha256=")
    assert verify_signature(SIGNING_KEY, stamp, posted.body, signature)
    assert not verify_signature(SIGNING_KEY, stamp, posted.body + b" ", signature)
    assert not verify_signature("another-key-0123456789", stamp, posted.body, signature)
    document = json.loads(posted.body)
    assert (document["event"], document["key"], document["page_url"]) == (
        "alert.started", "run_failed:badges", PAGE,
    )  # fmt: skip
    assert SIGNING_KEY not in posted.body.decode()


# --- the monitor ------------------------------------------------------------------------------


def _config(
    receiver: HttpReceiver, *, pipelines: dict[str, Pipeline] | None = None, **triggers: Any
) -> Config:
    alerts = AlertsConfig(
        page_url=PAGE,
        channels={
            "slack": SlackChannel(type="slack", webhook_url=SecretStr(f"{receiver.url}/slack")),
            "hook": WebhookChannel(
                type="webhook", url=f"{receiver.url}/hook", secret=SecretStr(SIGNING_KEY)
            ),
        },
        triggers=Triggers(**triggers),
    )
    return Config(
        path=Path("closedloop.yaml"), version=1, ledger=LedgerConfig(), logging=LoggingConfig(),
        connections={},
        pipelines=pipelines or {"badges": Pipeline(kind="reconcile", source="salesforce")},
        budgets={}, alerts=alerts,
    )  # fmt: skip


def _run(engine: Engine, state: str, *, error: str | None = None, ago_h: float = 0) -> None:
    at = NOW - timedelta(hours=ago_h)
    with engine.begin() as conn:
        conn.execute(insert(_RUN).values(
            pipeline="badges", owner="test", started_at=at, finished_at=at, state=state,
            error=error,
        ))  # fmt: skip


def _slack_texts(receiver: HttpReceiver) -> list[str]:
    return [json.loads(p.body)["text"].split("\n")[0] for p in receiver.posted
            if p.path == "/slack"]  # fmt: skip


def test_a_failed_run_is_announced_once_and_its_recovery_once(
    ledger_engine: Engine, receiver: HttpReceiver
) -> None:
    monitor = AlertMonitor(_config(receiver), ledger_engine, clock=lambda: NOW)
    _run(ledger_engine, "succeeded", ago_h=2)
    assert monitor.evaluate() == []
    _run(ledger_engine, "failed", error="AuthError: INVALID_SESSION_ID", ago_h=1)

    [started] = monitor.evaluate()
    assert monitor.evaluate() == []
    _run(ledger_engine, "failed", error="AuthError: INVALID_SESSION_ID")
    assert monitor.evaluate() == []
    _run(ledger_engine, "succeeded")
    [cleared] = monitor.evaluate()

    assert (started.key, started.started, cleared.started) == ("run_failed:badges", True, False)
    assert "AuthError: INVALID_SESSION_ID" in started.detail
    assert _slack_texts(receiver) == [
        "[closedloop] ALERT: badges: the last run failed",
        "[closedloop] RESOLVED: badges: runs succeed again",
    ]
    assert len([p for p in receiver.posted if p.path == "/hook"]) == 2


def test_two_replicas_evaluating_the_same_change_send_one_notice(
    ledger_engine: Engine, receiver: HttpReceiver
) -> None:
    config = _config(receiver)
    first, second = (AlertMonitor(config, ledger_engine, clock=lambda: NOW) for _ in range(2))
    _run(ledger_engine, "failed", error="boom")

    sent = first.evaluate() + second.evaluate()

    assert len(sent) == 1
    assert len(_slack_texts(receiver)) == 1


def test_a_notice_no_channel_took_is_sent_at_the_next_evaluation(
    ledger_engine: Engine, receiver: HttpReceiver
) -> None:
    monitor = AlertMonitor(_config(receiver), ledger_engine, clock=lambda: NOW)
    _run(ledger_engine, "failed", error="boom")
    receiver.answer(500)
    assert monitor.evaluate() == []
    receiver.answer(200)

    [notice] = monitor.evaluate()

    assert notice.started
    assert monitor.evaluate() == []


def _letter(engine: Engine, code: str, *, pipeline: str = "badges") -> None:
    with engine.begin() as conn:
        conn.execute(insert(_DEAD).values(
            pipeline=pipeline, stage="push", record_key=f"k-{code}", code=code, reason="no",
        ))  # fmt: skip


def test_dead_letters_over_the_threshold_and_a_new_error_group_each_raise_one_notice(
    ledger_engine: Engine, receiver: HttpReceiver
) -> None:
    monitor = AlertMonitor(_config(receiver, dead_letters=1, run_failed=False), ledger_engine,
                           clock=lambda: NOW)  # fmt: skip
    _letter(ledger_engine, "MALFORMED_ID")
    [group] = monitor.evaluate()
    _letter(ledger_engine, "MALFORMED_ID")
    [over] = monitor.evaluate()
    with ledger_engine.begin() as conn:
        conn.execute(update(_DEAD).values(status="discarded"))
    cleared = monitor.evaluate()

    assert group.key == "error_group:badges:push:MALFORMED_ID"
    assert (over.key, over.figures) == ("dead_letters:badges", {"open": 2, "threshold": 1})
    assert sorted((n.key, n.started) for n in cleared) == [
        ("dead_letters:badges", False), ("error_group:badges:push:MALFORMED_ID", False),
    ]  # fmt: skip


def test_lag_and_a_lost_lease_start_and_clear(
    ledger_engine: Engine, receiver: HttpReceiver
) -> None:
    config = _config(receiver, run_failed=False, lag="2h")
    monitor = AlertMonitor(config, ledger_engine, clock=lambda: NOW)
    _run(ledger_engine, "succeeded", ago_h=3)

    first = monitor.after_run("badges", lease_lost=True)
    _run(ledger_engine, "succeeded")
    second = monitor.after_run("badges", lease_lost=False)

    assert sorted((n.key, n.started) for n in first) == [
        ("lag:badges", True), ("lease_lost:badges", True),
    ]  # fmt: skip
    assert sorted((n.key, n.started) for n in second) == [
        ("lag:badges", False), ("lease_lost:badges", False),
    ]  # fmt: skip
    lag = next(n for n in first if n.key == "lag:badges")
    assert lag.figures == {"lag_s": 3 * 3600, "threshold_s": 7200}


def test_a_touch_never_attempted_ages_the_backlog_until_it_is_delivered(
    ledger_engine: Engine, receiver: HttpReceiver
) -> None:
    """A pipeline that stopped before delivering its new touches (no delivery row yet) has a
    backlog as the health page shows it: the alert counts those touches too."""
    pipeline = Pipeline(kind="touches", source="marketo", sink="salesforce",
                        mapping="mappings/marketo-salesforce.yaml")  # fmt: skip
    config = _config(receiver, pipelines={"opens": pipeline}, run_failed=False,
                     backlog_age="1h")  # fmt: skip
    monitor = AlertMonitor(config, ledger_engine, clock=lambda: NOW)
    with ledger_engine.begin() as conn:
        touch_id = conn.execute(insert(TouchRow.__table__).values(  # type: ignore[attr-defined]
            key="marketo:1", source="marketo", source_id="1", kind="email_open",
            occurred_at=NOW - timedelta(hours=4), pulled_at=NOW - timedelta(hours=3),
        )).inserted_primary_key[0]  # fmt: skip

    [started] = monitor.evaluate()
    with ledger_engine.begin() as conn:
        conn.execute(insert(DeliveryRow.__table__).values(  # type: ignore[attr-defined]
            touch_id=touch_id, sink="salesforce", state="confirmed", attempts=1,
            intended_at=NOW, crm_id="00T1",
        ))  # fmt: skip
    [cleared] = monitor.evaluate()

    assert (started.key, started.started) == ("backlog_age:opens", True)
    assert started.figures == {"waiting": 1, "oldest_age_s": 3 * 3600, "threshold_s": 3600}
    assert (cleared.key, cleared.started) == ("backlog_age:opens", False)


def test_without_channels_nothing_is_evaluated(ledger_engine: Engine) -> None:
    config = Config(
        path=Path("closedloop.yaml"), version=1, ledger=LedgerConfig(), logging=LoggingConfig(),
        connections={}, pipelines={}, budgets={},
    )  # fmt: skip
    _run(ledger_engine, "failed", error="boom")
    assert AlertMonitor(config, ledger_engine).evaluate() == []
