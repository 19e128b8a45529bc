from connectors.errors import ConfigError, ConfigIssue, RateLimited


def test_config_error_lists_every_issue_with_file_line_and_key_path() -> None:
    issues = [
        ConfigIssue("closedloop.yaml", 4, 3, "connections.crm.type", "unknown type"),
        ConfigIssue("closedloop.yaml", 9, None, "pipelines.touches.schedule", "bad interval"),
    ]
    text = str(ConfigError("closedloop.yaml is invalid", issues))
    assert "closedloop.yaml:4:3: connections.crm.type: unknown type" in text
    assert "closedloop.yaml:9: pipelines.touches.schedule: bad interval" in text
    assert ConfigError("x").exit_code == 2


def test_rate_limited_carries_when_to_retry() -> None:
    exc = RateLimited("daily budget spent", retry_after=120.0)
    assert exc.retry_after == 120.0
