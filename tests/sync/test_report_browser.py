"""The HTML report in headless Chromium: no console errors, no requests, every chart drawn.

Chromium is Debian's package (``scripts/install-chromium.sh`` installs it), driven through
Playwright for Python; ``playwright install`` (which downloads a browser) is never used. In CI
(``CI=true``) a missing browser is installed, and if it still cannot be had the test fails; on
a developer machine without it the test is skipped with the command that enables it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.seed import DISQUALIFY_REASONS, RECYCLE_REASONS
from sync.report import write_report
from tests.sync.report_world import analytics_config, world_ledger

CHROMIUM = Path("/usr/bin/chromium")
INSTALLER = Path(__file__).resolve().parents[2] / "scripts" / "install-chromium.sh"
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHARTS = {
    "funnel",
    "sla",
    "sla-reps",
    "roi",
    "attribution",
    "revenue",
    "reasons-disqualified",
    "reasons-recycled",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the HTML report browser test cannot run in CI: {reason}")
    pytest.skip(f"{reason}; enable with: sudo bash scripts/install-chromium.sh")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright (installed first in CI when missing)."""
    if not CHROMIUM.exists() and os.environ.get("CI", "").lower() == "true":
        done = subprocess.run(
            ["bash", str(INSTALLER)], capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            _unavailable(f"{INSTALLER.name} failed: {done.stderr.strip()[-500:]}")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    engine, world = world_ledger(folder)
    try:
        return write_report(engine, analytics_config(folder), folder / "report.html", now=world.now)
    finally:
        engine.dispose()


def test_report_loads_offline_without_console_errors_and_every_chart_draws(
    browser: Any, report: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri(), wait_until="load")
    assert problems == []
    assert requests == [report.as_uri()]
    charts = page.evaluate(
        """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
            const box = svg.getBoundingClientRect();
            const marks = Array.from(svg.querySelectorAll('rect:not(.empty-box), line'))
                .map(el => el.getBoundingClientRect())
                .filter(b => b.width > 0 && b.height > 0);
            return {name: svg.dataset.chart, width: box.width, height: box.height,
                    marks: marks.length, empty: !!svg.querySelector('.empty-box')};
        })"""
    )
    assert {c["name"] for c in charts} == CHARTS
    for chart in charts:
        assert chart["width"] > 300, chart
        assert chart["height"] > 30, chart
        assert not chart["empty"], chart
        assert chart["marks"] >= 2, chart
    page.close()


def test_table_headers_sort_rows_by_text_or_by_number_when_clicked(
    browser: Any, report: Path
) -> None:
    page = browser.new_page()
    page.goto(report.as_uri())
    names = "#campaigns table tbody tr td:nth-child(1)"
    spend = "#campaigns table tbody tr td:nth-child(3)"
    before = page.locator(names).all_inner_texts()
    header = page.locator("#campaigns table thead th")
    header.filter(has_text="Campaign").click()
    assert page.locator(names).all_inner_texts() == sorted(before, key=str.lower)
    header.filter(has_text="Campaign").click()
    assert page.locator(names).all_inner_texts() == sorted(before, key=str.lower, reverse=True)
    header.filter(has_text="Spend").click()
    amounts = [float(t.replace(",", "")) for t in page.locator(spend).all_inner_texts()]
    assert amounts == sorted(amounts)
    assert amounts[-1] == 100_000
    page.close()


def test_the_reasons_section_reads_on_a_390_px_phone_with_the_seeded_reasons(
    browser: Any, report: Path
) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(report.as_uri() + "#reasons")
    scroll, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client == 390  # the page never scrolls sideways; wide tables scroll inside
    heading = page.locator("#reasons h2").bounding_box()
    nav = page.locator("nav").bounding_box()
    assert heading is not None
    assert nav is not None
    assert nav["y"] + nav["height"] <= heading["y"] < 844  # on screen, not under the sticky nav
    reasons = page.locator("#reasons-table tbody td:nth-child(1)").all_inner_texts()
    assert sorted(reasons) == sorted({*DISQUALIFY_REASONS, *RECYCLE_REASONS})
    outcomes = page.locator("#reasons-table tbody td:nth-child(2)").all_inner_texts()
    assert set(outcomes) == {"Disqualified", "Recycled"}
    bars = page.evaluate(
        """() => ['reasons-disqualified', 'reasons-recycled'].map(name => {
            const svg = document.querySelector(`svg[data-chart="${name}"]`);
            return Array.from(svg.querySelectorAll('rect')).filter(r => {
                const box = r.getBoundingClientRect();
                return box.width > 0 && box.left >= 0 && box.right <= 390;
            }).length;
        })"""
    )
    assert bars == [len(DISQUALIFY_REASONS), len(RECYCLE_REASONS)]
    # Each month's row of the trend reads in its own box: the box fits the screen, and the
    # reasons that do not fit scroll inside it.
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('#reasons .wide')).map(box => {
            const r = box.getBoundingClientRect();
            return {left: r.left, right: r.right, font: parseFloat(getComputedStyle(
                box.querySelector('td')).fontSize), rows: box.querySelectorAll('tbody tr').length};
        })"""
    )
    assert len(boxes) >= 8  # month, campaign, channel and rep, each for both outcomes
    for box in boxes:
        assert 0 <= box["left"] < box["right"] <= 390, box
        assert box["font"] >= 13, box
        assert box["rows"] >= 1, box
    page.close()


# Every visible text of the page, HTML or chart, with the size it is drawn at: an SVG label's
# CSS size times the scale its chart is drawn at (a 12 px label in a chart shrunk to half is
# 6 px on the screen).
_DRAWN_TEXT_SIZES = """() => {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode;
        const el = node.parentElement;
        if (!node.textContent.trim() || !el || el.closest('title, script, style')) continue;
        const box = el.getBoundingClientRect();
        if (box.width === 0 || box.height === 0) continue;
        let size = parseFloat(getComputedStyle(el).fontSize);
        const svg = el.closest('svg');
        if (svg) size *= svg.getScreenCTM().a;
        out.push({text: node.textContent.trim().slice(0, 40), size: size,
                  chart: svg ? svg.dataset.chart : null});
    }
    return out;
}"""


def test_the_whole_report_reads_on_a_390_px_phone(browser: Any, report: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(report.as_uri(), wait_until="load")
    scroll, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client == 390  # no sideways page scroll; wide tables and charts scroll in
    texts = page.evaluate(_DRAWN_TEXT_SIZES)
    charted = {t["chart"] for t in texts if t["chart"]}
    assert charted == CHARTS  # every chart's labels were measured
    assert len(texts) > 500
    small = [t for t in texts if t["size"] < 10]
    assert small == [], small[:10]
    # A chart too wide for the screen scrolls inside its own box, which fits the screen.
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.chart-box')).map(b => {
            const r = b.getBoundingClientRect();
            return {left: r.left, right: r.right, scrolls: b.scrollWidth > b.clientWidth};
        })"""
    )
    assert len(boxes) == len(CHARTS)
    for box in boxes:
        assert 0 <= box["left"] < box["right"] <= 390, box
    assert any(box["scrolls"] for box in boxes)  # the month columns do not fit a phone
    page.close()
