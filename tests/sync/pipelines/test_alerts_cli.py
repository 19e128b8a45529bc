"""Alerts as a user gets them: ``closedloop sync`` runs against the sandbox, notices to a real
local Slack-style webhook receiver and a real local SMTP server with STARTTLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.core import FaultRule
from sync.config import load_config
from sync.ledger.types import utcnow
from sync.scheduler import PipelineScheduler
from sync.synclog import LogEntry, record, story
from tests.sync.alert_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    HttpReceiver,
    SmtpServer,
    http_receiver,
    smtp_server,
)
from tests.sync.pipelines.conftest import BADGES, badge_pipeline, badge_rows, known_emails
from tests.sync.pipelines.test_sync_log import _closedloop

PIPELINE = "badges-to-salesforce"
PAGE = "http://127.0.0.1:8080/"
SESSION_FILE = Path(".closedloop/secrets/salesforce-session-id")


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


def _with_alerts(folder: Path, receiver: HttpReceiver, smtp: SmtpServer) -> None:
    """Add an alerts section to the workspace's config, its secrets in files."""
    secrets = folder / "alert-secrets"
    secrets.mkdir()
    (secrets / "slack-webhook").write_text(f"{receiver.url}/services/T1/B1/hook-token\n")
    (secrets / "smtp-password").write_text(f"{SMTP_PASSWORD}\n")
    path = folder / "closedloop.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["alerts"] = {
        "page_url": PAGE,
        "channels": {
            "ops-slack": {"type": "slack", "webhook_url_file": "alert-secrets/slack-webhook"},
            "ops-mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "username": SMTP_USER,
                "password_file": "alert-secrets/smtp-password",
                "sender": "closedloop@example.com",
                "to": ["marketing-ops@example.com"],
                "ca_file": str(smtp.ca_file),
            },
        },
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_a_failing_run_sends_one_slack_and_one_email_notice_and_one_recovery_notice(
    workspace_factory: Any,
    ledger_url: str,
    receiver: HttpReceiver,
    smtp: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the CLI is tested on SQLite; the monitor on both backends")
    ws = workspace_factory({PIPELINE: badge_pipeline()})
    _with_alerts(ws.folder, receiver, smtp)
    config = str(ws.config_path)
    emails = known_emails(ws.sandbox, 3)
    ws.import_badges(badge_rows(emails[:1]))
    assert _closedloop(capsys, "config", "check", "-c", config).exit_code == 0
    healthy = _closedloop(capsys, "sync", "-c", config)
    assert healthy.exit_code == 0, healthy.output
    assert (receiver.posted, smtp.mails) == ([], [])

    session = ws.folder / SESSION_FILE
    good = session.read_text(encoding="utf-8")
    session.write_text("00Dsandbox!expired-session\n", encoding="utf-8")  # a bad credential
    ws.import_badges(badge_rows(emails[1:2], start=1), name="more.csv")
    failing = _closedloop(capsys, "sync", "-c", config)
    again = _closedloop(capsys, "sync", "-c", config)
    assert (failing.exit_code, again.exit_code) == (1, 1), failing.output
    assert len(receiver.posted) == 1
    assert len(smtp.mails) == 1

    session.write_text(good, encoding="utf-8")
    recovered = _closedloop(capsys, "sync", "-c", config)
    assert recovered.exit_code == 0, recovered.output

    texts = [json.loads(p.body)["text"] for p in receiver.posted]
    subjects = [m.message["Subject"] for m in smtp.mails]
    assert (
        [t.split("\n")[0] for t in texts]
        == subjects
        == [
            f"[closedloop] ALERT: {PIPELINE}: the last run failed",
            f"[closedloop] RESOLVED: {PIPELINE}: runs succeed again",
        ]
    )
    assert all(p.path == "/services/T1/B1/hook-token" for p in receiver.posted)
    assert all((m.tls, m.login) == (True, SMTP_USER) for m in smtp.mails)
    assert PAGE in texts[0]
    assert "run " in texts[0]
    for mail in smtp.mails:
        body = mail.message.get_payload()
        assert isinstance(body, str)
        assert PAGE in body
        assert "expired-session" not in body
    assert all("expired-session" not in t for t in texts)


def test_the_scheduler_announces_a_failing_pipeline_once_and_prunes_the_sync_log(
    workspace_factory: Any,
    ledger_url: str,
    receiver: HttpReceiver,
    smtp: SmtpServer,
) -> None:
    ws = workspace_factory({PIPELINE: badge_pipeline(schedule={"every": "1h"})})
    _with_alerts(ws.folder, receiver, smtp)
    config = load_config(ws.config_path)
    old = utcnow() - timedelta(days=31)
    with ws.engine.begin() as conn:
        record(conn, [LogEntry(pipeline=PIPELINE, crm="salesforce", operation="update",
                               touch_key="old:1", at=old)])  # fmt: skip
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 2)))
    scheduler = PipelineScheduler.from_config(config, ws.engine, lease_seconds=10)
    ticks = [datetime(2026, 12, 7, hour, tzinfo=UTC) for hour in (1, 2, 3)]

    ws.sandbox.state.faults.configure([FaultRule("salesforce", "403", 1.0)])
    outcomes = [scheduler.run_tick(PIPELINE, tick) for tick in ticks[:2]]
    assert (len(receiver.posted), len(smtp.mails)) == (1, 1)
    ws.sandbox.state.faults.configure([])
    outcomes.append(scheduler.run_tick(PIPELINE, ticks[2]))

    assert outcomes == ["ran"] * 3
    subjects = [m.message["Subject"] for m in smtp.mails]
    assert subjects == [
        f"[closedloop] ALERT: {PIPELINE}: the last run failed",
        f"[closedloop] RESOLVED: {PIPELINE}: runs succeed again",
    ]
    assert len(receiver.posted) == 2
    with ws.engine.connect() as conn:
        assert story(conn, touch_key="old:1") == []
        assert [s.operation for s in story(conn, touch_key=f"{BADGES}:B0")][-1] == "create"
