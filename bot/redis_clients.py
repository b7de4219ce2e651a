"""The one factory of the product's Redis clients: one URL, or the master Redis Sentinel names.

Every process (gateway, action server, queue CLI, analytics, accounts, Rasa's tracker and lock
stores) builds its clients here. With ``REDIS_SENTINELS`` set (``host:port,host:port``), a client
asks the sentinels for the master of ``REDIS_SENTINEL_MASTER`` and asks again when the connection
fails, so it follows a failover (redis-py's :class:`redis.sentinel.Sentinel` and
:mod:`redis.asyncio.sentinel`). A command that meets a dead or demoted master is retried with
backoff for up to :data:`FAILOVER_RETRY_SECONDS` (a failover with the documented sentinel
settings takes a few seconds), each retry reconnecting through the sentinels; long-lived uses
(blocking ``XREAD`` loops, the typing pub/sub) therefore land on the new master too. Otherwise
a client connects to ``REDIS_URL`` (else the launcher's own Redis, see
:meth:`bot.config.Settings.redis_address`).

:class:`RedisTarget` is that choice as a value, so a store can be given one explicitly (a test,
a second Redis) and build both a blocking client (Rasa's lock store API is synchronous) and an
asyncio one. :func:`async_redis` / :func:`sync_redis` are the shortcuts product code uses.

This module sits below ``bot.web``, ``bot.queue``, ``bot.runtime`` and ``actions`` (it imports
only :mod:`bot.config` and redis-py), so each of them can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.retry
import redis.sentinel

from bot.config import Settings, get_settings

SOCKET_TIMEOUT_SECONDS = 10.0  # a Redis that stops answering fails a call instead of hanging it
# Sentinel mode: how long a command keeps retrying (reconnecting through the sentinels) while a
# failover runs. down-after-milliseconds 2000 + election + promotion is ~3-5 s on a loaded host;
# 15 s covers that with margin and still fails a call rather than hanging it forever.
FAILOVER_RETRY_SECONDS = 15.0
_BACKOFF_CAP_SECONDS = 0.5
_BACKOFF_BASE_SECONDS = 0.05
_FAILOVER_RETRIES = int(FAILOVER_RETRY_SECONDS / _BACKOFF_CAP_SECONDS)
# redis-py retries a command only on the errors the connection lists (a closed socket, a
# timeout; a demoted master's READONLY becomes a ConnectionError in the Sentinel connection).
_RETRY_ON = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"h1:26379, h2:26379"`` as ``[("h1", 26379), ("h2", 26379)]``; a clear error otherwise."""
    addresses = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entry {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    if not addresses:
        raise ValueError("REDIS_SENTINELS names no sentinel")
    return addresses


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis client connects: a URL, or a Sentinel master set."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = "support"
    password: str | None = None  # Sentinel mode: the servers' password (a URL carries its own)
    db: int = 0  # Sentinel mode only

    def __post_init__(self) -> None:
        if not self.url and not self.sentinels:
            raise ValueError("a Redis target needs a URL or sentinels")

    @classmethod
    def from_settings(cls, settings: Settings | None = None, url: str | None = None) -> RedisTarget:
        """Sentinel when ``REDIS_SENTINELS`` is set, else ``url`` or ``REDIS_URL``."""
        settings = settings or get_settings()
        if settings.redis_sentinels.strip():
            return cls(
                sentinels=tuple(parse_sentinels(settings.redis_sentinels)),
                master=settings.redis_sentinel_master,
                password=settings.redis_sentinel_password,
            )
        url = url or settings.redis_url
        if not url:
            raise ValueError("no Redis configured: set REDIS_URL or REDIS_SENTINELS")
        return cls(url=url)

    def _sentinel_options(self) -> dict[str, Any]:
        return {
            "sentinel_kwargs": {
                "password": self.password,
                "socket_timeout": 2.0,
                "socket_connect_timeout": 2.0,
            },
            "password": self.password,
            "db": self.db,
            "socket_timeout": SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": 2.0,
        }

    def sync_client(self, **options: Any) -> redis.Redis:
        """A blocking client (``decode_responses`` etc. in ``options``)."""
        options = {"socket_timeout": SOCKET_TIMEOUT_SECONDS, **options}
        if self.url:
            return redis.Redis.from_url(self.url, **options)
        sentinel = redis.sentinel.Sentinel(list(self.sentinels), **self._sentinel_options())
        retry = redis.retry.Retry(_backoff(), _FAILOVER_RETRIES)
        return sentinel.master_for(
            self.master, retry=retry, retry_on_error=list(_RETRY_ON), **options
        )

    def async_client(self, **options: Any) -> redis.asyncio.Redis:
        """An asyncio client (bound to the event loop that first uses it)."""
        options = {"socket_timeout": SOCKET_TIMEOUT_SECONDS, **options}
        if self.url:
            return redis.asyncio.Redis.from_url(self.url, **options)
        sentinel = redis.asyncio.sentinel.Sentinel(list(self.sentinels), **self._sentinel_options())
        retry = redis.asyncio.retry.Retry(_backoff(), _FAILOVER_RETRIES)
        return sentinel.master_for(
            self.master, retry=retry, retry_on_error=list(_RETRY_ON), **options
        )

    def describe(self) -> str:
        """For logs: the address without a password."""
        if self.url:
            parts = urlsplit(self.url)
            return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        names = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"Sentinel master {self.master} via {names}"


def _backoff() -> redis.backoff.AbstractBackoff:
    return redis.backoff.ExponentialBackoff(cap=_BACKOFF_CAP_SECONDS, base=_BACKOFF_BASE_SECONDS)


def redis_target(settings: Settings | None = None, url: str | None = None) -> RedisTarget:
    """The product's Redis: Sentinel when ``REDIS_SENTINELS`` is set, else ``url``, else
    ``REDIS_URL`` or the launcher's own Redis (:meth:`Settings.redis_address`)."""
    settings = settings or get_settings()
    if settings.redis_sentinels.strip():
        return RedisTarget.from_settings(settings)
    return RedisTarget(url=url or settings.redis_address())


def async_redis(
    settings: Settings | None = None, url: str | None = None, **options: Any
) -> redis.asyncio.Redis:
    """An asyncio client of the product's Redis (see :func:`redis_target`)."""
    return redis_target(settings, url).async_client(**options)


def bounded_async_redis(
    max_connections: int, settings: Settings | None = None, **options: Any
) -> redis.asyncio.Redis:
    """An asyncio client whose pool never holds more than ``max_connections`` connections.

    On a URL the pool blocks a caller until a connection is free (``BlockingConnectionPool``, 20 s
    at most); through Sentinel redis-py's pool refuses the call past the bound instead."""
    target = redis_target(settings)
    options = {"socket_timeout": SOCKET_TIMEOUT_SECONDS, **options}
    if target.url:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            target.url, max_connections=max_connections, timeout=20, **options
        )
        return redis.asyncio.Redis(connection_pool=pool)
    return target.async_client(max_connections=max_connections, **options)


def sync_redis(
    settings: Settings | None = None, url: str | None = None, **options: Any
) -> redis.Redis:
    """A blocking client of the product's Redis (see :func:`redis_target`)."""
    return redis_target(settings, url).sync_client(**options)
