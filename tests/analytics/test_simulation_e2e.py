"""End to end: the simulation drives customers and agents through the real stack (gateway, Rasa
with the trained model, its events stored in SQL by the event sink, action server, queue on Redis); the dashboard
API's figures must equal what the simulation did."""

from __future__ import annotations

import aiohttp
import pytest
from redis.asyncio import Redis

from bench.simulate import simulate
from bot.analytics.collect import collect_records
from bot.analytics.event_sink import wait_drained
from bot.analytics.replay import trajectory
from bot.config import PROJECT_ROOT
from bot.escalation import load_policy
from bot.web.auth import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD

from .conftest import SCREENSHOTS

pytestmark = [pytest.mark.model, pytest.mark.browser]

CUSTOMERS = 24


async def lead_get(base: str, path: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            base + "/api/agent/login",
            json={"login": DEMO_AGENT_EMAIL, "password": DEMO_AGENT_PASSWORD},
        ) as response:
            token = (await response.json())["token"]
        async with http.get(base + path, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def test_dashboard_figures_equal_what_the_simulation_did(analytics_stack, browser):
    gateway = analytics_stack
    ledger = await simulate(
        gateway.url,
        CUSTOMERS,
        seed=11,
        concurrency=3,
        agents=2,
        redis_url=gateway.redis_url,
        namespace=gateway.namespace,
    )
    async with Redis.from_url(gateway.redis_url) as client:  # the sink has stored every event
        await wait_drained(client, gateway.namespace)
    done = ledger.summary()
    assert done["errors"] == []
    runs = {run.conversation_id: run for run in ledger.customers}

    figures = await lead_get(gateway.url, "/api/analytics/summary")
    rows = {
        row["conversation_id"]: row
        for row in (await lead_get(gateway.url, "/api/analytics/conversations"))["conversations"]
    }

    assert figures["conversations"] == CUSTOMERS
    assert set(rows) == set(runs)
    assert figures["escalation"]["numerator"] == done["handed_off"]
    assert figures["abandonment_while_waiting"]["numerator"] == done["cancelled_while_waiting"]
    assert figures["time_to_first_agent_reply"]["count"] == done["tickets_replied"]
    labels = figures["escalation_labels"]
    for name, label in (
        ("correct", "correct"),
        ("unnecessary", "bot_should_have_solved"),
        ("missed", "too_late"),
        ("new_topic", "new_topic"),
    ):
        assert labels[name]["numerator"] == done["labels"].get(label, 0), name
    assert figures["csat_coverage"]["numerator"] == done["ratings"]
    rated = [r.rating for r in ledger.customers if r.rating is not None]
    bot_rated = [r.rating for r in ledger.customers if r.rating is not None and not r.handed_off]
    agent_rated = [r.rating for r in ledger.customers if r.rating is not None and r.agent_joined]
    assert figures["csat"]["bot_only"]["rated"] == len(bot_rated)
    assert figures["csat"]["agent_handled"]["rated"] == len(agent_rated)
    if bot_rated:
        assert figures["csat"]["bot_only"]["mean"] == round(sum(bot_rated) / len(bot_rated), 2)
    assert len(rated) == done["ratings"]

    for cid, run in runs.items():
        row = rows[cid]
        assert row["handoff"] == run.handed_off, (cid, run.persona)
        assert row["rating"] == run.rating, (cid, run.persona)
        if run.persona in ("routine_unhelped", "out_of_scope") and not run.handed_off:
            assert row["left_mid_problem"] and row["falsely_contained"], (cid, run.persona)
        if run.cancelled:
            assert any(t["state"] == "abandoned" and not t["handled"] for t in row["tickets"])

    # Policy replay: the policy in force, replayed over the recorded turns, hands off and offers
    # a person on exactly the turns the action server did.
    client = Redis.from_url(gateway.redis_url, decode_responses=True)
    try:
        records = await collect_records(client, gateway.namespace, gateway.events_url)
    finally:
        await client.close()
    policy = load_policy(PROJECT_ROOT / "escalation_policy.yml")
    for record in records:
        replayed = trajectory(record, policy)
        first = {
            action: next((d.turn for d in record.decisions if d.action == action), None)
            for action in ("handoff", "offer")
        }
        assert replayed.first_handoff == first["handoff"], record.conversation_id
        assert replayed.first_offer == first["offer"], record.conversation_id

    # The populated dashboard, as the support lead sees it after the simulation.
    page = await browser.new_page(viewport={"width": 1300, "height": 1000})
    await page.goto(gateway.url + "/dashboard")
    await page.fill("[data-login-form] input[name=login]", DEMO_AGENT_EMAIL)
    await page.fill("[data-login-form] input[name=password]", DEMO_AGENT_PASSWORD)
    await page.click("[data-login-form] button[type=submit]")
    await page.wait_for_selector("main.dash[data-ready=true]", timeout=30_000)
    shown = await page.evaluate("window.dashboardCharts.reasons.data.datasets[0].data")
    assert sum(shown) >= figures["escalation"]["numerator"]
    await page.screenshot(path=str(SCREENSHOTS / "dashboard-simulated.png"), full_page=True)
