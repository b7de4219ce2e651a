"""The dashboard and the one-click labels in headless Chromium against the real gateway."""

from __future__ import annotations

import asyncio

import pytest

from bot.web.auth import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD

from .conftest import LOGS, SCREENSHOTS, gateway_process
from .seed import ANN, seed

pytestmark = pytest.mark.browser

CHARTS = ("daily", "reasons", "csat", "labels", "intents")


@pytest.fixture(scope="module")
def browser_gateway(analytics_redis, tmp_path_factory):
    events_db = tmp_path_factory.mktemp("browser-events") / "events.db"
    gateway = gateway_process(
        "gateway-analytics-browser",
        analytics_redis.url,
        "anbrowser",
        events_db,
        "http://127.0.0.1:9",
    )
    gateway.service.start()
    try:
        gateway.service.wait_healthy(timeout=60)
        ticket_id = asyncio.run(seed(gateway))
        yield gateway, ticket_id
    finally:
        gateway.service.stop()


async def painted(page, name: str) -> int:
    """How many non-transparent pixels the chart's canvas has."""
    return await page.evaluate(
        """(name) => {
            const canvas = document.querySelector(`[data-chart="${name}"]`);
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
            return n;
        }""",
        name,
    )


async def test_an_agent_labels_a_handled_ticket_in_one_click_and_the_lead_sees_the_charts(
    browser_gateway, browser
):
    gateway, ticket_id = browser_gateway
    errors: list[str] = []

    console = await browser.new_page(viewport={"width": 1280, "height": 900})
    console.on("pageerror", lambda error: errors.append(str(error)))
    await console.goto(gateway.url + "/agent")
    await console.fill("#login-name", ANN[0])
    await console.fill("#login-password", ANN[1])
    await console.click("#login-form button[type=submit]")
    row = console.locator(f'[data-label-panel] li[data-ticket="{ticket_id}"]')
    await row.wait_for(timeout=20_000)
    await console.screenshot(path=str(SCREENSHOTS / "console-labels.png"))
    await row.locator('button[data-label="correct"]').click()
    await row.wait_for(state="detached", timeout=10_000)

    assert await console.locator("[data-dashboard-link]").count() == 0  # Ann is no lead

    page = await browser.new_page(viewport={"width": 1300, "height": 1000})
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(gateway.url + "/dashboard")
    await page.fill("[data-login-form] input[name=login]", DEMO_AGENT_EMAIL)
    await page.fill("[data-login-form] input[name=password]", DEMO_AGENT_PASSWORD)
    await page.click("[data-login-form] button[type=submit]")
    await page.wait_for_selector("main.dash[data-ready=true]", timeout=20_000)

    tiles = await page.locator(".tile").all_inner_texts()
    assert any(t.startswith("CONVERSATIONS\n3") or "Conversations\n3" in t for t in tiles), tiles
    assert sorted(await page.evaluate("Object.keys(window.dashboardCharts)")) == sorted(CHARTS)
    for name in CHARTS:
        assert await painted(page, name) > 500, f"chart {name} drew nothing"
    labels = await page.evaluate("window.dashboardCharts.labels.data.datasets[0].data")
    assert labels == [1, 0, 0, 0]  # the click above: one "correct escalation"
    assert await page.locator("[data-intent-rows] tr").count() >= 2
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    assert errors == [], errors
    assert LOGS.exists()


async def test_a_lead_finds_the_dashboard_from_the_console(browser_gateway, browser):
    gateway, _ = browser_gateway
    console = await browser.new_page()
    await console.goto(gateway.url + "/agent")
    await console.fill("#login-name", DEMO_AGENT_EMAIL)
    await console.fill("#login-password", DEMO_AGENT_PASSWORD)
    await console.click("#login-form button[type=submit]")
    await console.locator("[data-dashboard-link]").click(timeout=20_000)
    await console.wait_for_selector("main.dash[data-ready=true]", timeout=20_000)  # same session
