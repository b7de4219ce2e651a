"""Rasa's event broker for this project: each event goes to a Redis stream, off Rasa's hot path.

Configured in ``endpoints.yml``::

    event_broker:
      type: bot.analytics.rasa_broker.RedisStreamBroker

Rasa calls :meth:`RedisStreamBroker.publish` synchronously, on its event loop, for every tracker
event. ``publish`` only encodes the event (:class:`~bot.analytics.event_stream.StreamEvent`) and
queues it in memory; one writer task on Rasa's loop sends the queued events to the stream in
order, many per round trip (a pipeline of XADDs). If Redis is unreachable the writer keeps the
events and retries. On shutdown Rasa calls :meth:`close`, which flushes the queue first.

The Redis URL and namespace are the project's settings (``REDIS_URL``,
``SUPPORT_QUEUE_NAMESPACE``); the event sink (:mod:`bot.analytics.event_sink`) moves the stream
into the SQL event store.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import AbstractEventLoop
from collections import deque

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.analytics.event_stream import StreamEvent, stream_key
from bot.config import get_settings

logger = logging.getLogger(__name__)

MAX_PIPELINE = 500  # XADDs per round trip at most
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0)  # pauses between attempts while Redis is unreachable
CLOSE_TIMEOUT_SECONDS = 10.0


class RedisStreamBroker(EventBroker):
    """Appends every Rasa event to the namespace's events stream (see module docs)."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.redis = Redis.from_url(redis_url)
        self.key = stream_key(namespace)
        self._queued: deque[StreamEvent] = deque()
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self._failures = 0

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> RedisStreamBroker:
        """The broker for the project's Redis and namespace (``endpoints.yml`` names only the
        class: the settings come from bot.config)."""
        settings = get_settings()
        if not settings.redis_url:
            raise ValueError("RedisStreamBroker needs REDIS_URL (the launcher sets it)")
        broker = cls(settings.redis_url, settings.queue_namespace)
        await broker.redis.ping()  # fail at start, not at the first event
        return broker

    def publish(self, event: dict) -> None:
        """Queue ``event`` for the stream; returns at once (called on Rasa's event loop)."""
        self._queued.append(StreamEvent.from_rasa(event))
        if self._writer is None or self._writer.done():
            self._wakeup = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())
        assert self._wakeup is not None
        self._wakeup.set()

    def queued(self) -> int:
        """Events published but not yet in the stream."""
        return len(self._queued)

    async def _write_queued(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queued:
                await self._write_batch()

    async def _write_batch(self) -> None:
        batch = [self._queued[i] for i in range(min(len(self._queued), MAX_PIPELINE))]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in batch:
                    pipe.xadd(self.key, event.fields())
                await pipe.execute()
        except (RedisError, OSError) as error:
            # events stay queued, in order; an XADD that did land is written again, and the
            # sink stores it once (same uid)
            pause = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
            self._failures += 1
            logger.warning("event stream %s: %s; retrying in %.1f s", self.key, error, pause)
            await asyncio.sleep(pause)
            return
        self._failures = 0
        for _ in batch:
            self._queued.popleft()

    async def flush(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Wait until every published event is in the stream; False if that took too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queued and loop.time() < deadline:
            if self._writer is None or self._writer.done():
                await self._write_batch()
            else:
                await asyncio.sleep(0.01)
        return not self._queued

    async def close(self) -> None:
        """Flush the queued events, stop the writer and close the connection."""
        if not await self.flush():
            logger.error("event stream %s: %d events not written", self.key, len(self._queued))
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        await self.redis.close()
