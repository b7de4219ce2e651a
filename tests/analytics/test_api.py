"""The dashboard API in the real gateway: lead-only figures, one-click labels, replay, export."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import yaml
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from bot.config import PROJECT_ROOT
from bot.web.auth import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD

from .seed import ANN, BOB, login, seed


@pytest.fixture(scope="module")
def seeded(analytics_gateway):
    return asyncio.run(seed(analytics_gateway))


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http, url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        body = await response.text()
        return response.status, body


async def post(http, url, body, token):
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


async def test_the_summary_is_for_support_leads_only(analytics_gateway, seeded, http):
    url = analytics_gateway.url + "/api/analytics/summary"
    assert (await get(http, url))[0] == 401
    agent = await login(http, analytics_gateway.url, *ANN)
    status, body = await get(http, url, agent)
    assert status == 403 and "support leads" in body


async def test_the_summary_counts_the_recorded_conversations(analytics_gateway, seeded, http):
    lead = await login(http, analytics_gateway.url, DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)
    status, body = await get(http, analytics_gateway.url + "/api/analytics/summary", lead)
    assert status == 200
    figures = yaml.safe_load(body)
    assert figures["conversations"] == 3
    assert figures["containment"]["numerator"] == 1  # c-routine
    assert figures["escalation"] == {"numerator": 1, "denominator": 3, "rate": 0.3333}
    assert figures["escalation_reasons"]["sensitive:compromised_card"]["numerator"] == 1
    assert figures["time_to_first_agent_reply"]["count"] == 1
    assert figures["agent_handle_time"]["count"] == 1
    assert figures["per_intent"][0]["intent"] in ("top_up_failed", "compromised_card")
    status, body = await get(
        http, analytics_gateway.url + "/api/analytics/summary?from=2026-13-01", lead
    )
    assert status == 400 and "YYYY-MM-DD" in body


async def test_only_the_agent_who_handled_a_ticket_labels_it_in_one_click(
    analytics_gateway, seeded, http
):
    base = analytics_gateway.url
    bob = await login(http, base, *BOB)
    ann = await login(http, base, *ANN)
    status, _ = await post(http, f"{base}/api/tickets/{seeded}/label", {"label": "correct"}, bob)
    assert status == 403
    status, body = await post(http, f"{base}/api/tickets/{seeded}/label", {"label": "nope"}, ann)
    assert status == 400 and "label" in body["error"]["message"]
    status, pending = await get(http, base + "/api/analytics/labels", ann)
    assert status == 200 and seeded in pending
    status, body = await post(http, f"{base}/api/tickets/{seeded}/label", {"label": "correct"}, ann)
    assert status == 200 and body["label"] == "correct"
    status, pending = await get(http, base + "/api/analytics/labels", ann)
    assert seeded not in pending
    lead = await login(http, base, DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)
    figures = yaml.safe_load((await get(http, base + "/api/analytics/summary", lead))[1])
    assert figures["escalation_labels"]["correct"]["numerator"] == 1
    assert figures["escalation_labels"]["coverage"]["rate"] == 1.0


async def test_policy_replay_rejects_a_bad_policy_and_shows_changed_conversations(
    analytics_gateway, seeded, http
):
    base = analytics_gateway.url
    lead = await login(http, base, DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)
    status, body = await post(
        http, base + "/api/analytics/replay", {"policy": "failed_turns: [1"}, lead
    )
    assert status == 400 and "YAML" in body["error"]["message"]
    policy = yaml.safe_load((PROJECT_ROOT / "escalation_policy.yml").read_text())
    policy["failed_turns"]["offer_after"] = 0
    status, body = await post(
        http, base + "/api/analytics/replay", {"policy": yaml.safe_dump(policy)}, lead
    )
    assert status == 400 and "offer_after" in body["error"]["message"]
    policy["failed_turns"]["offer_after"] = 1  # offer a person on the first unclear message
    status, body = await post(
        http, base + "/api/analytics/replay", {"policy": yaml.safe_dump(policy)}, lead
    )
    assert status == 200
    assert body["conversations"] == 3
    assert [(r["conversation_id"], r["change"]) for r in body["rows"]] == [
        ("c-fallback", "newly_offered")
    ]


async def test_nlu_candidates_export_is_rasa_yaml(analytics_gateway, seeded, http):
    lead = await login(http, analytics_gateway.url, DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)
    status, text = await get(
        http, analytics_gateway.url + "/api/analytics/nlu-candidates.yml", lead
    )
    assert status == 200
    examples = {m.get("text"): m for m in RasaYAMLReader().reads(text).intent_examples}
    assert examples["blorp my flibber"].get("intent") == "top_up_failed"
    assert examples["someone used my card"].get("metadata")["example"]["disposition"] == "solved"
