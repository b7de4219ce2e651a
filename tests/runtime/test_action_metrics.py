"""The action server's /metrics (bot.runtime.action_metrics): behind the action server's token,
counting and timing action runs and the handoffs the bot opens, by reason, and JSON log lines
carrying the conversation id. Real Redis, real Rasa with the trained model, real action server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from bot.runtime.redis_server import RedisServer
from bot.runtime.services import BotServices, bot_services
from tests.web.conftest import LOGS

pytestmark = pytest.mark.model


def value(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name + '{' + labels + '}')} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def bot(redis_server: RedisServer, tmp_path_factory) -> Iterator[BotServices]:
    from bot.runtime.training import ensure_model

    events_db = tmp_path_factory.mktemp("action-metrics") / "events.db"
    env = {
        "REDIS_URL": redis_server.url,
        "SUPPORT_QUEUE_NAMESPACE": "support",
        "EVENTS_DB_URL": f"sqlite:///{events_db}",
    }
    with bot_services(ensure_model(quiet=True), LOGS, env) as services:
        yield services


def handoffs(text: str) -> float:
    """All handoffs counted, whatever their reason."""
    rows = re.findall(r"^support_action_handoffs_total\{[^}]*\} ([0-9.e+-]+)$", text, re.M)
    return sum(float(n) for n in rows)


async def scrape(http: aiohttp.ClientSession, bot: BotServices) -> str:
    url = bot.action_url.replace("/webhook", "/metrics")
    async with http.get(url, params={"token": bot.secrets.action_server_token}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def say(http: aiohttp.ClientSession, bot: BotServices, sender: str, text: str) -> list:
    url = f"{bot.rasa_url}/webhooks/rest/webhook"
    body = {"sender": sender, "message": text}
    async with http.post(url, json=body, params={"token": bot.rasa_token}) as response:
        assert response.status == 200
        return await response.json()


async def test_metrics_need_the_action_server_token(bot):
    url = bot.action_url.replace("/webhook", "/metrics")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 401
        async with http.get(url, params={"token": "wrong"}) as response:
            assert response.status == 401


async def test_action_runs_and_handoffs_are_counted_and_logged_with_the_conversation(
    bot, redis_client
):
    sender = f"metrics-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as http:
        before = await scrape(http, bot)
        first = await say(http, bot, sender, "how do I freeze my card?")
        assert first
        handoff = await say(http, bot, sender, "/request_human")
        assert handoff, "no reply to the request for a person"
        after = await scrape(http, bot)

    runs = 'action="action_respond",outcome="ok"'
    assert value(after, "support_action_runs_total", runs) >= (
        value(before, "support_action_runs_total", runs) + 2
    )
    timed = 'action="action_respond"'
    assert value(after, "support_action_seconds_count", timed) >= (
        value(before, "support_action_seconds_count", timed) + 2
    )
    # one ticket opened in the two turns, counted once per reason code it carries
    assert handoffs(after) > handoffs(before), (first, handoff)

    lines = []
    for raw in (LOGS / "actions.log").read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("conversation_id") == sender:
                lines.append(line["message"])
    assert sum(m.startswith("action action_respond outcome=ok") for m in lines) >= 2
