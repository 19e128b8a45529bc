"""closedloop.yaml loading: every problem located by file, line and key path; secrets kept."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from connectors.errors import ConfigError, ConfigIssue
from sync.config import load_config, parse_duration
from sync.logs import configure_logging

CONFIGS = Path(__file__).parent / "configs"
HUBSPOT_TOKEN = "pat-file-secret-0451"
ENV = {"CLOSEDLOOP_TEST_SF_SESSION": "00Dsession-from-env-7788"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The fixture configs copied next to a secrets folder, as a user's config folder."""
    shutil.copytree(CONFIGS, tmp_path, dirs_exist_ok=True)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "hubspot-token").write_text(HUBSPOT_TOKEN + "\n", encoding="utf-8")
    return tmp_path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[ConfigIssue]:
    """The issues ``load_config`` reports for ``path`` (it must fail)."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV if environ is None else environ)
    return caught.value.issues


# file, line, key path, words the message must contain
BAD_CONFIGS = [
    ("bad_yaml_syntax.yaml", 6, "", ["YAML syntax error"]),
    ("bad_duplicate_key.yaml", 6, "connections.crm", ["duplicate key", "line 3"]),
    ("bad_unknown_top_level_key.yaml", 3, "pipeline", ["unknown key", "did you mean 'pipelines'"]),
    (
        "bad_unknown_connector_type.yaml",
        4,
        "connections.crm.type",
        [
            "unknown connector type 'salesfroce'",
            "did you mean 'salesforce'",
            "hubspot",
            "known types",
        ],
    ),
    (
        "bad_missing_required_setting.yaml",
        6,
        "connections.crm.auth.username",
        ["required key is missing"],
    ),
    ("bad_wrong_type.yaml", 6, "connections.crm.timeout_s", ["expected a number", "'soon'"]),
    (
        "bad_pipeline_kind.yaml",
        8,
        "pipelines.crm-touches.kind",
        [
            "expected one of touches, dispositions, reconcile, recycle, attribution, "
            "sla-writeback; got 'touch'",
            "did you mean 'touches'",
        ],
    ),
    (
        "bad_undefined_connection.yaml",
        9,
        "pipelines.hubspot-dispositions.source",
        ["no connection named 'hubspt'", "did you mean 'hubspot'", "defined connections: hubspot"],
    ),
    (
        "bad_role_mismatch.yaml",
        14,
        "pipelines.backwards.source",
        ["'salesforce'", "roles: crm", "cannot be the source", "activity source"],
    ),
    (
        "bad_schedule_duration.yaml",
        11,
        "pipelines.crm-dispositions.schedule.every",
        ["expected a duration such as 30s, 15m, 2h or 1d", "'15 minutes'"],
    ),
    (
        "bad_cron.yaml",
        11,
        "pipelines.crm-reconcile.schedule.cron",
        ["cron expression of 5 fields", "61"],
    ),
    (
        "bad_missing_mapping.yaml",
        11,
        "pipelines.crm-touches.mapping",
        ["mapping file not found", "mappings/does-not-exist.yaml"],
    ),
    (
        "bad_unset_variable.yaml",
        5,
        "connections.crm.host",
        ["environment variable CLOSEDLOOP_TEST_UNSET_HOST is not set"],
    ),
    (
        "bad_missing_secret_file.yaml",
        7,
        "connections.crm.auth.access_token_file",
        ["file not found", "secrets/no-such-token"],
    ),
    (
        "bad_password_and_password_file.yaml",
        10,
        "connections.crm.auth.password_file",
        ["either 'password' or 'password_file', not both"],
    ),
    ("bad_budget_share.yaml", 8, "budgets.crm.daily_share", ["at most 1", "got 1.5"]),
    (
        "bad_budget_unknown_connection.yaml",
        8,
        "budgets.salesforce",
        ["undefined connection 'salesforce'", "defined connections: crm"],
    ),
    ("bad_version.yaml", 1, "version", ["expected version 1", "got 2"]),
    ("bad_not_a_mapping.yaml", 1, "", ["expected a mapping", "got a list"]),
    (
        "bad_auth_method.yaml",
        7,
        "connections.crm.auth.method",
        ["expected one of password, client_credentials, jwt, session", "did you mean 'password'"],
    ),
]


@pytest.mark.parametrize(
    ("name", "line", "key_path", "words"), BAD_CONFIGS, ids=[case[0] for case in BAD_CONFIGS]
)
def test_bad_config_is_reported_at_its_file_line_and_key_path(
    workdir: Path, name: str, line: int, key_path: str, words: list[str]
) -> None:
    found = problems(workdir / name)

    assert len(found) == 1, found
    issue = found[0]
    assert Path(issue.file).name == name
    assert (issue.line, issue.key_path) == (line, key_path)
    for word in words:
        assert word in issue.message
    rendered = str(issue)
    assert rendered.startswith(f"{workdir / name}:{line}:")
    assert (key_path or "(top level)") in rendered


def test_every_problem_is_reported_at_once_in_file_order(workdir: Path) -> None:
    found = problems(workdir / "bad_many.yaml")

    assert [(i.line, i.key_path) for i in found] == [
        (2, "version"),
        (2, "versoin"),
        (7, "connections.crm.burst_limit_per_10s"),
        (12, "pipelines.crm-dispositions.sink"),
        (14, "budgets.crm.daily_share"),
    ]
    assert "did you mean 'version'" in found[1].message
    assert "has no sink" in found[3].message


def test_good_config_loads_with_defaults_interpolation_and_file_secrets(workdir: Path) -> None:
    config = load_config(workdir / "good.yaml", environ=ENV)

    hubspot = config.connections["hubspot"]
    assert hubspot.type == "hubspot"
    assert hubspot.roles == frozenset({"crm", "source"})
    assert hubspot.settings.host == "http://127.0.0.1:8081"  # type: ignore[attr-defined]
    token = hubspot.settings.auth.access_token  # type: ignore[attr-defined]
    assert token.get_secret_value() == HUBSPOT_TOKEN  # one trailing newline stripped
    salesforce = config.connections["salesforce"].settings
    assert salesforce.auth.session_id.get_secret_value() == ENV["CLOSEDLOOP_TEST_SF_SESSION"]  # type: ignore[attr-defined]
    assert salesforce.ca_bundle == workdir / "certs" / "sandbox-ca.pem"  # type: ignore[attr-defined]
    assert salesforce.api_version == "67.0"  # type: ignore[attr-defined]

    touches = config.pipelines["hubspot-to-salesforce"]
    assert touches.mapping == workdir / "mappings" / "touches.yaml"
    assert touches.schedule is not None
    assert touches.schedule.interval == timedelta(hours=1, minutes=30)
    assert touches.batch_size == 200
    dispositions = config.pipelines["salesforce-dispositions"]
    assert dispositions.enabled
    assert dispositions.schedule is not None
    assert dispositions.schedule.cron == "*/5 8-18 * * 1-5"
    assert config.logging.level == "debug"
    assert config.budget("salesforce").reserve_calls == 500
    assert config.budget("hubspot").daily_share == 0.5


def test_schedules_become_scheduler_triggers_in_their_time_zone(workdir: Path) -> None:
    config = load_config(workdir / "good.yaml", environ=ENV)
    every = config.pipelines["hubspot-to-salesforce"].schedule
    cron = config.pipelines["salesforce-dispositions"].schedule
    assert every is not None
    assert cron is not None

    assert every.trigger().interval == timedelta(hours=1, minutes=30)
    # Friday 23:58 UTC is 17:58 in Chicago: the next weekday slot from 08:00 to 18:55 is 18:00.
    friday = datetime(2026, 1, 9, 23, 58, tzinfo=UTC)
    fires = cron.trigger().get_next_fire_time(None, friday)
    assert fires.astimezone(UTC) == datetime(2026, 1, 10, 0, 0, tzinfo=UTC)


def test_environment_value_wins_over_the_placeholder_default(workdir: Path) -> None:
    env = {**ENV, "CLOSEDLOOP_TEST_HUBSPOT_HOST": "https://api.hubapi.com"}

    config = load_config(workdir / "good.yaml", environ=env)

    assert config.connections["hubspot"].settings.host == "https://api.hubapi.com"  # type: ignore[attr-defined]


def test_double_dollar_keeps_a_literal_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\n"
        "connections:\n"
        "  crm:\n"
        "    type: hubspot\n"
        "    touch_key_property: key_$${HOME}\n"
        "    auth: {method: private_app, access_token: pat-one}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    # Not interpolated: the literal text reaches the settings model (and fails its pattern).
    assert "key_${HOME}" in caught.value.issues[0].message


def test_relative_sqlite_ledger_lives_next_to_the_config_unless_the_environment_says(
    workdir: Path,
) -> None:
    config = load_config(workdir / "good.yaml", environ=ENV)

    assert config.database_url(environ={}) == f"sqlite:///{workdir}/ledger/closedloop.db"
    override = {"CLOSEDLOOP_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test"}
    assert config.database_url(environ=override) == override["CLOSEDLOOP_DATABASE_URL"]


def test_secret_read_from_a_file_never_appears_in_error_messages(tmp_path: Path) -> None:
    (tmp_path / "timeout").write_text("s3cr3t-not-a-number\n", encoding="utf-8")
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\n"
        "connections:\n"
        "  crm:\n"
        "    type: hubspot\n"
        "    auth: {method: private_app, access_token: pat-one}\n"
        "    timeout_s_file: timeout\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert "s3cr3t-not-a-number" not in str(caught.value)
    issue = caught.value.issues[0]
    assert (issue.line, issue.key_path) == (6, "connections.crm.timeout_s_file")
    assert "expected a number" in issue.message


def test_rejected_inline_secret_is_not_echoed_back(tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\n"
        "connections:\n"
        "  crm:\n"
        "    type: hubspot\n"
        "    auth: {method: private_app, access_token: [pat-hidden-in-a-list]}\n",
        encoding="utf-8",
    )

    issue = problems(path, environ={})[0]

    assert issue.key_path == "connections.crm.auth.access_token"
    assert "pat-hidden-in-a-list" not in issue.message


def test_loaded_secrets_are_redacted_from_logs(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_config(workdir / "good.yaml", environ=ENV)
    configure_logging("info", json=True)
    try:
        structlog.get_logger().info("connecting", detail=f"Bearer {HUBSPOT_TOKEN}")
        structlog.get_logger().info("session", detail=ENV["CLOSEDLOOP_TEST_SF_SESSION"])
    finally:
        structlog.reset_defaults()

    logged = capsys.readouterr().err
    assert "connecting" in logged
    assert HUBSPOT_TOKEN not in logged
    assert ENV["CLOSEDLOOP_TEST_SF_SESSION"] not in logged
    assert "**redacted**" in logged


def test_empty_secret_file_is_an_error(workdir: Path) -> None:
    (workdir / "secrets" / "hubspot-token").write_text("\n", encoding="utf-8")

    issue = problems(workdir / "good.yaml")[0]

    assert (issue.line, issue.key_path) == (12, "connections.hubspot.auth.access_token_file")
    assert "is empty" in issue.message


def test_only_one_trailing_newline_is_stripped_from_a_secret_file(workdir: Path) -> None:
    (workdir / "secrets" / "hubspot-token").write_text("pat-two-lines\n\n", encoding="utf-8")

    config = load_config(workdir / "good.yaml", environ=ENV)

    token = config.connections["hubspot"].settings.auth.access_token  # type: ignore[attr-defined]
    assert token.get_secret_value() == "pat-two-lines\n"


def test_a_pipeline_cannot_write_touches_into_a_source_only_connector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import BaseModel, ConfigDict

    from connectors import registry

    class ListSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        folder: str

    class _EntryPoint:
        def load(self) -> registry.ConnectorInfo:
            return registry.ConnectorInfo(
                "listfiles", frozenset({"source"}), ListSettings, lambda _name, _settings: None
            )

    installed = dict(registry._entry_points())
    monkeypatch.setattr(
        registry, "_entry_points", lambda: {**installed, "listfiles": _EntryPoint()}
    )
    (tmp_path / "touches.yaml").write_text("schema_version: 1\n", encoding="utf-8")
    path = tmp_path / "closedloop.yaml"
    path.write_text(
        "version: 1\n"
        "connections:\n"
        "  lists: {type: listfiles, folder: imports}\n"
        "  crm:\n"
        "    type: hubspot\n"
        "    auth: {method: private_app, access_token: pat-one}\n"
        "pipelines:\n"
        "  upside-down:\n"
        "    kind: touches\n"
        "    source: crm\n"
        "    sink: lists\n"
        "    mapping: touches.yaml\n",
        encoding="utf-8",
    )

    found = problems(path, environ={})

    assert [(i.line, i.key_path) for i in found] == [(11, "pipelines.upside-down.sink")]
    assert "'lists' is of type 'listfiles' (roles: source)" in found[0].message
    assert "needs a CRM" in found[0].message


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"closedloop\.yaml: file not found"):
        load_config(tmp_path / "closedloop.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_durations_read_like_a_human_writes_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "15", "15 minutes", "0m", "-5m", "1.5h"])
def test_malformed_or_zero_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
