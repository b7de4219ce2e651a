"""Socket fan-out: a few reader tasks XREAD every open socket's conversation streams at once.

An open socket used to hold its own blocking ``XREAD`` on its own Redis connection, so 5,000 idle
sockets meant 5,000 connections. Now each gateway runs ``GATEWAY_STREAM_READERS`` reader tasks,
each on one Redis connection taken from the gateway's bounded pool for good. A conversation's
stream belongs to one reader (a hash of its id); the reader issues one ``XREAD BLOCK`` over all
the streams its sockets follow and hands every entry to those sockets' in-process queues.

A socket follows conversations through a :class:`Subscription` with the last event id it has
seen for each. Delivery keeps what the sockets had before, in order and at least once:

* **Joining.** When a stream is first followed, its reader's cursor is the stream's last id at
  that moment (``XREVRANGE``); each subscription then catches up on its own with ``XRANGE`` from
  its offset. What the catch-up and the reader both return is sent once: a subscription only
  passes on ids after the last one it sent for that conversation.
* **Waking the reader.** A reader blocked on its old set of streams is woken with
  ``CLIENT UNBLOCK`` from another connection, so a new stream is read at once; if the wake is
  missed, the reader picks the stream up at its next round (``BLOCK_MS`` at most) and still
  reads it from its cursor, so nothing is lost, only late.
* **A slow socket.** Its queue is bounded; an entry that does not fit is dropped and the
  conversation marked for catch-up, which re-reads it from the stream (nothing missed, order
  kept).
* **Redis away.** A reader logs, waits and reconnects; cursors are kept, so it resumes where it
  stopped.

The readers never write; whoever appends to the streams (the gateway, the queue's scripts)
needs to know nothing of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from bot.web.events import ConversationEvents, decode

BLOCK_MS = 5000
READ_COUNT = 100
QUEUE_SIZE = 256
CATCH_UP_COUNT = 500
RETRY_SECONDS = 1.0
log = logging.getLogger("bot.web.fanout")


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair (``"<ms>-<seq>"``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class _Stream:
    """One followed stream: who follows it and where its reader stands."""

    key: str
    subscriptions: set[Subscription] = field(default_factory=set)
    cursor: str | None = None
    ready: asyncio.Future[None] | None = None


class _Reader:
    """One reader task: ``XREAD BLOCK`` over its streams on its own connection."""

    def __init__(self, fanout: StreamFanout, index: int) -> None:
        self.fanout = fanout
        self.index = index
        self.streams: dict[str, _Stream] = {}
        self.changed = asyncio.Event()
        self.blocked = False
        self.client_id: int | None = None
        self._waking = False

    def wake(self) -> None:
        """The set of streams changed: re-issue the XREAD now."""
        self.changed.set()
        if self.blocked and not self._waking:
            self._waking = True
            task = asyncio.create_task(self._unblock())
            self.fanout._tasks.add(task)
            task.add_done_callback(self.fanout._tasks.discard)

    async def _unblock(self) -> None:
        try:
            for _attempt in range(20):  # until the XREAD is really blocked in Redis
                if not (self.blocked and self.changed.is_set()) or self.client_id is None:
                    return
                with contextlib.suppress(Exception):
                    if await self.fanout._redis.client_unblock(self.client_id):
                        return
                await asyncio.sleep(0.005)
        finally:
            self._waking = False

    async def run(self) -> None:
        while True:
            pool = self.fanout._redis.connection_pool
            try:
                reader = Redis(connection_pool=pool, single_connection_client=True)
                try:
                    self.client_id = int(await reader.client_id())
                    await self._loop(reader)
                finally:
                    self.client_id = None
                    self.blocked = False
                    with contextlib.suppress(Exception):
                        await reader.close(close_connection_pool=False)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001  (Redis away: retry shortly)
                log.warning("stream reader %d lost Redis (%s); reconnecting", self.index, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _loop(self, reader: Redis) -> None:
        while True:
            self.changed.clear()
            by_key = {s.key: c for c, s in self.streams.items() if s.cursor}
            if not by_key:
                await self.changed.wait()
                continue
            offsets = {s.key: s.cursor for s in self.streams.values() if s.cursor}
            self.blocked = True
            try:
                result = await reader.xread(offsets, count=READ_COUNT, block=BLOCK_MS)
            finally:
                self.blocked = False
            for key, entries in result or []:
                self._dispatch(by_key[key], entries)

    def _dispatch(self, conversation_id: str, entries: list) -> None:
        stream = self.streams.get(conversation_id)
        if stream is None or stream.cursor is None:
            return
        for entry_id, fields in entries:
            if id_key(entry_id) <= id_key(stream.cursor):
                continue
            stream.cursor = entry_id
            event = decode(entry_id, fields)
            for subscription in list(stream.subscriptions):
                subscription._offer(conversation_id, event)


class StreamFanout:
    """The gateway's readers and the subscriptions of its open sockets."""

    def __init__(self, redis: Redis, events: ConversationEvents, readers: int) -> None:
        self._redis = redis
        self.events = events
        self._readers = [_Reader(self, i) for i in range(readers)]
        self._tasks: set[asyncio.Task] = set()

    def subscribe(self) -> Subscription:
        """A new subscription (follows nothing yet: :meth:`Subscription.follow`)."""
        return Subscription(self)

    def following(self) -> int:
        """How many streams the readers follow now."""
        return sum(len(reader.streams) for reader in self._readers)

    def _reader(self, conversation_id: str) -> _Reader:
        return self._readers[zlib.crc32(conversation_id.encode()) % len(self._readers)]

    async def _add(self, conversation_id: str, subscription: Subscription) -> None:
        """Have the reader follow the stream for this subscription. The first follower sets the
        reader's cursor (the stream's last id); the others wait for it, so that their catch-up
        starts no earlier than the reader does."""
        reader = self._reader(conversation_id)
        while (stream := reader.streams.get(conversation_id)) is not None:
            stream.subscriptions.add(subscription)
            if stream.ready is None or stream.ready.done():
                return
            await asyncio.shield(stream.ready)
            if reader.streams.get(conversation_id) is stream:
                return
            # the first follower failed or went away before the cursor was set: try again
        stream = reader.streams[conversation_id] = _Stream(
            self.events.key(conversation_id), subscriptions={subscription}
        )
        stream.ready = asyncio.get_running_loop().create_future()
        try:
            stream.cursor = await self.events.last_id(conversation_id)
        except BaseException:
            if reader.streams.get(conversation_id) is stream:
                del reader.streams[conversation_id]
            raise
        finally:
            stream.ready.set_result(None)
        reader.wake()

    def _remove(self, conversation_id: str, subscription: Subscription) -> None:
        reader = self._reader(conversation_id)
        stream = reader.streams.get(conversation_id)
        if stream is None:
            return
        stream.subscriptions.discard(subscription)
        if not stream.subscriptions:
            del reader.streams[conversation_id]

    async def run(self) -> None:
        """Run the readers until cancelled."""
        tasks = [asyncio.create_task(reader.run()) for reader in self._readers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Subscription:
    """One socket's conversations, each with the last event id it has passed on."""

    def __init__(self, fanout: StreamFanout) -> None:
        self._fanout = fanout
        self.offsets: dict[str, str] = {}
        self._catch_up: set[str] = set()
        self._queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue(QUEUE_SIZE)
        self._wake = asyncio.Event()

    async def follow(self, offsets: dict[str, str]) -> None:
        """Follow exactly these conversations, each from its last seen id (an unchanged offset
        of one already followed keeps its place)."""
        for conversation_id in list(self.offsets):
            if conversation_id not in offsets:
                del self.offsets[conversation_id]
                self._catch_up.discard(conversation_id)
                self._fanout._remove(conversation_id, self)
        for conversation_id, offset in offsets.items():
            known = self.offsets.get(conversation_id)
            if known == offset:
                continue
            self.offsets[conversation_id] = offset
            self._catch_up.add(conversation_id)
            if known is None:
                await self._fanout._add(conversation_id, self)
        self._wake.set()

    async def close(self) -> None:
        await self.follow({})

    def _offer(self, conversation_id: str, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((conversation_id, event))
        except asyncio.QueueFull:  # a slow socket: re-read from the stream, in order
            self._catch_up.add(conversation_id)
            self._wake.set()

    async def next(self, timeout: float) -> list[tuple[str, dict]]:
        """The events after each conversation's offset, oldest first per conversation; waits
        up to ``timeout`` seconds for some (``[]`` if none came)."""
        first: list[tuple[str, dict]] = []
        if not self._catch_up and self._queue.empty():
            self._wake.clear()
            getter = asyncio.ensure_future(self._queue.get())
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {getter, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (getter, waker):
                    if not task.done():
                        task.cancel()
            if getter.done() and not getter.cancelled():
                first.append(getter.result())  # the oldest: before what is still queued
        out: list[tuple[str, dict]] = []
        while self._catch_up:
            conversation_id = self._catch_up.pop()
            if conversation_id in self.offsets:
                await self._read_back(conversation_id, out)
        while not self._queue.empty():
            first.append(self._queue.get_nowait())
        for conversation_id, event in first:
            last = self.offsets.get(conversation_id)
            if last is not None and id_key(event["id"]) > id_key(last):
                self.offsets[conversation_id] = event["id"]
                out.append((conversation_id, event))
        return out

    async def _read_back(self, conversation_id: str, out: list[tuple[str, dict]]) -> None:
        while True:
            events = await self._fanout.events.since(
                conversation_id, self.offsets[conversation_id], CATCH_UP_COUNT
            )
            for event in events:
                self.offsets[conversation_id] = event["id"]
                out.append((conversation_id, event))
            if len(events) < CATCH_UP_COUNT:
                return


FANOUT = web.AppKey("stream_fanout", StreamFanout)


def fanout_of(request: web.Request) -> StreamFanout:
    return request.app[FANOUT]


def setup(app: web.Application, redis: Redis, namespace: str, readers: int) -> None:
    """Register the fan-out on the application and run its readers while the app runs."""
    fanout = StreamFanout(redis, ConversationEvents(redis, namespace), readers)
    app[FANOUT] = fanout

    async def running(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(fanout.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(running)
