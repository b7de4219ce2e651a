"""Dashboard reports off the gateway's event loop, computed once per burst.

Gathering the records (:func:`bot.analytics.collect.collect_records`: the SQL event store, the
decision stream, every ticket's history) and computing figures from them read the whole history;
on the gateway's event loop that would stall every chat while a lead loads the dashboard. A
:class:`ReportCache` runs that work in a small thread pool (``ANALYTICS_WORKERS``) and keeps the
records for ``ANALYTICS_CACHE_SECONDS``: concurrent loads share one computation, later ones reuse
its result until it is stale. A failed computation is not cached; a label recorded through
this gateway invalidates the records at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis

from bot.analytics import rasa_events
from bot.analytics.collect import collect_records, collect_redis_events
from bot.analytics.records import build_records

if TYPE_CHECKING:
    from bot.analytics.records import ConversationRecord

T = TypeVar("T")


class ReportCache:
    """Conversation records computed by ``compute`` in worker threads, reused for ``ttl_seconds``."""

    def __init__(
        self,
        compute: Callable[[], list[ConversationRecord]],
        *,
        ttl_seconds: float,
        workers: int = 1,
    ) -> None:
        self._compute = compute
        self._ttl = ttl_seconds
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analytics")
        self._pending: asyncio.Future[list[ConversationRecord]] | None = None
        self._started = 0.0

    async def records(self) -> list[ConversationRecord]:
        """The records: the cached ones if fresh, else the computation under way or a new one."""
        future = self._pending
        stale = (
            future is not None
            and future.done()
            and (
                future.cancelled()
                or future.exception() is not None
                or time.monotonic() - self._started > self._ttl
            )
        )
        if future is None or stale:
            self._started = time.monotonic()
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._compute)
            self._pending = future
        return await asyncio.shield(future)

    def invalidate(self) -> None:
        """Forget the records (this gateway just changed what they are made of, e.g. a label)."""
        self._pending = None

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the report threads (figures, replays, exports)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def thread_collector(
    redis: Redis, namespace: str, events_url: str | None = None
) -> Callable[[], list[ConversationRecord]]:
    """A function for a worker thread that collects the records on its own event loop, with its
    own Redis client configured like ``redis`` (same address, credentials and TLS). A client whose
    pool cannot be copied that way (Sentinel) is used from the caller's loop for its reads only:
    Redis I/O does not block, and the SQL reads and record building stay in the thread."""
    pool = redis.connection_pool
    if type(pool) not in (ConnectionPool, BlockingConnectionPool):
        loop = asyncio.get_running_loop()

        def on_callers_loop() -> list[ConversationRecord]:
            events = asyncio.run_coroutine_threadsafe(
                collect_redis_events(redis, namespace), loop
            ).result()
            return build_records([*rasa_events.read_events(events_url), *events])

        return on_callers_loop

    def compute() -> list[ConversationRecord]:
        async def run() -> list[ConversationRecord]:
            own = ConnectionPool(
                connection_class=pool.connection_class, max_connections=2, **pool.connection_kwargs
            )
            client = Redis(connection_pool=own)
            try:
                return await collect_records(client, namespace, events_url)
            finally:
                await client.close()
                await own.disconnect()

        return asyncio.run(run())

    return compute
