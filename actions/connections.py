"""The action server's connections: one Redis client per event loop, the queue, the mode store.

Redis is the Sentinel master when `REDIS_SENTINELS` is set, else the one given by `REDIS_URL`
(the launcher sets it), else the launcher's own Redis on `SUPPORT_REDIS_PORT` (all through
:func:`bot.redis_clients.async_redis`). Clients are created lazily and kept per running event
loop (the action server has one; tests may have several), so no call blocks another
conversation.
"""

from __future__ import annotations

import asyncio
import weakref

from redis.asyncio import Redis

from bot.config import get_settings
from bot.handoff import ModeStore, QueuePort
from bot.queue import open_queue
from bot.redis_clients import RedisTarget, async_redis

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()
_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ModeStore] = (
    weakref.WeakKeyDictionary()
)


_override: dict[str, str] = {}


def use_redis(url: str | None) -> None:
    """Point this process at another Redis (tests, benchmarks; None: back to the settings);
    drops the cached clients."""
    if url is None:
        _override.pop("url", None)
    else:
        _override["url"] = url
    _clients.clear()
    _stores.clear()


def redis_url() -> str:
    settings = get_settings()
    return _override.get("url") or settings.redis_address()


def redis_client() -> Redis:
    """This event loop's Redis client (decoded strings, short timeouts)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        options = {"decode_responses": True, "socket_connect_timeout": 2, "socket_timeout": 5}
        override = _override.get("url")
        client = (
            RedisTarget(url=override).async_client(**options)
            if override
            else async_redis(get_settings(), **options)
        )
        _clients[loop] = client
    return client


def mode_store() -> ModeStore:
    """This event loop's store of conversation modes (handoff state), over the queue."""
    loop = asyncio.get_running_loop()
    store = _stores.get(loop)
    if store is None:
        settings = get_settings()
        redis = redis_client()
        store = ModeStore(redis, QueuePort(open_queue(redis, settings)), settings.queue_namespace)
        _stores[loop] = store
    return store
