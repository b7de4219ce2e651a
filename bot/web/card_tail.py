"""Card numbers split over consecutive messages of one conversation are masked too.

A customer may type ``my card is 4111 1111`` and then ``1111 1111``: neither message holds a card
number, both together do. For each conversation and side (``customer``, ``agent``) the digits the
last message ended with are kept in Redis for a short while (``<ns>:web:conv:<id>:cardtail:<side>``,
at most 18 digits, TTL ``card_tail_ttl_seconds``). When the next message of that side starts with
digits that complete a Luhn-valid 13-19 digit number with them, those leading digits are replaced
by ``*`` (:func:`bot.masking.mask_continuation`).

What was chosen for the earlier part: it has already been stored and relayed (it held no card
number on its own) and stays as it was; the continuation is masked entirely, so the full number
never exists in one place (not in one message, stream entry, ticket message, Rasa event or log
line) and the digits shown across both messages are only those of the earlier part. The kept
tail is never a card number by itself (it is what remains after masking).
"""

from __future__ import annotations

from redis.asyncio import Redis

from bot import keys
from bot.masking import mask_card_numbers, mask_continuation, next_tail

SIDES = ("customer", "agent")


class CardMasker:
    """Masks card numbers in a conversation's messages, also across consecutive messages."""

    def __init__(self, redis: Redis, namespace: str, tail_ttl_seconds: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl = tail_ttl_seconds

    def key(self, conversation_id: str, side: str) -> str:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}")
        return keys.WEB_CONVERSATION_CARD_TAIL.format(
            ns=self._ns, conversation=conversation_id, side=side
        )

    async def mask(
        self, conversation_id: str, side: str, text: str, tail: str | None = None
    ) -> str:
        """The text masked on its own and as the continuation of the side's last message
        (``tail``: the side's kept digits when the caller read them already, '' for none)."""
        key = self.key(conversation_id, side)
        if tail is None:
            tail = await self._redis.get(key)
        tail = tail.decode() if isinstance(tail, bytes) else (tail or "")
        masked = mask_continuation(tail, mask_card_numbers(text))
        kept = next_tail(tail, masked)
        if kept:
            await self._redis.set(key, kept, ex=self._ttl)
        elif tail:
            await self._redis.delete(key)
        return masked
