"""Log lines a user or a log shipper sees: JSON off a terminal, and never a secret."""

from __future__ import annotations

import json

import pytest
import structlog

from sync.logs import REDACTED, configure_logging, register_secret


def _last_json_line(err: str) -> dict[str, object]:
    line = [ln for ln in err.splitlines() if ln.strip()][-1]
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_logs_are_json_lines_when_not_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    structlog.get_logger().info("pulled", pipeline="marketo-to-salesforce", touches=42)
    event = _last_json_line(capsys.readouterr().err)
    assert event["event"] == "pulled"
    assert event["touches"] == 42
    assert event["level"] == "info"
    assert "timestamp" in event


def test_registered_secret_values_are_masked_wherever_they_appear(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", json=True)
    register_secret("s3cr3t-client-value")
    structlog.get_logger().info(
        "token request failed",
        url="https://mkto.example/identity/oauth/token?client_secret=s3cr3t-client-value",
        detail={"nested": ["prefix s3cr3t-client-value suffix"]},
    )
    err = capsys.readouterr().err
    assert "s3cr3t-client-value" not in err
    event = _last_json_line(err)
    assert REDACTED in str(event["url"])
    assert REDACTED in str(event["detail"])


@pytest.mark.parametrize(
    "key", ["password", "access_token", "client_secret", "Authorization", "session_id", "api_key"]
)
def test_values_under_secret_keys_are_masked(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    structlog.get_logger().info("login", **{key: "hunter2-value", "user": "ada"})
    event = _last_json_line(capsys.readouterr().err)
    assert event[key] == REDACTED
    assert event["user"] == "ada"


def test_level_filter_drops_debug_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", json=True)
    structlog.get_logger().info("chatty")
    structlog.get_logger().warning("important")
    err = capsys.readouterr().err
    assert "chatty" not in err
    assert "important" in err
