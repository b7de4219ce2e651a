"""Known conversations written the way the running stack writes them: Rasa events through Rasa's
SQLEventBroker, a ticket through the queue and the gateway's agent API."""

from __future__ import annotations

import time

import aiohttp
from rasa.core.brokers.sql import SQLEventBroker
from rasa.shared.core.events import BotUttered, UserUttered
from redis.asyncio import Redis

from bot.queue import Customer, HandoffQueue
from bot.web.auth import Agent, AgentAccounts

ANN = ("ann@pennantpay.example", "ann-password-1")
BOB = ("bob@pennantpay.example", "bob-password-1")


def user(text, intent, at, confidence=0.9, ranking=None):
    ranking = ranking or [(intent, confidence)]
    parse = {
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        "entities": [],
        "text": text,
    }
    return UserUttered(text, parse["intent"], [], parse, timestamp=at)


def bot(text, reply, at):
    return BotUttered(text, {}, metadata={"reply": reply}, timestamp=at)


def rasa_record(events_db, now: float) -> None:
    broker = SQLEventBroker(db=str(events_db))
    conversations = {
        "c-routine": [
            user("my card still hasn't arrived", "card_arrival", now - 300),
            bot("Cards arrive in 3-5 working days ...", "answer:card_arrival", now - 299),
            bot("Did that answer your question?", "did_that_help", now - 299),
            user("/affirm", "affirm", now - 290),
        ],
        "c-fallback": [
            user(
                "blorp my flibber",
                "nlu_fallback",
                now - 250,
                0.2,
                [("nlu_fallback", 0.2), ("top_up_failed", 0.15)],
            ),
            bot("Sorry, I didn't get that.", "rephrase", now - 249),
        ],
        "c-handoff": [
            user("someone used my card", "compromised_card", now - 200, 0.97),
            bot("This needs a person, connecting you now.", "handoff_sensitive", now - 199),
        ],
    }
    for sender, events in conversations.items():
        for event in events:
            broker.publish({"sender_id": sender, **event.as_dict()})


async def seed(gateway) -> str:
    """Fill the gateway's stores; returns the handed-off conversation's ticket id."""
    now = time.time()
    rasa_record(gateway.events_db, now)
    client = Redis.from_url(gateway.redis_url, decode_responses=True)
    try:
        accounts = AgentAccounts(client, gateway.namespace)
        for account, password in (ANN, BOB):
            name = account.split("@")[0].title()
            await accounts.create(Agent(account, name, ["card_security"], 2), password)
        queue = HandoffQueue(client, namespace=gateway.namespace)
        ticket = await queue.enqueue(
            "c-handoff", Customer("cust-h"), ["sensitive:compromised_card"], 8, "card_security"
        )
    finally:
        await client.close()
    async with aiohttp.ClientSession() as http:
        token = await login(http, gateway.url, *ANN)
        auth = {"Authorization": f"Bearer {token}"}
        for path, body in (
            ("/api/agent/presence", {"online": True}),
            (f"/api/tickets/{ticket.id}/claim", None),
            (f"/api/tickets/{ticket.id}/messages", {"text": "I've blocked the card."}),
            (f"/api/tickets/{ticket.id}/resolve", {"disposition": "solved"}),
        ):
            async with http.post(gateway.url + path, json=body, headers=auth) as response:
                assert response.status == 200, await response.text()
    return ticket.id


async def login(http: aiohttp.ClientSession, base: str, name: str, password: str) -> str:
    async with http.post(
        base + "/api/agent/login", json={"login": name, "password": password}
    ) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["token"]
