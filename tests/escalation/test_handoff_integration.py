"""Conversations through a real Rasa server (trained model) and the real action server produce
tickets in a real Redis with the right reason codes, priority and summary; the handback through
Rasa's HTTP API greets the customer back and the rating is stored with the escalated path."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.config import PROJECT_ROOT
from bot.handoff import ModeStore, resume_in_rasa
from bot.queue import HandoffQueue
from bot.runtime.services import (
    bot_services,
)

pytestmark = pytest.mark.model

LOGS = PROJECT_ROOT / "test-artifacts" / "logs" / "escalation"
NAMESPACE = "esc"


@dataclass
class Stack:
    rasa_url: str
    redis_url: str
    rasa_token: str  # of Rasa's HTTP API


@pytest.fixture(scope="module")
def stack(redis_server, tmp_path_factory) -> Iterator[Stack]:
    from bot.runtime.training import ensure_model

    given = os.environ.get("ESCALATION_TEST_MODEL")  # a model already trained, e.g. while iterating
    model = Path(given) if given else ensure_model(quiet=True)
    env = {
        "REDIS_URL": redis_server.url,
        "SUPPORT_QUEUE_NAMESPACE": NAMESPACE,
        "EVENTS_DB_URL": f"sqlite:///{tmp_path_factory.mktemp('esc-events') / 'events.db'}",
    }
    with bot_services(model, LOGS, env) as bot:
        yield Stack(bot.rasa_url, redis_server.url, bot.rasa_token)


class Customer:
    def __init__(self, session: aiohttp.ClientSession, stack: Stack) -> None:
        self.session = session
        self.stack = stack
        self.id = f"it-{uuid.uuid4().hex[:10]}"

    async def say(self, text: str) -> list[dict]:
        async with self.session.post(
            f"{self.stack.rasa_url}/webhooks/rest/webhook",
            json={"sender": self.id, "message": text},
        ) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def slots(self) -> dict:
        async with self.session.get(
            f"{self.stack.rasa_url}/conversations/{self.id}/tracker",
            params={"token": self.stack.rasa_token},
        ) as resp:
            return (await resp.json())["slots"]


@pytest.fixture
async def customer(stack, redis_client):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield Customer(session, stack)


@pytest.fixture
def queue(redis_client):
    return HandoffQueue(redis_client, namespace=NAMESPACE)


async def test_stolen_card_opens_an_urgent_ticket_with_the_bots_summary(customer, queue):
    await customer.say("hi")
    replies = await customer.say("my card was stolen yesterday")
    assert any("connecting you" in (r.get("text") or "") for r in replies)
    ticket = await queue.open_ticket_for(customer.id)
    assert ticket is not None and str(ticket.state) == "queued"
    assert ticket.reasons == ("sensitive:lost_or_stolen_card",)
    assert ticket.priority == 9 and ticket.topic == "card_security"
    lines = ticket.summary.transcript
    customer_lines = [t for t in lines if t.role == "customer"]
    assert [t.text for t in customer_lines] == ["hi", "my card was stolen yesterday"]
    assert customer_lines[-1].intent == "lost_or_stolen_card"
    assert customer_lines[-1].confidence > 0 and customer_lines[-1].sentiment is not None
    assert any(t.role == "bot" for t in lines)
    assert [i.name for i in ticket.summary.intents] == ["greet", "lost_or_stolen_card"]
    assert "sensitive:lost_or_stolen_card" in ticket.summary.text
    slots = await customer.slots()
    assert slots["handoff_mode"] == "waiting" and slots["handoff_ticket"] == ticket.id
    assert [e["decision"]["action"] for e in slots["escalation_audit"]] == ["none", "handoff"]


async def test_explicit_request_is_handed_off_on_the_same_turn(customer, queue):
    await customer.say("how long does a bank transfer take?")
    assert await queue.open_ticket_for(customer.id) is None
    await customer.say("I want to speak to a real person")
    ticket = await queue.open_ticket_for(customer.id)
    assert ticket.reasons == ("explicit_request",) and ticket.priority == 3


async def test_two_failed_turns_offer_a_person_and_accepting_opens_the_ticket(customer, queue):
    await customer.say("what's the capital of australia")
    offer = await customer.say("can you book me a table for dinner")
    buttons = [b["payload"] for r in offer for b in r.get("buttons") or []]
    assert "/request_human" in buttons and "/continue_with_bot" in buttons
    assert await queue.open_ticket_for(customer.id) is None
    await customer.say("/request_human")
    ticket = await queue.open_ticket_for(customer.id)
    assert ticket.reasons == ("explicit_request", "offer_accepted", "failed_turns")


async def test_handback_through_rasa_greets_back_and_the_rating_keeps_the_path(
    customer, queue, redis_client, stack
):
    await customer.say("agent")
    ticket = await queue.open_ticket_for(customer.id)
    await queue.agent_online("agent-it", skills=["general"], capacity=1, auto_assign=False)
    await queue.claim("agent-it", ticket.id)
    assert await customer.say("hello? anyone there") == []  # the agent has it: the bot is silent
    await queue.return_to_bot(ticket.id, "agent-it")
    store = ModeStore(redis_client, None, NAMESPACE)  # type: ignore[arg-type]
    await store.hand_back(customer.id)
    messages = await resume_in_rasa(stack.rasa_url, customer.id, token=stack.rasa_token)
    texts = [m.get("text") or "" for m in messages]
    assert any("Welcome back" in t for t in texts)
    assert any("rate" in t for t in texts)
    await customer.say('/csat_rating{"csat_score": "5"}')
    entries = [f for _, f in await redis_client.xrange(f"{NAMESPACE}:csat")]
    rating = next(e for e in entries if e["kind"] == "rating")
    assert rating["score"] == "5" and rating["path"] == "escalated"
    assert json.loads(rating["reasons"]) == ["explicit_request"]
    answered = await customer.say("how do I change my PIN?")  # a question, not a comment
    texts = [r.get("text") for r in answered]
    assert texts and "Thank you for your feedback!" not in texts
    assert (await customer.slots())["csat_stage"] is None
