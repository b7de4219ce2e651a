"""`ModeStore`: each conversation's mode and handoff state in Redis, kept in step with its ticket.

Every change is one atomic compare-and-set (a Lua script) and is appended to the stream
``<ns>:handoff:changes`` (fields ``conversation_id``, ``mode``, ``ticket_id``, ``at``) for the
gateway. `sync()` re-reads the ticket and repairs the mode if a process missed a change, so the
queue stays the source of truth.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from bot import keys
from bot.config import get_settings
from bot.handoff.records import ConversationMode, HandoffState

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.handoff.port import TicketQueue
    from bot.handoff.records import TicketRequest

BOT, WAITING, AGENT = ConversationMode.BOT, ConversationMode.WAITING, ConversationMode.AGENT

# KEYS[1] state hash, KEYS[2] change stream; ARGV[1] allowed current modes (comma separated),
# ARGV[2] JSON of the fields to set, ARGV[3] conversation id, ARGV[4] now, ARGV[5] retention (s):
# the state hash expires that long after its last change.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'mode') or 'bot'
local allowed = false
for mode in string.gmatch(ARGV[1], '[^,]+') do
  if mode == current then allowed = true end
end
if not allowed then return {0, current} end
local fields = cjson.decode(ARGV[2])
for key, value in pairs(fields) do
  if value == cjson.null or value == '' then
    redis.call('HDEL', KEYS[1], key)
  else
    redis.call('HSET', KEYS[1], key, value)
  end
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local mode = redis.call('HGET', KEYS[1], 'mode') or 'bot'
if mode ~= current then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'conversation_id', ARGV[3],
             'mode', mode, 'ticket_id', redis.call('HGET', KEYS[1], 'ticket_id') or '',
             'at', ARGV[4])
end
return {1, mode}
"""


class HandoffError(RuntimeError):
    """A transition that the conversation's current mode does not allow."""


class AgentAlreadyJoined(HandoffError):
    """The customer cancelled a request that an agent had just taken: the chat stays with them."""


class ModeStore:
    """Conversations' modes and handoff state in Redis, kept consistent with the queue's tickets."""

    def __init__(
        self,
        redis: Redis,
        queue: TicketQueue,
        namespace: str = "support",
        retention_seconds: int | None = None,
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.namespace = namespace
        self.retention_seconds = retention_seconds or get_settings().conversation_retention_seconds
        self._transition = redis.register_script(_TRANSITION)

    def key(self, conversation_id: str) -> str:
        return keys.HANDOFF_STATE.format(ns=self.namespace, conversation=conversation_id)

    @property
    def changes_stream(self) -> str:
        return keys.HANDOFF_CHANGES.format(ns=self.namespace)

    async def get(self, conversation_id: str) -> HandoffState:
        raw = await self.redis.hgetall(self.key(conversation_id))
        return HandoffState.from_hash(conversation_id, _decoded(raw))

    async def _set(
        self, conversation_id: str, allowed: tuple[ConversationMode, ...], **fields: Any
    ) -> ConversationMode:
        encoded = {
            k: (json.dumps(v) if isinstance(v, list) else ("1" if v is True else v))
            for k, v in fields.items()
        }
        encoded = {k: ("" if v is False or v is None else str(v)) for k, v in encoded.items()}
        ok, mode = await self._transition(
            keys=[self.key(conversation_id), self.changes_stream],
            args=[
                ",".join(map(str, allowed)),
                json.dumps(encoded),
                conversation_id,
                f"{time.time():.3f}",
                self.retention_seconds,
            ],
        )
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if not ok:
            raise HandoffError(f"conversation {conversation_id} is in mode {mode!r}")
        return ConversationMode(mode)

    async def request(self, request: TicketRequest) -> HandoffState:
        """bot -> waiting: open the ticket (idempotent) and remember it."""
        ticket_id = await self.queue.open_ticket(request)
        await self._set(
            request.conversation_id,
            (BOT, WAITING),
            mode=WAITING,
            ticket_id=ticket_id,
            reasons=request.reasons,
            priority=request.priority,
            topic=request.topic,
            requested_at=f"{time.time():.3f}",
            contact_offered=False,
            agent_id=None,
        )
        return await self.get(request.conversation_id)

    async def cancel(self, conversation_id: str) -> HandoffState:
        """waiting -> bot: the customer withdrew the request; the ticket is abandoned."""
        state = await self.get(conversation_id)
        if state.mode != WAITING or not state.ticket_id:
            raise HandoffError(f"conversation {conversation_id} has no waiting request")
        if not await self.queue.abandon_waiting(state.ticket_id, "customer_cancelled"):
            raise AgentAlreadyJoined(f"an agent has taken the ticket of {conversation_id}")
        await self._end(state, (WAITING,))
        return await self.get(conversation_id)

    async def agent_joined(self, conversation_id: str, agent_id: str) -> HandoffState:
        """waiting -> agent: a person holds the ticket (call when the queue assigns it)."""
        await self._set(conversation_id, (WAITING, AGENT), mode=AGENT, agent_id=agent_id)
        return await self.get(conversation_id)

    async def hand_back(self, conversation_id: str) -> HandoffState:
        """agent | waiting -> bot: the human stretch is over (resolved or returned to the bot)."""
        state = await self.get(conversation_id)
        if state.mode == BOT:
            raise HandoffError(f"conversation {conversation_id} is already with the bot")
        await self._end(state, (WAITING, AGENT))
        return await self.get(conversation_id)

    async def _end(self, state: HandoffState, allowed: tuple[ConversationMode, ...]) -> None:
        await self._set(
            state.conversation_id,
            allowed,
            mode=BOT,
            ticket_id=None,
            agent_id=None,
            requested_at=None,
            contact_offered=False,
            last_ticket_id=state.ticket_id,
            last_reasons=state.reasons,
            returned_at=f"{time.time():.3f}",
        )

    async def set_contact(self, conversation_id: str, email: str) -> HandoffState:
        """Keep the customer's email with the state and on the ticket."""
        state = await self.get(conversation_id)
        await self._set(conversation_id, tuple(ConversationMode), contact_email=email)
        if state.ticket_id:
            await self.queue.add_note(state.ticket_id, {"contact_email": email})
        return await self.get(conversation_id)

    async def mark_contact_offered(self, conversation_id: str) -> None:
        await self._set(conversation_id, (WAITING,), contact_offered=True)

    async def sync(self, conversation_id: str) -> HandoffState:
        """The state, repaired from the ticket's state in the queue if they disagree."""
        state = await self.get(conversation_id)
        if not state.ticket_id:
            return state
        expected = ConversationMode.of_ticket_state(await self.queue.ticket_state(state.ticket_id))
        if expected == state.mode:
            return state
        if expected == BOT:
            await self._end(state, (state.mode,))
        else:
            await self._set(conversation_id, (state.mode,), mode=expected)
        return await self.get(conversation_id)


def _decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
