"""Socket fan-out: one Pub/Sub notice per append, then ``XRANGE`` of just that stream.

An open socket does not hold a Redis connection of its own. Every append to a conversation's
event stream (:mod:`bot.web.events`, and the mode change recorded by :mod:`bot.web.conversations`)
also ``PUBLISH``-es a small notice, ``"<conversation id> <entry id>"``, on the namespace's
channel (:data:`bot.keys.WEB_CONVERSATION_NOTICES`), in the same Lua script. Each gateway holds
ONE subscriber connection on that channel and ONE fetch connection: a notice for a conversation
some local socket follows marks its stream due, and the fetcher reads every due stream from the
gateway's cursor for it (``XRANGE``, all due streams in one pipelined round trip) and hands the
entries to the following sockets' in-process queues. A message therefore costs O(1) in the
gateway and in Redis, whatever the number of open sockets (an ``XREAD BLOCK`` naming every
followed stream, re-issued after each message, used to cost O(streams) per message).

A socket follows conversations through a :class:`Subscription` with the last event id it has
seen for each. Delivery keeps what the sockets had before, in order and at least once:

* **Joining.** When a stream is first followed, the gateway's cursor is the stream's last id at
  that moment (``XREVRANGE``) and the stream is fetched once from it (a notice that raced the
  cursor is not needed); each subscription catches up on its own with ``XRANGE`` from its
  offset. What the catch-up and the fetcher both return is sent once: a subscription only
  passes on ids after the last one it sent for that conversation.
* **A missed notice.** Pub/Sub is at most once: a notice is lost if the subscriber connection
  drops, and a writer that does not publish (an older gateway during a rolling upgrade) sends
  none. Entries are never lost, only late: after every (re)subscription, and every
  :data:`SWEEP_SECONDS` anyway, the fetcher sweeps all followed streams with non-blocking
  ``XREAD`` (chunks of :data:`SWEEP_CHUNK` streams, each from its cursor), which returns only the
  streams that have something new.
* **A slow socket.** Its queue is bounded; an entry that does not fit is dropped and the
  conversation marked for catch-up, which re-reads it from the stream (nothing missed, order
  kept).
* **Redis away.** The subscriber and the fetcher log, wait and reconnect; cursors are kept, and
  the sweep after the resubscription reads what was appended meanwhile.

Ordering per stream holds because one task, the fetcher, advances the cursors and hands entries
on, each batch synchronously, skipping ids at or before the cursor.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from bot.web.events import ConversationEvents, decode

QUEUE_SIZE = 256
CATCH_UP_COUNT = 500
FETCH_COUNT = 100  # entries per stream per XRANGE (more: fetched again at once)
SWEEP_SECONDS = 10.0
SWEEP_CHUNK = 500  # streams per non-blocking XREAD of a sweep
RETRY_SECONDS = 1.0
log = logging.getLogger("bot.web.fanout")


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair (``"<ms>-<seq>"``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class _Stream:
    """One followed stream: who follows it and where the gateway's fetcher stands."""

    conversation_id: str
    key: str
    subscriptions: set[Subscription] = field(default_factory=set)
    cursor: str | None = None
    ready: asyncio.Future[None] | None = None


