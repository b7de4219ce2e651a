"""The per-conversation event stream: everything the customer sees, in order, on Redis Streams.

Each conversation has one stream (:data:`bot.keys.WEB_CONVERSATION_EVENTS`). The gateway appends the
customer's messages, the bot's replies (with buttons), the agent's replies, notices ("an agent
joined", "left"), mode changes (bot / waiting with position and ETA / agent) and typing signals.
The widget and the console read it through WebSockets from the last event id they saw, so a
reload, a dropped connection, a gateway restart or a second gateway loses nothing: the reader
resumes from its offset. Stream ids are the event ids clients keep. Every append also publishes
a notice (``"<conversation id> <entry id>"``) on :func:`notice_channel`, on which each gateway's
fan-out (:mod:`bot.web.fanout`) learns which stream to read.

Events are dicts with ``type`` (``message``, ``notice``, ``mode``, ``typing``), ``from``
(``customer``, ``bot``, ``agent``, ``system``), ``ts`` (epoch seconds) and type-specific fields.
Messages carry an optional ``client_id`` so a retried send is appended once. Every append
renews the expiry of the stream and of the conversation's record (``conversation_retention_seconds``),
so a conversation is deleted that long after its last event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from bot import keys
from bot.config import get_settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

STREAM_MAXLEN = 2000
CLIENT_ID_TTL = 24 * 3600
# Typing signals are shown live but not replayed as history.
HISTORY_TYPES = ("message", "notice", "mode")


def stream_key(namespace: str, conversation_id: str) -> str:
    return keys.WEB_CONVERSATION_EVENTS.format(ns=namespace, conversation=conversation_id)


def notice_channel(namespace: str) -> str:
    """``<ns>:web:conv-notices``: every append to an event stream publishes
    ``"<conversation id> <last new entry id>"`` here (:mod:`bot.web.fanout` listens)."""
    return keys.WEB_CONVERSATION_NOTICES.format(ns=namespace)


def decode(entry_id: bytes | str, fields: dict) -> dict[str, Any]:
    """A stream entry as an event dict with its ``id``."""
    raw = fields.get(b"e") or fields.get("e")
    event = json.loads(raw)
    event["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return event


# One round trip appends a batch: an event whose client id is known is not appended again (its
# earlier id is returned, flagged); each new one is XADDed and its client id remembered, and
# "<conversation id> <last new id>" is PUBLISHed on the notice channel (bot.web.fanout).
# KEYS[1] stream, KEYS[2] the conversation's record; ARGV[1] maxlen, ARGV[2] client-id TTL,
# ARGV[3] client-id key prefix, ARGV[4] retention (s: both keys expire that long after the last
# append), ARGV[5] notice channel, ARGV[6] conversation id, then from ARGV[first] to the end
# pairs of (client id or '', event JSON). Returns {id, duplicate 0|1} per event. Shared with the
# script that records a bot turn (bot.web.turn_scripts).
APPEND_FUNCTION = """
local function append_events(first)
  local out = {}
  local last = false
  for i = first, #ARGV, 2 do
    local cid, event = ARGV[i], ARGV[i + 1]
    local known = false
    if cid ~= '' then known = redis.call('GET', ARGV[3] .. cid) end
    if known then
      out[#out + 1] = {known, 1}
    else
      local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', event)
      if cid ~= '' then redis.call('SET', ARGV[3] .. cid, id, 'EX', ARGV[2]) end
      out[#out + 1] = {id, 0}
      last = id
    end
  end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  if last then redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. last) end
  return out
end
"""
_APPEND = APPEND_FUNCTION + "return append_events(7)\n"
# The same, only if the ticket hash KEYS[3] is assigned to the agent ARGV[7] (an agent's reply).
_APPEND_GUARDED = (
    APPEND_FUNCTION
    + """
local held = redis.call('HMGET', KEYS[3], 'state', 'agent')
if held[1] ~= 'assigned' or held[2] ~= ARGV[7] then return redis.error_reply('NOTHOLDER') end
return append_events(8)
"""
)


class NotHolder(PermissionError):
    """A guarded append for an agent that does not hold the ticket."""


class ConversationEvents:
    """Append to and read from conversations' event streams."""

    def __init__(self, redis: Redis, namespace: str, retention_seconds: int | None = None) -> None:
        self._redis = redis
        self._ns = namespace
        self._retention = retention_seconds or get_settings().conversation_retention_seconds
        self._append = redis.register_script(_APPEND)
        self._append_guarded = redis.register_script(_APPEND_GUARDED)

    def key(self, conversation_id: str) -> str:
        return stream_key(self._ns, conversation_id)

    @property
    def channel(self) -> str:
        """The notice channel every append publishes on (:func:`notice_channel`)."""
        return notice_channel(self._ns)

    async def append(
        self,
        conversation_id: str,
        events: Iterable[dict[str, Any]],
        *,
        holder: tuple[str, str] | None = None,
    ) -> list[dict]:
        """Append events atomically in one round trip; returns them with ``id`` and ``ts``.

        An event with a ``client_id`` already appended to this conversation is not appended
        again; the earlier one is returned instead, marked ``duplicate`` (a retried send). An
        event may carry a ``dedup_key`` instead (not stored in the event): the same rule, for
        events without a client id of their own (a bot reply recorded by two gateways).
        ``holder=(ticket hash key, agent id)`` appends only if that agent holds the ticket, in
        the same atomic step (else :class:`NotHolder`).
        """
        events = [dict(event) for event in events]
        if not events:
            return []
        args = self.append_args(conversation_id)
        script_keys = [
            self.key(conversation_id),
            keys.WEB_CONVERSATION.format(ns=self._ns, conversation=conversation_id),
        ]
        script = self._append
        if holder is not None:
            script_keys.append(holder[0])
            args.append(holder[1])
            script = self._append_guarded
        args += self.event_args(events)
        try:
            results = await script(keys=script_keys, args=args)
        except ResponseError as error:
            if "NOTHOLDER" in str(error):
                raise NotHolder(conversation_id) from None
            raise
        return await self.appended(conversation_id, events, results)

    def append_args(self, conversation_id: str) -> list[Any]:
        """ARGV[1..6] of :data:`APPEND_FUNCTION` for this conversation."""
        return [
            STREAM_MAXLEN,
            CLIENT_ID_TTL,
            self.client_id_key(conversation_id, ""),
            self._retention,
            self.channel,
            conversation_id,
        ]

    @staticmethod
    def event_args(events: list[dict[str, Any]]) -> list[str]:
        """The (dedup key or '', JSON) pairs of events (copies: ``ts`` set, ``dedup_key`` taken
        out of the stored event)."""
        now = time.time()
        args: list[str] = []
        for event in events:
            event.setdefault("ts", now)
            once = event.pop("dedup_key", None) or event.get("client_id") or ""
            args += [once, json.dumps(event)]
        return args

    async def appended(
        self, conversation_id: str, events: list[dict[str, Any]], results: list
    ) -> list[dict]:
        """The events with the ids :data:`APPEND_FUNCTION` returned; a duplicate is the earlier
        stored event, marked ``duplicate``."""
        out = []
        for event, (entry_id, duplicate) in zip(events, results, strict=True):
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            if duplicate:
                earlier = await self.at(conversation_id, entry_id)
                out.append({**(earlier or event), "id": entry_id, "duplicate": True})
            else:
                out.append({**event, "id": entry_id})
        return out

    async def find(self, conversation_id: str, client_id: str) -> dict[str, Any] | None:
        """The event appended earlier with this client id, if any."""
        entry_id = await self._redis.get(self.client_id_key(conversation_id, client_id))
        if entry_id is None:
            return None
        return await self.at(conversation_id, entry_id)

    async def at(self, conversation_id: str, entry_id: str) -> dict[str, Any] | None:
        """The event with this stream id, if it is still there."""
        entries = await self._redis.xrange(self.key(conversation_id), entry_id, entry_id)
        return decode(*entries[0]) if entries else None

    def client_id_key(self, conversation_id: str, client_id: str) -> str:
        """The key that maps a message's client id to its event id."""
        return keys.WEB_CONVERSATION_CLIENT_ID.format(
            ns=self._ns, conversation=conversation_id, client_id=client_id
        )

    async def history(
        self, conversation_id: str, after: str = "0-0", count: int = 500
    ) -> list[dict]:
        """Events after an id (exclusive), oldest first, typing signals left out."""
        entries = await self._redis.xrange(self.key(conversation_id), f"({after}", "+", count=count)
        events = [decode(entry_id, fields) for entry_id, fields in entries]
        return [e for e in events if e["type"] in HISTORY_TYPES]

    async def since(self, conversation_id: str, after: str, count: int) -> list[dict]:
        """Up to ``count`` events after an id (exclusive), oldest first, typing included."""
        entries = await self._redis.xrange(self.key(conversation_id), f"({after}", "+", count=count)
        return [decode(entry_id, fields) for entry_id, fields in entries]

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
            out.extend((conversation_id, decode(i, f)) for i, f in entries)
        return out

    async def last_id(self, conversation_id: str) -> str:
        entries = await self._redis.xrevrange(self.key(conversation_id), count=1)
        if not entries:
            return "0-0"
        entry_id = entries[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
