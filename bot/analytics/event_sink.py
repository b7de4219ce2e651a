"""The event sink: moves Rasa's events from the Redis stream to the SQL event store, in batches.

    python -m bot.analytics.event_sink [--port 5056] [--consumer sink-1] [--batch-size 500]

Rasa's broker (:mod:`bot.analytics.rasa_broker`) appends every event to the namespace's stream
(:mod:`bot.analytics.event_stream`). This process reads it as consumer ``--consumer`` of the
group :data:`~bot.analytics.event_stream.SINK_GROUP` and writes each batch, in one transaction,
to the table ``events`` (``id``, ``sender_id``, ``data``: the schema of Rasa's ``SQLEventBroker``,
so :mod:`bot.analytics.rasa_events` reads it unchanged) of ``EVENTS_DB_URL`` (SQLite
``<data dir>/events.db`` by default, PostgreSQL when the URL says so).

Delivery is at least once, storage exactly once:

1. The batch's events are inserted together with their uids into ``event_stream_applied`` in the
   same transaction; uids already there are skipped (a redelivered entry is stored once).
2. Only after the commit are the entries acknowledged (XACK).
3. A sink that was killed between 1 and 2 finds its unacknowledged entries again when it starts
   (it reads its own pending entries first, under the same consumer name); entries another
   consumer left pending longer than ``EVENT_SINK_CLAIM_IDLE_SECONDS`` are claimed (XAUTOCLAIM).
4. The stream is trimmed (XTRIM MINID) only below the oldest entry the group has not
   acknowledged: nothing unacknowledged is ever deleted. While no sink runs the stream grows.

Health: ``GET /health`` on ``--port`` answers ``{"status": "ok", "backlog": n}``.
Test hook: ``--crash-after-commit N`` SIGKILLs the process after committing its N-th batch and
before acknowledging it, the worst moment for a crash (used by the tests, never in production).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence

import sqlalchemy
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.analytics.event_stream import SINK_GROUP, StreamEvent, stream_key
from bot.config import get_settings

logger = logging.getLogger("bot.analytics.event_sink")

BLOCK_MS = 1000  # how long one XREADGROUP waits for new entries
RETRY_SECONDS = 1.0
# After a batch that emptied the stream, wait this long before reading again, so the next batch
# holds a quarter second of events rather than a turn's few: the cost of a batch (transaction,
# commit, acknowledgement, trim) is mostly per batch, not per event (3 -> 1 ms of CPU per bot
# turn, docs/performance.md). Events reach SQL at most this much later.
LINGER_SECONDS = 0.25

METADATA = sqlalchemy.MetaData()
# The table Rasa's SQLEventBroker writes (rasa/core/brokers/sql.py), column for column;
# tests/analytics/test_event_sink.py compares the two.
EVENTS = sqlalchemy.Table(
    "events",
    METADATA,
    sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
    sqlalchemy.Column("sender_id", sqlalchemy.String(255)),
    sqlalchemy.Column("data", sqlalchemy.Text),
)
# The uids of the stream entries already stored: an entry delivered twice is stored once.
APPLIED = sqlalchemy.Table(
    "event_stream_applied",
    METADATA,
    sqlalchemy.Column("uid", sqlalchemy.String(64), primary_key=True),
)

# Acknowledges the entries ARGV[2..] for the group ARGV[1], then deletes the entries the group
# has acknowledged: everything below its oldest pending entry, or through its last delivered
# entry when none is pending. One round trip; atomic, so no entry delivered meanwhile can be
# taken for acknowledged.
ACK_AND_TRIM = """
for i = 2, #ARGV, 1000 do
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
local minid
if tonumber(pending[1]) > 0 then
  minid = pending[2]
