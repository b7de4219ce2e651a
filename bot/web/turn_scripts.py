"""A customer's bot turn in two Redis round trips: one script before Rasa, one after.

A turn used to make about twelve round trips of its own (token, rate limits, an earlier result of
its client id, twice, the reservation, the handoff state, the card tail; then the append, the
offer, the handoff state again, the mode check and the turn's outcome), each costing the gateway
more CPU than the command costs Redis. The same steps, in the same order and with the same
outcomes, now run in two Lua scripts; every key comes from :mod:`bot.keys` through the module
that owns it, and the shared pieces of Lua are those modules' own (:data:`bot.web.limits.
GCRA_FUNCTION`, :data:`bot.web.events.APPEND_FUNCTION`).

:data:`BEGIN` (:meth:`TurnScripts.begin`), atomically: the conversation must exist and the token's
hash match (compared in constant time); the rate limits are charged (all or none); a client id
already recorded returns its event id; a payload must be one the bot offered (else the turn's
marker is returned, for the caller to wait on a turn under way or refuse); the client id is
reserved (``SET NX``, :mod:`bot.web.turns`); then the handoff state and the card tail the turn
needs are returned. Because it is one atomic step, the second look for an earlier result that the
old sequence made after the reservation is not needed.

:data:`RECORD` (:meth:`TurnScripts.record`), atomically: the customer's message and the bot's
replies are appended once (:mod:`bot.web.events`); when the message was new, the replies' buttons
become the offer (:mod:`bot.web.offers`); the turn's marker becomes ``done``; and the handoff state
and the mode last recorded in the stream are returned, so the usual turn (no ticket, mode
unchanged) needs nothing more. A turn that changed the mode (the action server handed off) still
goes through :meth:`bot.web.conversations.Conversations.sync_mode`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from bot import keys
from bot.web.events import APPEND_FUNCTION, ConversationEvents
from bot.web.limits import GCRA_FUNCTION, Charges
from bot.web.offers import OfferedButtons
from bot.web.turns import TurnReservations

# KEYS[1] conversation record, [2] the client id's event id, [3] the turn marker, [4] handoff
# state, [5] the customer's card tail, [6] the offer, [7..] GCRA keys. ARGV[1] SHA-256 of the
# token, [2] payload ('' for text or a payload always offered), [3] marker, [4] marker TTL,
# [5..] GCRA pairs. Returns {'missing'}, {'rejected'}, {'limited', ms}, {'earlier', event id},
# {'not_offered', marker or false}, {'taken'} or {'reserved', handoff hash, tail, title}.
BEGIN = (
    GCRA_FUNCTION
    + """
