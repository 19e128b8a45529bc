"""The sync-health page in headless Chromium, end to end against the Salesforce sandbox.

An admin signs in, sees a refusal Salesforce gave three records as one group with its count,
opens a record and reads the payload and the vendor's message, fixes the mapping, replays the
group and sees it clear; every page also reads on a 390 px phone without sideways scrolling.
Screens of each step are written to ``<pytest tmp dir>/screens`` (or ``$CLOSEDLOOP_ARTEFACTS``,
a folder git ignores), as the report's browser test does with Debian's chromium.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.config import load_config
from sync.connections import Connections
from sync.pipelines import run_pipeline
from tests.sync.pipelines.conftest import (
    badge_pipeline,
    badge_rows,
    files_mapping,
    known_emails,
    workspace_factory,  # noqa: F401 - the fixture, for this module's tests
)
from tests.sync.test_report_browser import browser  # noqa: F401 - the fixture
from tests.sync.ui.conftest import PASSWORDS, Served, write_users

PIPELINE = "badges-to-crm"
MAPPING = "mappings/test-files-salesforce.yaml"
REFUSAL = "INVALID_CROSS_REFERENCE_KEY"


def _owner_who_left(mapping: dict[str, Any]) -> None:
    """A mapping mistake: the Tasks go to a user the org does not have (any more)."""
    mapping["touches"]["fields"]["OwnerId"] = "005000000000999AAA"


@pytest.fixture
def screens(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CLOSEDLOOP_ARTEFACTS", tmp_path)) / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def refused(workspace_factory: Any, ledger_url: str) -> Iterator[tuple[Any, Any]]:  # noqa: F811
    if not ledger_url.startswith("sqlite"):
        pytest.skip("the browser walk runs on SQLite; the queries are tested on both")
    ws = workspace_factory({PIPELINE: badge_pipeline(MAPPING)}, edit_mapping=_owner_who_left)
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 3)))
    summary = run_pipeline(ws.config, PIPELINE, ws.engine)
    assert summary.state == "succeeded", summary.error
    write_users(ws.folder)
    data = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    data["ui"] = {"users_file": "ui-users.txt"}
    ws.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    config = load_config(ws.config_path)
    with Connections(config) as connections:
        yield ws, (config, connections)


def _no_sideways_scroll(page: Any) -> None:
    scroll, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client == 390, page.url


def test_an_admin_finds_a_salesforce_refusal_fixes_the_mapping_replays_and_sees_it_clear(
    browser: Any,  # noqa: F811
    refused: Any,
    serve_page: Any,
    screens: Path,
) -> None:
    ws, (config, connections) = refused
    served: Served = serve_page(config, ws.engine, connections)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{served.url}/ui/")
    assert "/ui/sign-in" in page.url
    page.fill("#user", "otto")
    page.fill("#password", PASSWORDS["otto"])
    page.screenshot(path=screens / "1-sign-in.png", full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.url}/ui/")
    row = page.locator(f"tr[data-pipeline='{PIPELINE}']")
    assert "succeeded" in row.inner_text()
    budget = page.locator("tr[data-connection='salesforce'] td").all_inner_texts()
    assert budget[0] == "salesforce"
    assert int(budget[1]) > 0  # calls counted by today's run
    assert int(budget[2]) >= int(budget[1])  # used today (the org's figure, every integration)
    assert int(budget[4]) >= int(budget[2])  # the forecast to the end of the vendor's day
    page.screenshot(path=screens / "2-overview.png", full_page=True)

    page.click("nav >> text=Errors")
    groups = page.locator("tr.group")
    assert groups.count() == 1
    group = groups.first
    assert REFUSAL in group.inner_text()
    assert group.locator("td.count").inner_text() == "3"
    assert "salesforce refused the record" in group.inner_text()
    assert "\tpush\t" in group.inner_text()
    page.screenshot(path=screens / "3-errors.png", full_page=True)

    group.locator("a").click()
    assert page.locator("dd.count").inner_text() == "3"
    page.screenshot(path=screens / "4-group.png", full_page=True)
    group_url = page.url
    page.locator("tr.letter a").first.click()
    message = page.locator(".vendor-message").inner_text()
    assert "invalid cross reference id" in message
    sent = page.locator("pre.payload.sent").inner_text()
    assert '"OwnerId": "005000000000999AAA"' in sent, page.inner_text("main")
    assert '"Subject": "Met at Pipeline Expo"' in sent
    page.screenshot(path=screens / "5-record.png", full_page=True)

    phone = browser.new_context(viewport={"width": 390, "height": 844})
    phone.add_cookies(context.cookies())
    small = phone.new_page()
    for url in (f"{served.url}/ui/", f"{served.url}/ui/errors", group_url, page.url,
                f"{served.url}/ui/runs"):  # fmt: skip
        small.goto(url)
        assert "/ui/sign-in" not in small.url
        _no_sideways_scroll(small)
    small.goto(group_url)
    small.screenshot(path=screens / "6-group-390px.png", full_page=True)
    phone.close()

    files_mapping(ws.folder)  # the fix: the shipped mapping's owner (the org's default)
    page.goto(group_url)
    page.click("#replay-group")
    page.wait_for_selector("#cleared")
    assert re.search(r"Replayed 3, still failing 0", page.locator(".flash").inner_text())
    page.screenshot(path=screens / "7-replayed.png", full_page=True)
    page.click("nav >> text=Errors")
    assert page.locator("tr.group").count() == 0
    assert "No open errors." in page.inner_text("main")
    page.click("nav >> text=Overview")
    audit = page.locator("#audit").inner_text()
    assert "replay" in audit
    assert "otto" in audit
    page.screenshot(path=screens / "8-overview-after.png", full_page=True)
    page.click("nav >> text=Runs")
    assert page.locator("tbody tr").count() == 2  # the run and the replay, with fingerprints
    assert re.search(r"[0-9a-f]{12}", page.locator("tbody tr").first.inner_text())
    assert {state for state, _ in ws.deliveries().values()} == {"confirmed"}

    page.click("nav >> text=Overview")
    page.locator(f"tr[data-pipeline='{PIPELINE}'] button", has_text="Run now").click()
    assert f"Run of {PIPELINE} started." in page.locator(".flash").inner_text()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page.goto(f"{served.url}/ui/runs")
        if (
            page.locator("tbody tr").count() == 3
            and "succeeded" in page.locator("tbody tr").first.inner_text()
        ):
            break
        time.sleep(0.5)
    assert page.locator("tbody tr").count() == 3  # the page's run, recorded like any other
    page.screenshot(path=screens / "9-runs-after-run-now.png", full_page=True)
    assert problems == []
    context.close()
