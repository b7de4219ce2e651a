"""Redis clients from the settings: one URL, or the master that Redis Sentinel names.

With ``REDIS_SENTINELS`` set (``host:port,host:port``), a client asks the sentinels for the
master of ``REDIS_SENTINEL_MASTER`` and asks again when the connection fails, so it follows a
failover (redis-py's :class:`redis.sentinel.Sentinel`). Otherwise it connects to ``REDIS_URL``.
:class:`RedisTarget` is that choice as a value, so a store can be given one explicitly (a test,
a second Redis) and build both a blocking client (Rasa's lock store API is synchronous) and an
asyncio one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from bot.config import Settings, get_settings

SOCKET_TIMEOUT_SECONDS = 10.0  # a Redis that stops answering fails a call instead of hanging it


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
            "sentinel_kwargs": {"password": self.password, "socket_timeout": 2.0},
            "password": self.password,
            "db": self.db,
            "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        }

    def sync_client(self, **options: Any) -> redis.Redis:
        """A blocking client (``decode_responses`` etc. in ``options``)."""
        if self.url:
            return redis.Redis.from_url(self.url, socket_timeout=SOCKET_TIMEOUT_SECONDS, **options)
        sentinel = redis.sentinel.Sentinel(list(self.sentinels), **self._sentinel_options())
        return sentinel.master_for(self.master, **options)

    def async_client(self, **options: Any) -> redis.asyncio.Redis:
        """An asyncio client (bound to the event loop that first uses it)."""
        if self.url:
            return redis.asyncio.Redis.from_url(
                self.url, socket_timeout=SOCKET_TIMEOUT_SECONDS, **options
            )
        sentinel = redis.asyncio.sentinel.Sentinel(list(self.sentinels), **self._sentinel_options())
        return sentinel.master_for(self.master, **options)

    def describe(self) -> str:
        """For logs: the address without a password."""
        if self.url:
            parts = urlsplit(self.url)
            return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        names = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"Sentinel master {self.master} via {names}"
