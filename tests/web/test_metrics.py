"""The gateway's /metrics (real gateway processes, real Redis) and its JSON log lines carrying
the conversation id during a real turn (the whole stack with the trained model)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import aiohttp
import pytest

from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from tests.web.conftest import LOGS, Gateway, gateway_service

METRIC_TOKEN = "scrape-secret-for-tests"


def value(text: str, name: str, labels: str = "") -> float:
    """The sample `name{labels}` of a Prometheus text page (0 when absent)."""
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def scrape(http: aiohttp.ClientSession, url: str, **kwargs) -> str:
    async with http.get(f"{url}/metrics", **kwargs) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def new_conversation(http: aiohttp.ClientSession, url: str) -> tuple[str, dict[str, str]]:
    async with http.post(f"{url}/api/conversations") as response:
        created = await response.json()
    return created["conversation_id"], {"Authorization": f"Bearer {created['token']}"}


async def test_a_turn_without_rasa_is_counted_with_its_handoff_and_queue_gauges(http, gateway):
    before = await scrape(http, gateway.url)
    conversation_id, headers = await new_conversation(http, gateway.url)
    url = f"{gateway.url}/api/conversations/{conversation_id}/messages"
    async with http.post(url, json={"payload": "/request_human"}, headers=headers) as response:
        assert response.status == 200
    after = await scrape(http, gateway.url)

    turns = 'outcome="ok"'
    assert value(after, "support_gateway_turns_total", turns) == (
        value(before, "support_gateway_turns_total", turns) + 1
    )
    assert value(after, "support_gateway_turn_seconds_count") == (
        value(before, "support_gateway_turn_seconds_count") + 1
    )
    kind = 'kind="rasa_unavailable"'
    assert value(after, "support_gateway_errors_total", kind) == (
        value(before, "support_gateway_errors_total", kind) + 1
    )
    reason = 'reason="bot_unavailable"'
    assert value(after, "support_gateway_handoffs_total", reason) == (
        value(before, "support_gateway_handoffs_total", reason) + 1
    )
    waiting = re.findall(r"^support_queue_waiting\{topic=\"[^\"]+\"\} ([0-9.]+)$", after, re.M)
    assert sum(float(n) for n in waiting) >= 1
    assert value(after, "support_queue_open") >= 1
    assert "support_queue_oldest_wait_seconds " in after
    assert "support_agents_online " in after


async def test_bad_requests_are_counted_by_kind(http, gateway):
    before = await scrape(http, gateway.url)
    conversation_id, headers = await new_conversation(http, gateway.url)
    url = f"{gateway.url}/api/conversations/{conversation_id}/messages"
    async with http.post(url, json={"text": 42}, headers=headers) as response:
        assert response.status == 400
    async with http.post(url, json={"text": "hi"}) as response:  # no token
        assert response.status == 401
    after = await scrape(http, gateway.url)
    for kind in ("bad_request", "unauthorized"):
        label = f'kind="{kind}"'
        assert value(after, "support_gateway_errors_total", label) == (
            value(before, "support_gateway_errors_total", label) + 1
        )
    outcome = 'outcome="bad_request"'
    assert value(after, "support_gateway_turns_total", outcome) == (
        value(before, "support_gateway_turns_total", outcome) + 1
    )


@pytest.fixture(scope="module")
def guarded_gateways(web_redis: RedisServer) -> Iterator[tuple[Gateway, Gateway]]:
    """One gateway with METRICS_TOKEN, one without behind a trusted proxy on loopback."""
    nobody = f"http://127.0.0.1:{free_port()}"
    with_token = gateway_service("gateway-metrics-token", web_redis.url, nobody, "webtest")
    with_token.service.env["METRICS_TOKEN"] = METRIC_TOKEN
    proxied = gateway_service("gateway-metrics-proxied", web_redis.url, nobody, "webtest")
    proxied.service.env["TRUSTED_PROXIES"] = "127.0.0.1"
    with services.running([with_token.service, proxied.service], timeout=60):
        yield with_token, proxied


async def test_metrics_need_the_bearer_token_when_one_is_set(http, guarded_gateways):
    with_token, _ = guarded_gateways
    async with http.get(f"{with_token.url}/metrics") as response:
        assert response.status == 401
    wrong = {"Authorization": "Bearer not-it"}
    async with http.get(f"{with_token.url}/metrics", headers=wrong) as response:
        assert response.status == 401
    right = {"Authorization": f"Bearer {METRIC_TOKEN}"}
    assert "support_gateway_turns_total" in await scrape(http, with_token.url, headers=right)


async def test_without_a_token_metrics_are_refused_to_a_client_beyond_the_proxy(
    http, guarded_gateways
):
    _, proxied = guarded_gateways
    outside = {"X-Forwarded-For": "203.0.113.7"}
    async with http.get(f"{proxied.url}/metrics", headers=outside) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    assert "support_queue_open" in await scrape(http, proxied.url)  # loopback itself


def json_lines(path) -> list[dict]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


@pytest.mark.model
async def test_log_lines_of_a_real_turn_carry_the_conversation_id(http, stack):
    conversation_id, headers = await new_conversation(http, stack.url)
    url = f"{stack.url}/api/conversations/{conversation_id}/messages"
    async with http.post(url, json={"text": "how do I freeze my card?"}, headers=headers) as r:
        assert r.status == 200
    gateway_lines = [
        line
        for line in json_lines(LOGS / "gateway-e2e.log")
        if line.get("conversation_id") == conversation_id
    ]
    assert any(line["message"].startswith("turn outcome=ok") for line in gateway_lines)
    action_lines = [
        line
        for line in json_lines(LOGS / "actions.log")
        if line.get("conversation_id") == conversation_id
    ]
    assert any(line["message"].startswith("action action_respond") for line in action_lines), (
        action_lines
    )
