"""Typing signals: ephemeral, on Redis Pub/Sub, never in the conversation's event stream.

Typing used to be appended to the conversation's capped event stream, so a flood of typing
frames could push real messages out of it. Now a typing signal is PUBLISHed on one channel per
namespace (``<ns>:web:typing``); every gateway subscribes once and hands each signal to its own
open sockets that follow that conversation. Nothing is stored, so nothing can be evicted, and a
signal nobody is listening for is simply gone (typing is only worth showing live). Signals are
also rate-limited per conversation and side (:mod:`bot.web.limits`).

On the wire a signal looks like any other event (``{"type": "event", "conversation_id",
"event": {"type": "typing", "from", "typing", "ts", "id"}}``); its ``id`` is not a stream id and
clients do not keep it as an offset (they never did for typing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from bot import keys
from bot.web.inputs import valid_id

log = logging.getLogger("bot.web.typing")
QUEUE_SIZE = 16
Send = Callable[[str, dict[str, Any]], Awaitable[None]]


def typing_channel(namespace: str) -> str:
    """``<ns>:web:typing``: the Pub/Sub channel of typing signals (no key is stored)."""
    return keys.WEB_TYPING.format(ns=namespace)


class Listener:
    """One socket's subscription: signals for the conversations in ``conversations``."""

    def __init__(self, conversations: Container[str], send: Send) -> None:
        self.conversations = conversations
        self._send = send
        self._queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue(QUEUE_SIZE)
        self._task = asyncio.create_task(self._forward())

    def offer(self, conversation_id: str, event: dict[str, Any]) -> None:
        if conversation_id in self.conversations:
            with contextlib.suppress(asyncio.QueueFull):  # a slow socket misses typing, not more
                self._queue.put_nowait((conversation_id, event))

    async def _forward(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                conversation_id, event = await self._queue.get()
                await self._send(conversation_id, event)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class TypingRelay:
    """Publishes typing signals and delivers them to this gateway's listening sockets."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self.channel = typing_channel(namespace)
        self._listeners: set[Listener] = set()

    async def publish(self, conversation_id: str, sender: str, typing: bool) -> dict[str, Any]:
        event = {
            "type": "typing",
            "from": sender,
            "typing": bool(typing),
            "ts": time.time(),
            "id": f"typing-{uuid.uuid4().hex[:12]}",
        }
        message = json.dumps({"conversation_id": conversation_id, "event": event})
        await self._redis.publish(self.channel, message)
        return event

    def listen(self, conversations: Container[str], send: Send) -> Listener:
        listener = Listener(conversations, send)
        self._listeners.add(listener)
        return listener

    async def unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        await listener.close()

    def _dispatch(self, data: str) -> None:
        try:
            message = json.loads(data)
            conversation_id, event = message["conversation_id"], message["event"]
        except (ValueError, KeyError, TypeError):
            return
        if not valid_id(conversation_id) or not isinstance(event, dict):
            return
        for listener in list(self._listeners):
            listener.offer(conversation_id, event)

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled; resubscribes after a Redis outage."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self._dispatch(data.decode() if isinstance(data, bytes) else data)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001  (Redis away: retry shortly)
                log.warning("typing relay lost Redis (%s); resubscribing", error)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.reset()


TYPING = web.AppKey("typing_relay", TypingRelay)


def typing_relay(request: web.Request) -> TypingRelay:
    return request.app[TYPING]


def setup(app: web.Application, redis: Redis, namespace: str) -> None:
    """Register the relay on the application and run its subscriber while the app runs."""
    relay = TypingRelay(redis, namespace)
    app[TYPING] = relay

    async def subscriber(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(relay.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(subscriber)
