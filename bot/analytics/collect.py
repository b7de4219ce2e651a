"""Gather every durable source into conversation records.

Sources, all durable (nothing comes from a process's memory):

1. Rasa's SQL event broker (:mod:`bot.analytics.rasa_events`): what customers said, how the NLU
   understood it, what the bot answered, "did that help?" answers, surveys and ratings;
2. the escalation audit stream and the queue's tickets with their audit history
   (:mod:`bot.analytics.audit_events`);
3. the agents' escalation labels (:mod:`bot.analytics.labels`).

They are joined on the conversation id (Rasa's sender id is the gateway's conversation id, which
is also the ticket's conversation id).
"""

from __future__ import annotations

import argparse
import asyncio

import redis.exceptions
import sqlalchemy.exc
from redis.asyncio import Redis

from bot.analytics import audit_events, labels, rasa_events
from bot.analytics.events import Event
from bot.analytics.records import ConversationRecord, build_records


async def ticket_events(redis: Redis, namespace: str) -> list[Event]:
    """Events of every ticket the queue knows (none when the queue is not installed)."""
    try:
        from bot.analytics.queue_source import read_ticket_events
    except ImportError:
        return []
    return await read_ticket_events(redis, namespace)


async def collect_redis_events(redis: Redis, namespace: str) -> list[Event]:
    """The events of the sources kept in Redis (decisions, tickets, labels)."""
    decisions = await audit_events.read_decisions(redis, namespace)
    tickets = await ticket_events(redis, namespace)
    clicks = await labels.read_labels(redis, namespace)
    return [*decisions, *tickets, *clicks]


async def collect_events(
    redis: Redis, namespace: str, events_url: str | None = None
) -> list[Event]:
    rasa = await asyncio.to_thread(rasa_events.read_events, events_url)
    return [*rasa, *await collect_redis_events(redis, namespace)]


async def collect_records(
    redis: Redis, namespace: str, events_url: str | None = None
) -> list[ConversationRecord]:
    """Every recorded conversation, oldest first."""
    return build_records(await collect_events(redis, namespace, events_url))


def redis_url() -> str:
    from bot.config import get_settings

    settings = get_settings()
    return settings.redis_address()


class SourceUnavailable(RuntimeError):
    """A durable store (Redis or the event database) cannot be read."""


def collect(
    redis_address: str | None = None, events_url: str | None = None
) -> list[ConversationRecord]:
    """:func:`collect_records` for command-line tools (own event loop and Redis client); a store
    that cannot be reached raises :class:`SourceUnavailable` with a clear message."""
    from bot.config import get_settings
    from bot.redis_clients import async_redis

    address = redis_address or redis_url()

    async def run() -> list[ConversationRecord]:
        client = async_redis(
            get_settings(), address, decode_responses=True, socket_connect_timeout=3
        )
        try:
            return await collect_records(client, get_settings().queue_namespace, events_url)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except redis.exceptions.ConnectionError as error:
        raise SourceUnavailable(
            f"Redis at {address} is not reachable ({error}); start the stack "
            "(scripts/start.sh) or set REDIS_URL"
        ) from error
    except sqlalchemy.exc.OperationalError as error:
        raise SourceUnavailable(f"the event database cannot be read: {error.orig}") from error


def collect_or_exit(parser: argparse.ArgumentParser) -> list[ConversationRecord]:
    """`collect()` for a command line: an unreachable store is a one-line error and exit 1."""
    try:
        return collect()
    except SourceUnavailable as error:
        parser.exit(1, f"error: {error}\n")
        raise
