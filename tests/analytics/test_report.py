"""The report command's three forms: terminal text, a self-contained HTML page, a PNG."""

from __future__ import annotations

import re

import pytest

from bot.analytics import report
from bot.analytics.records import build_records
from bot.analytics.summary import summarize

from .conftest import SCREENSHOTS
from .scenario import DAY, scenario

START, END = DAY - 9 * 3600, DAY + 15 * 3600  # 2026-11-02, one UTC day


def figures() -> dict:
    return summarize(build_records(scenario()), START, END)


def test_terminal_report_prints_every_measure_with_its_counts():
    text = report.text_report(figures())
    for line in (
        "conversations                 8",
        "containment                   37.5 % (3/8)",
        "false containment             80.0 % (4/5) of bot-only",
        "escalation rate               37.5 % (3/8)",
        "abandoned while waiting       33.3 % (1/3)",
        "CSAT coverage                 37.5 % (3/8)",
        "unnecessary escalations       50.0 % (1/2)",
        "2026-11-02      8     37.5 %       80.0 %     37.5 %     33.3 %       68 s  3.0 / 4.0",
    ):
        assert line in text
    assert text.index("transfer_timing") < text.index("card_arrival")  # worst served first


@pytest.mark.browser
async def test_html_report_is_self_contained_and_draws_its_charts_offline(tmp_path, browser):
    page_html = report.html_report(figures())
    assert not re.search(r'(src|href)="(/|https?:)', page_html)  # nothing to fetch
    path = tmp_path / "report.html"
    path.write_text(page_html)
    page = await browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(path.as_uri())
    await page.wait_for_selector("main.dash[data-ready=true]")
    assert len(await page.evaluate("Object.keys(window.dashboardCharts)")) == 5
    assert await page.locator(".tile .value").first.inner_text() == "8"
    assert not await page.locator("[data-replay-form]").is_visible()  # live-only parts hidden
    await page.screenshot(path=str(SCREENSHOTS / "report-html.png"), full_page=True)
    assert errors == []


def test_png_report_is_written(tmp_path):
    path = tmp_path / "report.png"
    report.png_report(figures(), path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