else
  local last
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, delivered
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
      if group[i] == 'last-delivered-id' then delivered = group[i + 1] end
    end
    if name == ARGV[1] then last = delivered end
  end
  if not last then return 0 end
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  minid = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
"""


class EventStore:
    """The SQL side: Rasa's ``events`` table and the applied uids, written per batch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sqlalchemy.create_engine(url)
        METADATA.create_all(self.engine)

    def insert(self, events: Sequence[StreamEvent]) -> int:
        """Store the events not stored before, in order, in one transaction; how many were new."""
        try:
            return self._insert(events)
        except IntegrityError:
            # another sink stored some of these uids since our check: check again
            return self._insert(events)

    def _insert(self, events: Sequence[StreamEvent]) -> int:
        uids = [event.uid for event in events]
        with self.engine.begin() as connection:
            seen = set(
                connection.execute(
                    sqlalchemy.select(APPLIED.c.uid).where(APPLIED.c.uid.in_(uids))
                ).scalars()
            )
            fresh = []
            for event in events:
                if event.uid not in seen:
                    seen.add(event.uid)
                    fresh.append(event)
            if fresh:
                connection.execute(APPLIED.insert(), [{"uid": e.uid} for e in fresh])
                connection.execute(
                    EVENTS.insert(), [{"sender_id": e.sender_id, "data": e.data} for e in fresh]
                )
        return len(fresh)

    def close(self) -> None:
        self.engine.dispose()


async def backlog(redis: Redis, namespace: str) -> int:
    """Entries of the namespace's stream not yet acknowledged by the sink's group (delivered and
    pending, or not delivered yet); the whole stream while the group does not exist."""
    key = stream_key(namespace)
    try:
        groups = await redis.xinfo_groups(key)
    except ResponseError:  # no stream yet
        return 0
    group = next((g for g in groups if _text(g["name"]) == SINK_GROUP), None)
    if group is None:
        return int(await redis.xlen(key))
    lag = group.get("lag")
    if lag is None:  # Redis cannot tell (e.g. before the first read): count the entries
        delivered = _text(group["last-delivered-id"])
        lag = len(await redis.xrange(key, min=f"({delivered}", max="+"))
    return int(group["pending"]) + int(lag)


