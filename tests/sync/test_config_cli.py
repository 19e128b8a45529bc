"""``closedloop config check|show`` and ``closedloop init`` as a user runs them."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import typer
import yaml
from pydantic import BaseModel, ConfigDict, SecretStr
from typer.testing import CliRunner

from connectors import registry
from connectors.errors import ConfigError
from sync.cli import config_cmd
from sync.config import load_config

CONFIGS = Path(__file__).parent / "configs"
ROOT = Path(__file__).resolve().parents[2]
HUBSPOT_TOKEN = "pat-file-secret-0451"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder holding the fixture configs and a secret file, as the working directory."""
    shutil.copytree(CONFIGS, tmp_path, dirs_exist_ok=True)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hubspot-token").write_text(HUBSPOT_TOKEN + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLOSEDLOOP_TEST_SF_SESSION", "00Dsession-from-env-7788")
    monkeypatch.delenv("CLOSEDLOOP_CONFIG", raising=False)
    monkeypatch.delenv("CLOSEDLOOP_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    """Run the config command group; exit code, stdout, stderr."""
    result = CliRunner().invoke(config_cmd.app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def snapshot(folder: Path) -> dict[str, float]:
    """Every file and folder below ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


OFFLINE = "(checked offline against the sandbox's schema, not your org's)"


def test_check_says_ok_with_counts(workdir: Path) -> None:
    code, out, _ = run("check", "--config", "good.yaml", "--offline")

    assert code == 0
    mapping_line, summary = out.splitlines()
    assert mapping_line == f"OK {workdir / 'mappings' / 'touches.yaml'} {OFFLINE}"
    assert summary == "good.yaml: OK (2 connections, 2 pipelines)"


def test_check_reads_the_config_named_by_the_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSEDLOOP_CONFIG", "good.yaml")

    code, out, _ = run("check", "--offline")

    assert code == 0
    assert out.endswith("good.yaml: OK (2 connections, 2 pipelines)\n")


def test_check_defaults_to_closedloop_yaml_in_the_working_directory(workdir: Path) -> None:
    code, _, err = run("check")

    assert code == 2
    assert "closedloop.yaml: file not found" in err


def test_bad_config_prints_each_problem_on_its_own_line_exits_2_and_writes_nothing(
    workdir: Path,
) -> None:
    before = snapshot(workdir)

    code, out, err = run("check", "--config", "bad_many.yaml")

    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "bad_many.yaml: 5 problems"
    assert lines[1:] == [
        "bad_many.yaml:2:1: version: required key is missing",
        "bad_many.yaml:2:1: versoin: unknown key (did you mean 'version'?)",
        "bad_many.yaml:7:26: connections.crm.burst_limit_per_10s: expected a whole number; "
        "got 'many'",
        "bad_many.yaml:12:5: pipelines.crm-dispositions.sink: a dispositions pipeline has no "
        "sink; remove this key",
        "bad_many.yaml:14:22: budgets.crm.daily_share: expected a value greater than 0.0; got 0",
    ]
    assert snapshot(workdir) == before
    assert not list(workdir.rglob("*.db"))


def test_show_prints_the_effective_config_with_secrets_masked(workdir: Path) -> None:
    code, out, _ = run("show", "--config", "good.yaml")

    assert code == 0
    shown = yaml.safe_load(out)
    assert shown["connections"]["hubspot"]["auth"]["access_token"] == "**********"
    assert shown["connections"]["hubspot"]["timeout_s"] == 30.0  # a default filled in
    assert shown["pipelines"]["hubspot-to-salesforce"]["mapping"] == str(
        workdir / "mappings" / "touches.yaml"
    )
    assert HUBSPOT_TOKEN not in out
    assert "00Dsession-from-env-7788" not in out


def test_show_masks_the_password_of_the_ledger_url(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", "postgresql+psycopg://sync:hunter2-db@db/ledger")

    code, out, _ = run("show", "--config", "good.yaml")

    assert code == 0
    assert "hunter2-db" not in out
    assert yaml.safe_load(out)["ledger"]["url"] == "postgresql+psycopg://sync:***@db/ledger"


def test_check_never_prints_a_secret_file_even_when_the_config_is_bad(workdir: Path) -> None:
    text = (workdir / "good.yaml").read_text(encoding="utf-8")
    broken = text.replace("burst_limit_per_10s: 190", "burst_limit_per_10s: 190\n    token: x")
    (workdir / "broken.yaml").write_text(broken, encoding="utf-8")

    code, out, err = run("check", "--config", "broken.yaml")

    assert code == 2
    assert "connections.hubspot.token: unknown key" in err
    assert HUBSPOT_TOKEN not in out + err


# --- closedloop init -------------------------------------------------------------------------


def init_app() -> typer.Typer:
    """A CLI with ``init`` mounted the way the top-level app mounts it."""
    app = typer.Typer()
    app.command("init")(config_cmd.init_command)
    app.command("check")(config_cmd.check)
    return app


@pytest.fixture
def shipped_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default mapping files shipped with closedloop, in a folder of their own."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    for name in ("marketo-salesforce.yaml", "marketo-hubspot.yaml"):
        shutil.copyfile(ROOT / "mappings" / name, folder / name)
    monkeypatch.setattr(config_cmd, "shipped_mappings_dir", lambda: folder)
    return folder


@pytest.fixture
def marketo_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure a ``marketo`` connector type exists: the real one when installed."""
    if "marketo" in registry.connector_names():
        return

    class MarketoLike(BaseModel):
        model_config = ConfigDict(extra="forbid")
        base_url: str
        client_id: str
        client_secret: SecretStr
        initial_lookback_days: int = 180

    class _EntryPoint:
        def load(self) -> registry.ConnectorInfo:
            return registry.ConnectorInfo(
                "marketo", frozenset({"source"}), MarketoLike, lambda _name, _settings: None
            )

    installed = dict(registry._entry_points())
    monkeypatch.setattr(registry, "_entry_points", lambda: {**installed, "marketo": _EntryPoint()})


def test_init_writes_a_sandbox_config_that_passes_check(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shipped_mappings: Path,
    marketo_known: None,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("CLOSEDLOOP_CONFIG", raising=False)
    runner = CliRunner()

    result = runner.invoke(init_app(), ["init"])

    assert result.exit_code == 0, result.output
    assert (project / "mappings" / "marketo-salesforce.yaml").read_text(encoding="utf-8") == (
        shipped_mappings / "marketo-salesforce.yaml"
    ).read_text(encoding="utf-8")
    # Before the sandbox ran in this folder its CA file is missing: check says so, and how.
    checked = runner.invoke(init_app(), ["check", "--offline"])
    assert checked.exit_code == 2
    assert "connections.salesforce.ca_bundle: no CA bundle file at" in checked.stderr
    assert "`closedloop sandbox serve`" in checked.stderr
    ca = project / ".closedloop" / "sandbox-ca.pem"  # where `closedloop sandbox serve` writes it
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    checked = runner.invoke(init_app(), ["check", "--offline"])
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.endswith("closedloop.yaml: OK (2 connections, 3 pipelines)\n")

    config = yaml.safe_load((project / "closedloop.yaml").read_text(encoding="utf-8"))
    salesforce = config["connections"]["salesforce"]
    assert salesforce["instance_url"] == "https://127.0.0.1:8443"
    assert salesforce["ca_bundle"] == ".closedloop/sandbox-ca.pem"
    assert "hubspot" not in config["connections"]  # one CRM: no company counted twice
    assert config["connections"]["marketo"]["base_url"] == "http://127.0.0.1:8082"
    assert {(p["kind"], p["source"], p.get("sink")) for p in config["pipelines"].values()} == {
        ("touches", "marketo", "salesforce"),
        ("dispositions", "salesforce", None),
        ("reconcile", "salesforce", None),
    }
    # The agreed SLA targets are each CRM's mapping's (Salesforce: MQL 24h), not overridden by
    # one analytics.sla target for every CRM (which would also apply to HubSpot's 4h once added).
    assert config["analytics"] == {"crms": ["salesforce"]}
    touches = next(p for p in config["pipelines"].values() if p["kind"] == "touches")
    mapping = yaml.safe_load((project / touches["mapping"]).read_text(encoding="utf-8"))
    assert mapping["lifecycle"]["sla"]["MQL"] == "24h"
    assert all("schedule" in p for p in config["pipelines"].values())


def test_init_keeps_secrets_out_of_the_config_in_owner_only_files(
    tmp_path: Path, shipped_mappings: Path
) -> None:
    target = tmp_path / "closedloop.yaml"

    result = CliRunner().invoke(init_app(), ["init", str(target)])

    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    secrets = {
        "salesforce-session-id": "00Dsandbox!closedloop-session",
        "hubspot-access-token": "pat-sandbox-closedloop",
        "marketo-client-secret": "sandbox-marketo-secret",
    }
    for name, value in secrets.items():
        file = tmp_path / ".closedloop" / "secrets" / name
        assert file.read_text(encoding="utf-8") == value + "\n"
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert value not in text
        assert f".closedloop/secrets/{name}" in text


def test_init_refuses_to_overwrite_an_existing_config(
    tmp_path: Path, shipped_mappings: Path
) -> None:
    target = tmp_path / "closedloop.yaml"
    target.write_text("version: 1  # mine\n", encoding="utf-8")

    result = CliRunner().invoke(init_app(), ["init", str(target)])

    assert result.exit_code == 1
    assert "already exists; use --force" in result.stderr
    assert target.read_text(encoding="utf-8") == "version: 1  # mine\n"
    assert not (tmp_path / ".closedloop").exists()


def test_init_with_force_overwrites_but_keeps_edited_mappings(
    tmp_path: Path, shipped_mappings: Path
) -> None:
    target = tmp_path / "closedloop.yaml"
    target.write_text("version: 1  # mine\n", encoding="utf-8")
    edited = tmp_path / "mappings" / "marketo-hubspot.yaml"
    edited.parent.mkdir()
    edited.write_text("# my edits\n", encoding="utf-8")

    result = CliRunner().invoke(init_app(), ["init", str(target), "--force"])

    assert result.exit_code == 0, result.output
    assert "version: 1\n" in target.read_text(encoding="utf-8")
    assert edited.read_text(encoding="utf-8") == "# my edits\n"
    assert (tmp_path / "mappings" / "marketo-salesforce.yaml").is_file()


def test_the_commented_hubspot_part_of_init_is_what_the_demo_adds() -> None:
    # Uncommenting the template's HubSpot connection gives SANDBOX_HUBSPOT, the demo's copy.
    lines = config_cmd.SANDBOX_CONFIG.splitlines()
    start = lines.index("  # hubspot:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  # "):
            break
        block.append("  " + line[4:])
    connection = yaml.safe_load("\n".join(block))["hubspot"]
    assert connection == config_cmd.SANDBOX_HUBSPOT


def _uncomment(text: str, first: str) -> str:
    """``text`` with the commented block starting at the line ``# <first>`` uncommented."""
    lines = text.splitlines()
    start = lines.index(f"# {first}")
    end = start
    while end < len(lines) and lines[end].startswith("# "):
        lines[end] = lines[end][2:]
        end += 1
    return "\n".join(lines) + "\n"


def test_the_commented_alerts_and_sync_log_sections_of_init_check_once_their_secrets_exist(
    tmp_path: Path,
) -> None:
    target = tmp_path / "closedloop.yaml"
    assert CliRunner().invoke(init_app(), ["init", str(target)]).exit_code == 0
    text = _uncomment(target.read_text(encoding="utf-8"), "sync_log:")
    target.write_text(_uncomment(text, "alerts:"), encoding="utf-8")

    with pytest.raises(ConfigError) as missing:
        load_config(target)
    secrets = tmp_path / ".closedloop" / "secrets"
    for name in ("slack-webhook", "smtp-password", "webhook-key"):
        assert f"file not found: '.closedloop/secrets/{name}'" in str(missing.value.issues)
        (secrets / name).write_text(
            "https://hooks.slack.com/services/T0/B0/x" if name == "slack-webhook" else "k" * 24
        )
    (tmp_path / ".closedloop" / "sandbox-ca.pem").write_text("a CA the sandbox writes\n")
    loaded = load_config(target)

    assert loaded.sync_log.keep.days == 30
    assert sorted(loaded.alerts.channels) == ["ops-mail", "ops-slack", "pager"]
    assert loaded.alerts.triggers.lag == "2h"
    assert "k" * 24 not in str(loaded.display())
