"""The one place production code builds a :class:`~bot.queue.client.HandoffQueue`.

:func:`open_queue` reads the namespace and the agents' lease from the project's settings
(:func:`bot.config.get_settings`), so every process (gateway, action server, CLI, analytics)
runs the queue with the same configuration; ``overrides`` are for callers that must differ
(a test's namespace, a benchmark's pool).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from bot.config import Settings, get_settings
from bot.queue.client import HandoffQueue
from bot.redis_clients import redis_target


def queue_options(settings: Settings | None = None) -> dict[str, Any]:
    """The :class:`HandoffQueue` keyword arguments the settings determine."""
    settings = settings or get_settings()
    return {
        "namespace": settings.queue_namespace,
        "lease_seconds": settings.agent_lease_seconds,
        "closed_ttl_seconds": settings.closed_ticket_retention_seconds or None,
    }


def open_queue(redis: Redis, settings: Settings | None = None, **overrides: Any) -> HandoffQueue:
    """A queue on ``redis`` (a client with ``decode_responses=True``) configured from
    ``settings`` (default: this process's), with ``overrides`` on top."""
    return HandoffQueue(redis, **{**queue_options(settings), **overrides})


def open_queue_url(
    url: str | None,
    settings: Settings | None = None,
    *,
    max_connections: int = 256,
    **overrides: Any,
) -> HandoffQueue:
    """Like :func:`open_queue`, on a new client (closed by ``queue.aclose()``) for the product's
    Redis (:func:`bot.redis_clients.redis_target`): the Sentinel master when ``REDIS_SENTINELS``
    is set, else ``url``, else ``REDIS_URL``."""
    settings = settings or get_settings()
    options = {**queue_options(settings), **overrides}
    target = redis_target(settings, url)
    if target.url:
        return HandoffQueue.from_url(target.url, max_connections=max_connections, **options)
    client = target.async_client(decode_responses=True, max_connections=max_connections)
    return HandoffQueue(client, **options)