local stored = redis.call('HGET', KEYS[1], 'token')
if not stored then return {'missing'} end
local given = ARGV[1]
local diff = (#stored == #given) and 0 or 1
for i = 1, #stored do
  diff = bit.bor(diff, bit.bxor(string.byte(stored, i), string.byte(given, i) or 0))
end
if diff ~= 0 then return {'rejected'} end
local wait = gcra(7, #KEYS - 6, 5)
if wait > 0 then return {'limited', wait} end
local earlier = redis.call('GET', KEYS[2])
if earlier then return {'earlier', earlier} end
local title = false
if ARGV[2] ~= '' then
  title = redis.call('HGET', KEYS[6], ARGV[2])
  if not title then return {'not_offered', redis.call('GET', KEYS[3])} end
end
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[4]) then return {'taken'} end
return {'reserved', redis.call('HGETALL', KEYS[4]), redis.call('GET', KEYS[5]) or '', title}
"""
)

# KEYS[1] event stream, [2] conversation record, [3] the offer, [4] the turn marker, [5] handoff
# state. ARGV[1..6] those of append_events, [7] offer TTL, [8] marker TTL, [9] n buttons, then n
# (payload, title) pairs, then the events' (dedup key, JSON) pairs. Returns {append_events' list,
# handoff hash, the record's mode or false}.
RECORD = (
    APPEND_FUNCTION
    + """
local buttons = tonumber(ARGV[9])
local out = append_events(10 + 2 * buttons)
if out[1][2] == 0 then
  redis.call('DEL', KEYS[3])
  for i = 10, 9 + 2 * buttons, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
  if buttons > 0 then redis.call('EXPIRE', KEYS[3], ARGV[7]) end
end
redis.call('SET', KEYS[4], 'done', 'EX', ARGV[8])
return {out, redis.call('HGETALL', KEYS[5]), redis.call('HGET', KEYS[2], 'mode')}
"""
)


class TokenMissing(LookupError):
    """No such conversation."""


class TokenMismatch(PermissionError):
    """The token is not this conversation's."""


@dataclass
class Begun:
    """What :meth:`TurnScripts.begin` found. ``outcome``: ``reserved`` (run the turn),
    ``earlier`` (recorded before: ``earlier_id``), ``taken`` (another request runs it),
    ``not_offered`` (``marker``: the client id's turn marker, None if absent)."""

    outcome: str
    earlier_id: str | None = None
    marker: str | None = None
    handoff: dict[str, str] = field(default_factory=dict)
    card_tail: str = ""
    title: str | None = None


@dataclass
class Recorded:
    """What :meth:`TurnScripts.record` appended and read."""

    events: list[dict[str, Any]]
    handoff: dict[str, str]
    recorded_mode: str | None


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


class TurnScripts:
    """The two scripts of a bot turn, over the modules that own each key."""

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        events: ConversationEvents,
        offers: OfferedButtons,
        turns: TurnReservations,
        card_tail_key: Callable[[str, str], str],
    ) -> None:
        self._ns = namespace
        self._events = events
        self._offers = offers
        self._turns = turns
        self._card_tail_key = card_tail_key  # (conversation id, side) -> key
        self._begin = redis.register_script(BEGIN)
        self._record = redis.register_script(RECORD)

    def _record_key(self, conversation_id: str) -> str:
        return keys.WEB_CONVERSATION.format(ns=self._ns, conversation=conversation_id)

    def _handoff_key(self, conversation_id: str) -> str:
        return keys.HANDOFF_STATE.format(ns=self._ns, conversation=conversation_id)

    async def begin(
        self,
        conversation_id: str,
        token_hash: str,
        client_id: str,
        payload: str | None,
        charges: Charges,
    ) -> Begun:
        """Authenticate, charge, look for an earlier result, check the payload and reserve, in
        one step; raises :class:`TokenMissing`, :class:`TokenMismatch` or the 429 of
        ``charges``."""
        script_keys = [
            self._record_key(conversation_id),
            self._events.client_id_key(conversation_id, client_id),
            self._turns.key(conversation_id, client_id),
            self._handoff_key(conversation_id),
            self._card_tail_key(conversation_id, "customer"),
            self._offers.key(conversation_id),
            *charges.keys,
        ]
        marker, ttl = self._turns.new_marker()
        args = [token_hash, payload or "", marker, ttl, *charges.args]
        sent_at = charges.clock()
        answer = await self._begin(keys=script_keys, args=args)
        outcome = str(answer[0])
        if outcome == "missing":
            raise TokenMissing(conversation_id)
        if outcome == "rejected":
            raise TokenMismatch(conversation_id)
        if outcome == "limited":  # remembered: refused again without Redis while it holds
            raise charges.refused(int(answer[1]) / 1000, sent_at=sent_at, proof=token_hash)
        if outcome == "earlier":
            return Begun(outcome, earlier_id=str(answer[1]))
        if outcome == "not_offered":
            return Begun(outcome, marker=None if answer[1] is None else str(answer[1]))
        if outcome == "taken":
            return Begun(outcome)
        handoff, tail, title = answer[1], answer[2], answer[3]
        return Begun(
            outcome,
            handoff=_pairs(handoff),
            card_tail=str(tail or ""),
            title=None if title is None else str(title),
        )

    async def record(
        self,
        conversation_id: str,
        client_id: str,
        events: list[dict[str, Any]],
        replies: list[dict[str, Any]],
    ) -> Recorded:
        """Append ``events`` (the customer's message first) once; if the message was new, the
        buttons of ``replies`` become the offer; the turn is marked done."""
        events = [dict(event) for event in events]
        offered = self._offers.offered(replies)
        script_keys = [
            self._events.key(conversation_id),
            self._record_key(conversation_id),
            self._offers.key(conversation_id),
            self._turns.key(conversation_id, client_id),
            self._handoff_key(conversation_id),
        ]
        args: list[Any] = self._events.append_args(conversation_id)
        args += [self._offers.ttl, self._turns.result_ttl, len(offered)]
        for payload, title in offered.items():
            args += [payload, title]
        args += self._events.event_args(events)
        appended, handoff, mode = await self._record(keys=script_keys, args=args)
        return Recorded(
            await self._events.appended(conversation_id, events, appended),
            _pairs(handoff),
            None if mode is None else str(mode),
        )
