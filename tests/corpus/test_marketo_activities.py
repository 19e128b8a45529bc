"""The corpus of bad Marketo activities: each pulled beside a good one, through the whole pipeline
(Marketo -> Salesforce); the good one lands, the bad one becomes its dead letter, nothing crashes,
hangs, or writes the bad one to the CRM.

A case under ``marketo/`` is one activity (any JSON value) served on a REST activity page
(``form: rest``) or written by the emulator as a row of a bulk export file (``form: bulk``);
``@LEAD@`` is replaced by the id of a lead Marketo has, ``@RECENT@`` by a time an hour before
the good activity, and ``{"@REPEAT@": [text, n]}`` by ``text`` repeated ``n`` times.
``expect.code`` and ``expect.reason`` (and ``expect.stage``, default ``pull``): the dead letter
it must get; a ``null`` code means no dead letter, and ``expect.synced`` says whether the
activity reaches Salesforce (cleaned of control characters) or is passed over (a type nobody
asked for).

Also here: the size of the whole corpus (config, mappings, webhook bodies, CSV rows, Marketo).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select

from sandbox.server import SandboxServer
from sync.cli.demo_cmd import write_sandbox_config
from sync.config import load_config
from sync.ledger import DeadLetterRow, open_ledger
from sync.pipelines import run_pipeline
from tests.corpus.conftest import CORPUS_SIZES
from tests.corpus.harness import CORPUS, json_cases, time_limit

PIPELINE = "marketo-to-salesforce"
MINIMUM_CORPUS = 200


@pytest.fixture(scope="module")
def empty_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox with no world (its Marketo and Salesforce empty), shared by the cases."""
    server = SandboxServer(seed=None, tls_dir=tmp_path_factory.mktemp("tls"))
    with server:
        yield server


def _fill(value: Any, lead: int, recent: str) -> Any:
    if value == "@LEAD@":
        return lead
    if value == "@RECENT@":
        return recent
    if isinstance(value, dict) and list(value) == ["@REPEAT@"]:
        unit, times = value["@REPEAT@"]
        return unit * times  # a huge value, kept small in the case file
    if isinstance(value, dict):
        return {k: _fill(v, lead, recent) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, lead, recent) for v in value]
    return value


def _tasks(sandbox: SandboxServer) -> Counter[str]:
    store = sandbox.store("salesforce")
    with store.lock:
        rows = list(store.records["Task"].values())
    return Counter(
        r["Closedloop_Key__c"] for r in rows if r.get("Closedloop_Key__c") and not r["IsDeleted"]
    )


def _letters(engine: Engine) -> list[Any]:
    table = DeadLetterRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(select(table)).all())


@pytest.mark.parametrize("case", json_cases("marketo"))
def test_a_bad_marketo_activity_becomes_its_dead_letter_and_the_good_one_lands(
    case: dict[str, Any], empty_sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox = empty_sandbox
    sandbox.reset()
    store = sandbox.store("marketo")
    now = store.clock.now()
    with store.lock:
        lead = store.add_lead(
            {"email": "corpus@marketo-corpus.example", "lastName": "Corpus", "company": "Acme"},
            now - timedelta(days=3),
        )
        good = store.add_activity(lead, 10, now - timedelta(hours=1), primary=(5, "Good mail"))
        recent = f"{now - timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ}"
        store.plant_activity(_fill(case["activity"], lead, recent), now - timedelta(hours=2))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spec = {"kind": "touches", "source": "marketo", "sink": "salesforce",
            "mapping": "mappings/marketo-salesforce.yaml"}  # fmt: skip
    path = write_sandbox_config(tmp_path, sandbox, pipelines={PIPELINE: spec}, ledger_url=url)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["connections"]["marketo"]["bulk_backfill_days"] = 30 if case["form"] == "bulk" else None
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    engine = open_ledger(url)
    expect = case["expect"]

    try:
        with time_limit():
            summary = run_pipeline(load_config(path), PIPELINE, engine)
        letters = _letters(engine)
    finally:
        engine.dispose()
    tasks = _tasks(sandbox)

    assert summary.state == "succeeded", summary.error
    good_key = f"marketo:{good['marketoGUID']}"
    assert tasks[good_key] == 1  # the good activity beside it was delivered, once
    if expect["code"] is None:
        assert letters == []
        assert sum(tasks.values()) == (2 if expect["synced"] else 1)
        return
    assert [(letter.stage, letter.code) for letter in letters] == [
        (expect.get("stage", "pull"), expect["code"])
    ]
    assert expect["reason"] in letters[0].reason
    assert dict(tasks) == {good_key: 1}  # the bad one reached no CRM


def test_the_corpus_holds_at_least_200_bad_inputs_each_with_its_expected_error() -> None:
    sizes = {
        "config": len(list((CORPUS / "config").glob("*.yaml"))),
        "mappings": len(list((CORPUS / "mappings").glob("*.yaml"))),
        "webhook": len(json_cases("webhook")),
        "csv": len(json_cases("csv")),
        "marketo": len(json_cases("marketo")),
    }
    for folder in ("webhook", "csv", "marketo"):
        for path in (CORPUS / folder).glob("*.json"):
            assert "expect" in json.loads(path.read_text(encoding="utf-8")), path.name
    total = sum(sizes.values())
    CORPUS_SIZES.update(sizes)  # reported at the end of the run (tests/corpus/conftest.py)

    assert sizes["marketo"] >= 30
    assert total >= MINIMUM_CORPUS, sizes
