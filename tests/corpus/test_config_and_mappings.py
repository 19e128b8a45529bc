"""The corpus of bad config and mapping files: each refused located, exit 2, nothing synced.

Each file under ``config/`` and ``mappings/`` opens with its manifest (what it is, the exit
code, the ``line:col`` and the message it must get). Every config case is run through ``config
check`` and ``sync``; every mapping case is used by a touches pipeline of a good config and run
through ``config check`` and ``sync``. The configs point at the sandbox (``${CORPUS_*}``
variables), so a call closedloop made anyway would be counted: none may be, except reading the
CRM schema a mapping is checked against.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import credentials
from sandbox.server import SandboxServer
from tests.corpus.harness import (
    CORPUS,
    Outcome,
    YamlCase,
    calls,
    closedloop,
    new_calls,
    yaml_cases,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD_CONFIG = (CORPUS / "good-config.yaml").read_text(encoding="utf-8")


@pytest.fixture
def corpus_env(
    tmp_path: Path, sandbox_readonly: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    """The ``${CORPUS_*}`` variables of the corpus configs, pointing at the sandbox."""
    values = {
        "CORPUS_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "CORPUS_SALESFORCE_URL": sandbox_readonly.salesforce_url,
        "CORPUS_CA_FILE": str(sandbox_readonly.ca_file),
        "CORPUS_SALESFORCE_SESSION": credentials.SALESFORCE_SESSION_ID,
        "CORPUS_HUBSPOT_URL": sandbox_readonly.hubspot_url,
        "CORPUS_HUBSPOT_TOKEN": credentials.HUBSPOT_TOKEN,
        "CORPUS_MARKETO_URL": sandbox_readonly.marketo_url,
        "CORPUS_MARKETO_SECRET": credentials.MARKETO_CLIENT_SECRET,
        "CORPUS_MAPPINGS": str(ROOT / "mappings"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLOSEDLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("CLOSEDLOOP_LOG_LEVEL", "error")
    return sandbox_readonly


def assert_refused(case: YamlCase, outcome: Outcome) -> None:
    outcome.assert_no_crash()
    assert outcome.code == case.exit_code, outcome.err
    located = [ln for ln in outcome.err.splitlines() if f"{case.path}:{case.at}: " in ln]
    assert located, outcome.err
    assert case.message in located[0]


def test_the_good_config_of_the_corpus_passes(
    corpus_env: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text(GOOD_CONFIG, encoding="utf-8")

    checked = closedloop(capsys, "config", "check", "--config", str(path))

    assert checked.code == 0, checked.err
    assert f"{path}: OK (3 connections, 2 pipelines)" in checked.out


@pytest.mark.parametrize("case", yaml_cases("config"))
def test_a_bad_config_is_refused_located_by_check_and_sync_and_syncs_nothing(
    case: YamlCase, corpus_env: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = calls(corpus_env)

    checked = closedloop(capsys, "config", "check", "--config", str(case.path))
    synced = closedloop(capsys, "sync", "--config", str(case.path))

    assert_refused(case, checked)
    assert_refused(case, synced)
    assert new_calls(before, corpus_env) == {}


def _schema_endpoints(corpus_env: SandboxServer, tmp_path: Path, capsys: Any) -> set[str]:
    """Cache the org schemas the shipped mappings need; the endpoints that read them."""
    warm = tmp_path / "warm.yaml"
    data = yaml.safe_load(GOOD_CONFIG)
    data["pipelines"]["marketo-to-hubspot"] = {
        "kind": "touches", "source": "marketo", "sink": "hubspot",
        "mapping": "${CORPUS_MAPPINGS}/marketo-hubspot.yaml",
    }  # fmt: skip
    warm.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    before = calls(corpus_env)
    closedloop(capsys, "config", "check", "--config", str(warm))  # the sandbox portal may lack
    # closedloop's own HubSpot properties (`check hubspot --fix`): only the reads matter here.
    return set(new_calls(before, corpus_env))


@pytest.mark.parametrize("case", yaml_cases("mappings"))
def test_a_bad_mapping_is_refused_located_by_check_and_sync_and_syncs_nothing(
    case: YamlCase, corpus_env: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_reads = _schema_endpoints(corpus_env, tmp_path, capsys)
    text = case.path.read_bytes().decode("utf-8", "replace")
    crm = "hubspot" if re.search(r"^crm: *hubspot", text, re.MULTILINE) else "salesforce"
    data = yaml.safe_load(GOOD_CONFIG)
    data["pipelines"] = {
        "under-test": {"kind": "touches", "source": "marketo", "sink": crm,
                       "mapping": str(case.path)},
    }  # fmt: skip
    config = tmp_path / "closedloop.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    before = calls(corpus_env)

    checked = closedloop(capsys, "config", "check", "--config", str(config))
    synced = closedloop(capsys, "sync", "--config", str(config))

    assert_refused(case, checked)
    assert_refused(case, synced)
    assert "nothing was synced" in synced.err
    # Reading the org's schema of an object the mapping names is all that may have happened.
    assert set(new_calls(before, corpus_env)) <= schema_reads | {
        e for e in new_calls(before, corpus_env) if e.startswith("salesforce.composite")
    }
    assert not any(e.startswith("marketo.") for e in new_calls(before, corpus_env))
