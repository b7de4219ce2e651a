"""The buttons the bot offered last: the only intent payloads a customer may send.

Rasa treats a message that starts with ``/`` as an intent (``/restart``, ``/session_start``,
``/csat_rating{"csat_score": "12345"}``). A customer may therefore send a payload only when it is
the payload of a button the bot offered in its latest replies in this conversation, or the
request for a person the widget always shows (:data:`ALWAYS_OFFERED`). The shown title (stored
as the customer's words) is the offered button's, never the client's.

Each time bot replies are relayed, their buttons replace the conversation's offer
(``<ns>:web:conv:<id>:offers``, a hash payload -> title with TTL ``offered_buttons_ttl_seconds``);
a turn whose replies offer no buttons clears it. Payloads and titles are stored masked.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from bot import keys

# The widget's "Talk to a person" button (bot/web/static/widget.js, PAYLOAD_HUMAN).
REQUEST_HUMAN = "/request_human"
ALWAYS_OFFERED = {REQUEST_HUMAN: "Talk to a person"}


class OfferedButtons:
    """Per conversation: the payloads and titles of the buttons the bot offered last."""

    def __init__(self, redis: Redis, namespace: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl = ttl_seconds

    def key(self, conversation_id: str) -> str:
        return keys.WEB_CONVERSATION_OFFERS.format(ns=self._ns, conversation=conversation_id)

    @property
    def ttl(self) -> int:
        return self._ttl

    @staticmethod
    def offered(events: list[dict[str, Any]]) -> dict[str, str]:
        """payload -> title of the buttons of these bot message events (the first title wins)."""
        offered: dict[str, str] = {}
        for event in events:
            for button in event.get("buttons") or []:
                offered.setdefault(str(button["payload"]), str(button["title"]))
        return offered

    async def replace(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        """The buttons of these bot message events become the offer (none: nothing offered)."""
        offered = self.offered(events)
        key = self.key(conversation_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if offered:
                pipe.hset(key, mapping=offered)
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def title_of(self, conversation_id: str, payload: str) -> str | None:
        """The title of the offered button with this payload; None when it was not offered."""
        if payload in ALWAYS_OFFERED:
            return ALWAYS_OFFERED[payload]
        title = await self._redis.hget(self.key(conversation_id), payload)
        if title is None:
            return None
        return title.decode() if isinstance(title, bytes) else title
