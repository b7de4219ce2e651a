"""Every handoff ticket the queue knows, with its audit history, as analytics events.

Reads the queue's open and closed ticket sets, each ticket's hash and its audit stream (one
pipelined round trip per batch) and translates them with
:func:`bot.analytics.audit_events.ticket_events`. A ticket whose keys expired (when the queue
runs with ``closed_ttl_seconds``) is skipped.
"""

from __future__ import annotations

from redis.asyncio import Redis

from bot import keys
from bot.analytics.audit_events import ticket_events
from bot.analytics.events import Event
from bot.queue import AuditEvent, open_queue

BATCH = 500


async def read_ticket_events(redis: Redis, namespace: str) -> list[Event]:
    """Events of every open and closed ticket in ``namespace``."""
    queue = open_queue(redis, namespace=namespace)
    ids = list(
        dict.fromkeys(
            [
                *await redis.zrange(keys.QUEUE_OPEN.format(ns=namespace), 0, -1),
                *await redis.zrange(keys.QUEUE_CLOSED.format(ns=namespace), 0, -1),
            ]
        )
    )
    events: list[Event] = []
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        tickets = {t.id: t for t in await queue.get_many(batch)}
        async with redis.pipeline(transaction=False) as pipe:
            for tid in tickets:
                pipe.xrange(keys.QUEUE_TICKET_AUDIT.format(ns=namespace, ticket=tid), "-", "+")
            histories = await pipe.execute()
        for ticket, entries in zip(tickets.values(), histories, strict=True):
            history = [AuditEvent.from_stream(eid, fields) for eid, fields in entries]
            events.extend(ticket_events(ticket, history))
    return events