class StreamFanout:
    """The gateway's notice subscriber, its fetcher, and the subscriptions of its open sockets."""

    def __init__(self, redis: Redis, events: ConversationEvents) -> None:
        self._redis = redis
        self.events = events
        self.channel = events.channel
        self._streams: dict[str, _Stream] = {}
        self._due: set[str] = set()
        self._sweep_due = False  # set by each (re)subscription
        self._signal: asyncio.Future[None] | None = None  # the idle fetcher waits on it
        self.notices = 0  # notices received (tests, metrics)
        self.sweeps = 0  # sweeps done

    def subscribe(self) -> Subscription:
        """A new subscription (follows nothing yet: :meth:`Subscription.follow`)."""
        return Subscription(self)

    def following(self) -> int:
        """How many streams the gateway follows now."""
        return len(self._streams)

    # -- following -------------------------------------------------------------------------------

    async def _add(self, conversation_id: str, subscription: Subscription) -> None:
        """Follow the stream for this subscription. The first follower sets the cursor (the
        stream's last id); the others wait for it, so that their catch-up starts no earlier than
        the fetcher does."""
        while (stream := self._streams.get(conversation_id)) is not None:
            stream.subscriptions.add(subscription)
            if stream.ready is None or stream.ready.done():
                return
            await asyncio.shield(stream.ready)
            if self._streams.get(conversation_id) is stream:
                return
            # the first follower failed or went away before the cursor was set: try again
        stream = self._streams[conversation_id] = _Stream(
            conversation_id, self.events.key(conversation_id), subscriptions={subscription}
        )
        stream.ready = asyncio.get_running_loop().create_future()
        try:
            stream.cursor = await self.events.last_id(conversation_id)
        except BaseException:
            if self._streams.get(conversation_id) is stream:
                del self._streams[conversation_id]
            raise
        finally:
            stream.ready.set_result(None)
        self._mark(conversation_id)  # a notice may have come before the cursor was set

    def _remove(self, conversation_id: str, subscription: Subscription) -> None:
        stream = self._streams.get(conversation_id)
        if stream is None:
            return
        stream.subscriptions.discard(subscription)
        if not stream.subscriptions:
            del self._streams[conversation_id]
            self._due.discard(conversation_id)

    # -- notices ---------------------------------------------------------------------------------

    def _mark(self, conversation_id: str) -> None:
        self._due.add(conversation_id)
        self._wake()

    def _wake(self) -> None:
        if self._signal is not None:
            _settle(self._signal)

    def _notice(self, data: bytes | str) -> None:
        """``"<conversation id> <entry id>"``: fetch the stream if followed here and behind."""
        text = data.decode() if isinstance(data, bytes) else data
        conversation_id, _, entry_id = text.partition(" ")
        self.notices += 1
        stream = self._streams.get(conversation_id)
        if stream is None:
            return
        if stream.cursor is not None and entry_id:
            with contextlib.suppress(ValueError):
                if id_key(entry_id) <= id_key(stream.cursor):
                    return  # already fetched (a sweep or an earlier notice's batch)
        self._mark(conversation_id)

    async def _subscribe(self) -> None:
        """Hold the subscriber connection; after each (re)subscription, sweep."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._sweep_due = True  # what was appended while not subscribed
                self._wake()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._notice(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001  (Redis away: retry shortly)
                log.warning("stream notices lost Redis (%s); resubscribing", error)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.reset()

    # -- fetching --------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        """Fetch due streams as notices come, and sweep every SWEEP_SECONDS (own connection)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                reader = Redis(
                    connection_pool=self._redis.connection_pool, single_connection_client=True
                )
                try:
                    next_sweep = loop.time() + SWEEP_SECONDS
                    while True:
                        if not self._due and not self._sweep_due:
                            await self._idle(max(0.0, next_sweep - loop.time()))
                        if self._sweep_due or loop.time() >= next_sweep:
                            self._sweep_due = False
                            next_sweep = loop.time() + SWEEP_SECONDS
                            await self._sweep(reader)
                        if self._due:
                            await self._fetch(reader)
                finally:
                    with contextlib.suppress(Exception):
                        await reader.close(close_connection_pool=False)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001  (Redis away: retry shortly)
                log.warning("stream fetcher lost Redis (%s); reconnecting", error)
                self._sweep_due = True
                await asyncio.sleep(RETRY_SECONDS)

    async def _idle(self, timeout: float) -> None:
        """Wait for a due stream or a sweep, at most ``timeout`` seconds. A plain future and a
        timer, no task: the server's graceful stop waits for every task started after startup."""
        loop = asyncio.get_running_loop()
        signal = self._signal = loop.create_future()
        timer = loop.call_later(timeout, _settle, signal)
        try:
            await signal
        finally:
            timer.cancel()
            self._signal = None

    async def _fetch(self, reader: Redis) -> None:
        """One pipelined round trip: ``XRANGE`` after the cursor of every due stream."""
        due = [
            stream
            for conversation_id in self._due
            if (stream := self._streams.get(conversation_id)) is not None and stream.cursor
        ]
        self._due.clear()
        if not due:
            return
        try:
            async with reader.pipeline(transaction=False) as pipe:
                for stream in due:
                    pipe.xrange(stream.key, f"({stream.cursor}", "+", count=FETCH_COUNT)
                replies = await pipe.execute()
        except BaseException:
            self._due.update(stream.conversation_id for stream in due)  # retried later
            raise
        for stream, entries in zip(due, replies, strict=True):
            self._dispatch(stream, entries)
            if len(entries) >= FETCH_COUNT:
                self._mark(stream.conversation_id)  # more: again at once

    async def _sweep(self, reader: Redis) -> None:
        """Read every followed stream from its cursor (only those with news answer)."""
        self.sweeps += 1
        streams = [s for s in self._streams.values() if s.cursor]
        for start in range(0, len(streams), SWEEP_CHUNK):
            chunk = {s.key: s.cursor for s in streams[start : start + SWEEP_CHUNK]}
            by_key = {s.key: s for s in streams[start : start + SWEEP_CHUNK]}
            for key, entries in await reader.xread(chunk, count=FETCH_COUNT) or []:
                stream = by_key[key.decode() if isinstance(key, bytes) else key]
                self._dispatch(stream, entries)
                if len(entries) >= FETCH_COUNT:
                    self._mark(stream.conversation_id)

    def _dispatch(self, stream: _Stream, entries: list) -> None:
        if self._streams.get(stream.conversation_id) is not stream or stream.cursor is None:
            return  # no longer followed (or followed anew, with its own cursor)
        for entry_id, fields in entries:
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            if id_key(entry_id) <= id_key(stream.cursor):
                continue
            stream.cursor = entry_id
            event = decode(entry_id, fields)
            for subscription in list(stream.subscriptions):
                subscription._offer(stream.conversation_id, event)

    async def run(self) -> None:
        """Run the subscriber and the fetcher until cancelled."""
        tasks = [asyncio.create_task(self._subscribe()), asyncio.create_task(self._fetch_loop())]
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
        self._queue: collections.deque[tuple[str, dict]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

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
        self._wake()

    async def close(self) -> None:
        await self.follow({})

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _offer(self, conversation_id: str, event: dict[str, Any]) -> None:
        if len(self._queue) < QUEUE_SIZE:
            self._queue.append((conversation_id, event))
        else:  # a slow socket: re-read from the stream, in order
            self._catch_up.add(conversation_id)
        self._wake()

    async def next(self, timeout: float) -> list[tuple[str, dict]]:
        """The events after each conversation's offset, oldest first per conversation; waits
        up to ``timeout`` seconds for some (``[]`` if none came)."""
        if not self._catch_up and not self._queue:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        out: list[tuple[str, dict]] = []
        while self._catch_up:
            conversation_id = self._catch_up.pop()
            if conversation_id in self.offsets:
                await self._read_back(conversation_id, out)
        queued, self._queue = self._queue, collections.deque()
        for conversation_id, event in queued:
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


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


FANOUT = web.AppKey("stream_fanout", StreamFanout)


def fanout_of(request: web.Request) -> StreamFanout:
    return request.app[FANOUT]


def setup(app: web.Application, redis: Redis, namespace: str) -> None:
    """Register the fan-out on the application and run its subscriber and fetcher while the app
    runs."""
    fanout = StreamFanout(redis, ConversationEvents(redis, namespace))
    app[FANOUT] = fanout

    async def running(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(fanout.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(running)
