"""The per-conversation event stream: everything the customer sees, in order, on Redis Streams.

Each conversation has one stream (``<ns>:web:conv:<id>:events``). The gateway appends the
customer's messages, the bot's replies (with buttons), the agent's replies, notices ("an agent
joined", "left"), mode changes (bot / waiting with position and ETA / agent) and typing signals.
The widget and the console read it through WebSockets from the last event id they saw, so a
reload, a dropped connection, a gateway restart or a second gateway loses nothing: the reader
resumes with ``XREAD`` from its offset. Stream ids are the event ids clients keep.

Events are dicts with ``type`` (``message``, ``notice``, ``mode``, ``typing``), ``from``
(``customer``, ``bot``, ``agent``, ``system``), ``ts`` (epoch seconds) and type-specific fields.
Messages carry an optional ``client_id`` so a retried send is appended once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

STREAM_MAXLEN = 2000
CLIENT_ID_TTL = 24 * 3600
EVENT_TYPES = ("message", "notice", "mode", "typing")
# Typing signals are shown live but not replayed as history.
HISTORY_TYPES = ("message", "notice", "mode")


def stream_key(namespace: str, conversation_id: str) -> str:
    return f"{namespace}:web:conv:{conversation_id}:events"


def _decode(entry_id: bytes | str, fields: dict) -> dict[str, Any]:
    raw = fields.get(b"e") or fields.get("e")
    event = json.loads(raw)
    event["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return event


class ConversationEvents:
    """Append to and read from conversations' event streams."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._ns = namespace

    def key(self, conversation_id: str) -> str:
        return stream_key(self._ns, conversation_id)

    async def append(self, conversation_id: str, events: Iterable[dict[str, Any]]) -> list[dict]:
        """Append events in one round trip; returns them with their ``id`` and ``ts``.

        An event with a ``client_id`` already appended to this conversation is not appended
        again; the earlier one is returned instead, marked ``duplicate`` (a retried send).
        """
        events = [dict(event) for event in events]
        if not events:
            return []
        now = time.time()
        for event in events:
            event.setdefault("ts", now)
        known = await self._known_client_ids(conversation_id, events)
        fresh = [e for e in events if not e.get("client_id") or e["client_id"] not in known]
        key = self.key(conversation_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for event in fresh:
                pipe.xadd(key, {"e": json.dumps(event)}, maxlen=STREAM_MAXLEN, approximate=True)
            ids = await pipe.execute() if fresh else []
        for event, entry_id in zip(fresh, ids, strict=True):
            event["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        await self._remember_client_ids(conversation_id, fresh)
        return [
            {**known[e["client_id"]], "duplicate": True} if e.get("client_id") in known else e
            for e in events
        ]

    async def find(self, conversation_id: str, client_id: str) -> dict[str, Any] | None:
        """The event appended earlier with this client id, if any."""
        known = await self._known_client_ids(conversation_id, [{"client_id": client_id}])
        return known.get(client_id)

    async def _known_client_ids(
        self, conversation_id: str, events: list[dict[str, Any]]
    ) -> dict[str, dict]:
        client_ids = [e["client_id"] for e in events if e.get("client_id")]
        if not client_ids:
            return {}
        keys = [self._client_id_key(conversation_id, c) for c in client_ids]
        stored = await self._redis.mget(keys)
        return {c: json.loads(s) for c, s in zip(client_ids, stored, strict=True) if s}

    async def _remember_client_ids(self, conversation_id: str, events: list[dict]) -> None:
        with_ids = [e for e in events if e.get("client_id")]
        if not with_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in with_ids:
                key = self._client_id_key(conversation_id, event["client_id"])
                pipe.set(key, json.dumps(event), ex=CLIENT_ID_TTL)
            await pipe.execute()

    def _client_id_key(self, conversation_id: str, client_id: str) -> str:
        return f"{self._ns}:web:conv:{conversation_id}:cid:{client_id}"

    async def history(
        self, conversation_id: str, after: str = "0-0", count: int = 500
    ) -> list[dict]:
        """Events after an id (exclusive), oldest first, typing signals left out."""
        entries = await self._redis.xrange(self.key(conversation_id), f"({after}", "+", count=count)
        events = [_decode(entry_id, fields) for entry_id, fields in entries]
        return [e for e in events if e["type"] in HISTORY_TYPES]

    async def read(
        self, offsets: dict[str, str], block_ms: int, count: int = 100
    ) -> list[tuple[str, dict]]:
        """Block until any of the conversations has events after its offset.

        ``offsets`` maps conversation id -> last seen event id. Returns (conversation id, event)
        pairs in stream order per conversation.
        """
        if not offsets:
            return []
        streams = {self.key(c): offset for c, offset in offsets.items()}
        by_key = {self.key(c): c for c in offsets}
        result = await self._redis.xread(streams, count=count, block=block_ms)
        out: list[tuple[str, dict]] = []
        for key, entries in result or []:
            conversation_id = by_key[key.decode() if isinstance(key, bytes) else key]
            out.extend((conversation_id, _decode(i, f)) for i, f in entries)
        return out

    async def last_id(self, conversation_id: str) -> str:
        entries = await self._redis.xrevrange(self.key(conversation_id), count=1)
        if not entries:
            return "0-0"
        entry_id = entries[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