async def wait_drained(redis: Redis, namespace: str, timeout: float = 60.0) -> None:
    """Return once the sink has stored and acknowledged every event in the stream; TimeoutError
    when it has not within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := await backlog(redis, namespace)) > 0:
        if loop.time() > deadline:
            raise TimeoutError(f"event sink: {left} events not stored after {timeout:.0f} s")
        await asyncio.sleep(0.1)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class EventSink:
    """One consumer of the stream, writing to one :class:`EventStore` (see module docs)."""

    def __init__(
        self,
        redis: Redis,
        store: EventStore,
        namespace: str,
        consumer: str,
        batch_size: int,
        claim_idle_seconds: float,
        crash_after_commit: int | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.namespace = namespace
        self.key = stream_key(namespace)
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.crash_after_commit = crash_after_commit
        self.linger = LINGER_SECONDS
        self.batches = 0
        self.stored = 0
        self._ack_and_trim = redis.register_script(ACK_AND_TRIM)

    async def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start: nothing published before the
        first sink ran is skipped)."""
        try:
            await self.redis.xgroup_create(self.key, SINK_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        """Store the stream until ``stop`` is set; Redis or SQL failures are retried."""
        while not stop.is_set():
            try:
                await self.ensure_group()
                await self.drain_own_pending()
                await self.claim_stale()
                claimed_at = time.monotonic()
                while not stop.is_set():
                    if 0 < await self.read_new() < self.batch_size:  # the stream is drained
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.linger)
                    if (time.monotonic() - claimed_at) * 1000 >= self.claim_idle_ms / 2:
                        await self.claim_stale()
                        claimed_at = time.monotonic()
            except (RedisError, OSError, OperationalError) as error:
                logger.warning("event sink: %s; retrying in %.0f s", error, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    async def drain_own_pending(self) -> None:
        """Store the entries this consumer read but did not acknowledge (a crash before XACK)."""
        while True:
            reply = await self.redis.xreadgroup(
                SINK_GROUP, self.consumer, {self.key: "0"}, count=self.batch_size
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self.store_batch(entries)

    async def claim_stale(self) -> None:
        """Take over and store entries other consumers left unacknowledged for too long."""
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.key, SINK_GROUP, self.consumer, self.claim_idle_ms, start, self.batch_size
            )
            start, entries = _text(reply[0]), reply[1]
            if entries:
                logger.info("event sink: claimed %d stale entries", len(entries))
                await self.store_batch(entries)
            if start == "0-0":
                return

    async def read_new(self) -> int:
        """Wait up to BLOCK_MS for new entries and store one batch of them; how many."""
        reply = await self.redis.xreadgroup(
            SINK_GROUP, self.consumer, {self.key: ">"}, count=self.batch_size, block=BLOCK_MS
        )
        stored = 0
        for _key, entries in reply or []:
            if entries:
                await self.store_batch(entries)
                stored += len(entries)
        return stored

    async def store_batch(self, entries: list) -> None:
        """Insert, commit, then acknowledge and trim (see module docs for why in this order)."""
        ids, events = [], []
        for entry_id, fields in entries:
            ids.append(entry_id)
            if fields is None:  # deleted from the stream while pending: nothing to store
                continue
            try:
                events.append(
                    StreamEvent.from_fields({_text(k): _text(v) for k, v in fields.items()})
                )
            except ValueError as error:
                logger.error("event sink: skipping malformed entry %s: %s", _text(entry_id), error)
        if events:
            self.stored += await asyncio.to_thread(self.store.insert, events)
        self.batches += 1
        if self.crash_after_commit is not None and self.batches >= self.crash_after_commit:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: committed, not acknowledged
        await self._ack_and_trim(keys=[self.key], args=[SINK_GROUP, *ids])


# -- the process ---------------------------------------------------------------------------------


def _health_app(sink: EventSink) -> web.Application:
    async def health(_request: web.Request) -> web.Response:
        try:
            waiting = await backlog(sink.redis, sink.namespace)
        except (RedisError, OSError) as error:
            return web.json_response(
                {"status": "redis unreachable", "error": str(error)}, status=503
            )
        return web.json_response({"status": "ok", "backlog": waiting, "stored": sink.stored})

    app = web.Application()
    app.router.add_get("/health", health)
    return app


async def serve(args: argparse.Namespace) -> None:
    settings = get_settings()
    if not settings.redis_url:
        raise SystemExit("event sink: REDIS_URL is not set")
    from bot.runtime.services import events_db_url

    store = EventStore(events_db_url())
    redis = Redis.from_url(settings.redis_url)
    sink = EventSink(
        redis,
        store,
        settings.queue_namespace,
        args.consumer,
        args.batch_size or settings.event_sink_batch_size,
        args.claim_idle if args.claim_idle is not None else settings.event_sink_claim_idle_seconds,
        args.crash_after_commit,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(_health_app(sink))
    await runner.setup()
    port = args.port or settings.event_sink_port
    await web.TCPSite(runner, "127.0.0.1", port).start()
    logger.info(
        "event sink: %s -> %s as %s, health on :%d", sink.key, store.url, sink.consumer, port
    )
    try:
        await sink.run(stop)
    finally:
        await runner.cleanup()
        await redis.close()
        store.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Store Rasa's events from Redis in SQL.")
    parser.add_argument("--port", type=int, default=None, help="health port (EVENT_SINK_PORT)")
    parser.add_argument(
        "--consumer", default="sink-1", help="consumer name, stable across restarts"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="EVENT_SINK_BATCH_SIZE")
    parser.add_argument(
        "--claim-idle", type=float, default=None, help="seconds; EVENT_SINK_CLAIM_IDLE_SECONDS"
    )
    parser.add_argument("--crash-after-commit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
