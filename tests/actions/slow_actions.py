"""Test-only action package: the project's actions, with ``action_respond`` waiting on I/O for
messages that contain :data:`SLOW_MARKER`. Never part of the product: only the slow-action test
(tests/actions/test_slow_actions.py) and ``python -m bench.slow_actions`` start an action server
with ``--actions tests.actions.slow_actions``.

A slow run first pushes the conversation id to :func:`started_key` (so a test knows it is
pending), then waits in a Redis ``BLPOP`` on :func:`release_key` for at most
``SLOW_ACTION_WAIT_SECONDS`` (default 5): real I/O on the event loop, which a test ends early by
pushing to the release key, and the benchmark never does.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import weakref
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

import actions
from actions.connections import redis_url
from actions.respond import ActionRespond

SLOW_MARKER = "slowtest"
PREFIX = "slowtest"  # test-only keys, never the product's (bot/keys.py)

# every action module, so rasa_sdk registers all the project's actions next to this one
for _module in pkgutil.iter_modules(actions.__path__):
    importlib.import_module(f"actions.{_module.name}")

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()


def started_key(conversation_id: str) -> str:
    return f"{PREFIX}:started:{conversation_id}"


def release_key(conversation_id: str) -> str:
    return f"{PREFIX}:release:{conversation_id}"


def _client() -> Redis:
    """A client without a socket timeout (the BLPOP may outlast the product's 5 s)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = Redis.from_url(redis_url(), decode_responses=True)
        _clients[loop] = client
    return client


class SlowActionRespond(ActionRespond):
    """``action_respond`` (registered after it, so it replaces it) with the slow path."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = str((tracker.latest_message or {}).get("text") or "")
        if SLOW_MARKER in text:
            wait = float(os.environ.get("SLOW_ACTION_WAIT_SECONDS", "5"))
            redis = _client()
            await redis.rpush(started_key(tracker.sender_id), "1")
            await redis.blpop(release_key(tracker.sender_id), timeout=wait)
        return await super().run(dispatcher, tracker, domain)
