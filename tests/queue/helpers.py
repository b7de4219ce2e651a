"""Helpers of the handoff-queue tests: tickets with realistic content, and a Redis snapshot."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from bot.queue import Customer, HandoffQueue, IntentScore, Summary, Ticket, TranscriptLine


def customer(n: int | str = 1) -> Customer:
    return Customer(id=f"cust-{n}", display_name=f"Customer {n}", verified=True)


def summary(text: str = "card declined twice") -> Summary:
    return Summary(
        text=text,
        intents=(IntentScore("card_declined", 0.42), IntentScore("card_blocked", 0.31)),
        transcript=(
            TranscriptLine("customer", "my card was declined", 1.0, "card_declined", 0.42, -0.4),
            TranscriptLine("bot", "Sorry to hear that. Was it online?", 2.0),
            TranscriptLine(
                "customer", "this is useless, get me a person", 3.0, "human_handoff", 0.9, -0.8
            ),
        ),
    )


async def enqueue(
    q: HandoffQueue, conv: str, priority: int = 5, topic: str = "cards", **kw: Any
) -> Ticket:
    return await q.enqueue(
        conv, customer(conv), ["low_confidence"], priority, topic, summary(), **kw
    )


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key and its full content: to check that a refused call changed nothing."""
    out: dict[str, Any] = {}
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        if kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[key] = sorted(await redis.smembers(key))
        elif kind == "stream":
            out[key] = await redis.xrange(key)
        elif kind == "list":
            out[key] = await redis.lrange(key, 0, -1)
        else:
            out[key] = await redis.get(key)
    return out
