"""Closed tickets do not stay forever: their keys expire after the configured retention (the
default from bot.config) and each close trims older ids from the closed-tickets index."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from bot import keys
from bot.config import Settings
from bot.queue import Customer, HandoffQueue
from bot.queue.factory import open_queue


async def test_the_configured_queue_expires_closed_tickets_after_the_retention(
    redis_client: Redis,
) -> None:
    settings = Settings(queue_namespace="ret", closed_ticket_retention_seconds=3600)
    queue = open_queue(redis_client, settings)
    ticket = await queue.enqueue("conv-r1", Customer("c1"), ["low_confidence"], 5, "cards")
    await queue.send_message(ticket.id, "customer", "c1", "hello?", "m1")
    ticket_key = keys.QUEUE_TICKET.format(ns="ret", ticket=ticket.id)
    assert await redis_client.ttl(ticket_key) == -1  # open tickets are kept
    await queue.abandon(ticket.id, "customer_cancelled")
    for key in (
        ticket_key,
        keys.QUEUE_TICKET_MESSAGES.format(ns="ret", ticket=ticket.id),
        keys.QUEUE_TICKET_AUDIT.format(ns="ret", ticket=ticket.id),
        keys.QUEUE_CONVERSATION_LAST.format(ns="ret", conversation="conv-r1"),
    ):
        assert 3500 < await redis_client.ttl(key) <= 3600, key


async def test_zero_keeps_closed_tickets(redis_client: Redis) -> None:
    settings = Settings(queue_namespace="ret0", closed_ticket_retention_seconds=0)
    queue = open_queue(redis_client, settings)
    ticket = await queue.enqueue("conv-r0", Customer("c1"), ["low_confidence"], 5, "cards")
    await queue.abandon(ticket.id, "customer_cancelled")
    assert await redis_client.ttl(keys.QUEUE_TICKET.format(ns="ret0", ticket=ticket.id)) == -1


async def test_a_close_trims_expired_ids_from_the_closed_index(redis_client: Redis) -> None:
    queue = HandoffQueue(redis_client, namespace="ret-idx", closed_ttl_seconds=0.2)
    first = await queue.enqueue("conv-a", Customer("a"), ["low_confidence"], 5, "cards")
    await queue.abandon(first.id, "customer_cancelled")
    closed = keys.QUEUE_CLOSED.format(ns="ret-idx")
    assert await redis_client.zrange(closed, 0, -1) == [first.id]
    first_key = keys.QUEUE_TICKET.format(ns="ret-idx", ticket=first.id)
    await asyncio.sleep(max(0, await redis_client.pttl(first_key)) / 1000 + 0.05)
    assert not await redis_client.exists(first_key)  # the first ticket's keys have expired
    second = await queue.enqueue("conv-b", Customer("b"), ["low_confidence"], 5, "cards")
    await queue.abandon(second.id, "customer_cancelled")
    assert await redis_client.zrange(closed, 0, -1) == [second.id]
