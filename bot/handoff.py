"""A conversation's handoff state, owned outside Rasa: in Redis, beside the queue's tickets.

Modes: ``bot`` (the bot answers), ``waiting`` (a ticket is queued; the customer keeps their place
and may still ask the bot routine questions), ``agent`` (a person holds the ticket; the bot is
silent). The mode follows the ticket's state in the queue:

    ticket queued                       -> waiting
    ticket assigned                     -> agent
    resolved | returned_to_bot | abandoned -> bot

`Handoff.sync()` re-reads the ticket and repairs the mode if a process missed a change, so the
queue stays the source of truth. Every change is one atomic compare-and-set (a Lua script) and is
appended to the stream ``<ns>:handoff:changes`` (fields ``conversation_id``, ``mode``,
``ticket_id``, ``at``) for the gateway.

Who calls what:
- the action server (`actions/handoff.py`): `request()` when the policy hands off, `cancel()` when
  the customer cancels, `set_contact()` when they leave an email, `sync()` on every turn;
- the gateway: `agent_joined()` when an agent claims the ticket (the queue's `assigned`), and
  `hand_back()` when the agent returns the conversation, then `resume_in_rasa()` so the bot greets
  the customer back (Rasa runs `action_handback`, which also asks for a rating); optionally
  `check_wait_in_rasa()` for a customer waiting without writing, so the offer to leave contact
  details past the wait limit does not depend on their next message.

The queue itself is reached through `TicketQueue` (a narrow port implemented over `bot.queue`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import aiohttp
from pydantic import BaseModel, Field
from redis.asyncio import Redis

MODES = ("bot", "waiting", "agent")
MODE_OF_TICKET_STATE = {
    "queued": "waiting",
    "assigned": "agent",
    "resolved": "bot",
    "returned_to_bot": "bot",
    "abandoned": "bot",
}
HANDBACK_ACTION = "action_handback"
WAIT_CHECK_ACTION = "action_wait_check"

# KEYS[1] state hash, KEYS[2] change stream; ARGV[1] allowed current modes (comma separated),
# ARGV[2] JSON of the fields to set, ARGV[3] conversation id, ARGV[4] now.
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


class Summary(BaseModel):
    """The bot's summary for the agent (the shape of `bot.tickets.Summary`)."""

    text: str = ""  # one-line gist: why the bot handed over
    intents: list[dict[str, Any]] = Field(default_factory=list)  # name, confidence
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    # role, text, timestamp; customer lines also intent, confidence, sentiment


class TicketRequest(BaseModel):
    """What the bot asks the queue to open."""

    conversation_id: str
    customer_id: str
    customer_name: str = "Customer"
    verified: bool = False
    reasons: list[str]
    priority: int
    topic: str
    summary: Summary


class Waiting(BaseModel):
    """Where a waiting customer stands."""

    position: int | None = None
    eta_seconds: float | None = None


class TicketQueue(Protocol):
    """What the handoff needs from the queue (see `actions/queue_port.py` for the adapter)."""

    async def open_ticket(self, request: TicketRequest) -> str:
        """Open (or return the already open) ticket of the conversation; its id."""

    async def ticket_state(self, ticket_id: str) -> str | None:
        """The ticket's state (queued, assigned, ...), None if unknown."""

    async def waiting(self, ticket_id: str) -> Waiting: ...

    async def agents_available(self, topic: str) -> int:
        """Agents online now who could take a ticket of this topic."""

    async def abandon(self, ticket_id: str, reason: str) -> None: ...

    async def add_note(self, ticket_id: str, note: dict[str, Any]) -> None:
        """Attach information to the ticket (e.g. contact details) for the agent."""


class HandoffState(BaseModel):
    """One conversation's handoff state as stored in Redis."""

    conversation_id: str
    mode: str = "bot"
    ticket_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    priority: int | None = None
    topic: str | None = None
    requested_at: float | None = None
    agent_id: str | None = None
    contact_email: str | None = None
    contact_offered: bool = False
    last_ticket_id: str | None = None  # the ticket of the last human stretch, after it ended
    last_reasons: list[str] = Field(default_factory=list)
    returned_at: float | None = None
    updated_at: float | None = None

    def waited_seconds(self, now: float | None = None) -> float:
        if self.mode != "waiting" or self.requested_at is None:
            return 0.0
        return (now or time.time()) - self.requested_at

    @classmethod
    def from_hash(cls, conversation_id: str, raw: dict[str, str]) -> HandoffState:
        data: dict[str, Any] = {"conversation_id": conversation_id, **raw}
        for key in ("reasons", "last_reasons"):
            data[key] = json.loads(raw.get(key) or "[]")
        data["contact_offered"] = raw.get("contact_offered") == "1"
        return cls.parse_obj(data)


class Handoff:
    """Handoff state of conversations in Redis, kept consistent with the queue's tickets."""

    def __init__(self, redis: Redis, queue: TicketQueue, namespace: str = "support") -> None:
        self.redis = redis
        self.queue = queue
        self.namespace = namespace
        self._transition = redis.register_script(_TRANSITION)

    def key(self, conversation_id: str) -> str:
        return f"{self.namespace}:handoff:{conversation_id}"

    @property
    def changes_stream(self) -> str:
        return f"{self.namespace}:handoff:changes"

    async def get(self, conversation_id: str) -> HandoffState:
        raw = await self.redis.hgetall(self.key(conversation_id))
        return HandoffState.from_hash(conversation_id, _decoded(raw))

    async def _set(self, conversation_id: str, allowed: tuple[str, ...], **fields: Any) -> str:
        encoded = {
            k: (json.dumps(v) if isinstance(v, list) else ("1" if v is True else v))
            for k, v in fields.items()
        }
        encoded = {k: ("" if v is False or v is None else str(v)) for k, v in encoded.items()}
        ok, mode = await self._transition(
            keys=[self.key(conversation_id), self.changes_stream],
            args=[",".join(allowed), json.dumps(encoded), conversation_id, f"{time.time():.3f}"],
        )
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if not ok:
            raise HandoffError(f"conversation {conversation_id} is in mode {mode!r}")
        return mode

    async def request(self, request: TicketRequest) -> HandoffState:
        """bot -> waiting: open the ticket (idempotent) and remember it."""
        ticket_id = await self.queue.open_ticket(request)
        await self._set(
            request.conversation_id,
            ("bot", "waiting"),
            mode="waiting",
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
        if state.mode != "waiting" or not state.ticket_id:
            raise HandoffError(f"conversation {conversation_id} has no waiting request")
        await self.queue.abandon(state.ticket_id, "customer_cancelled")
        await self._end(state, ("waiting",))
        return await self.get(conversation_id)

    async def agent_joined(self, conversation_id: str, agent_id: str) -> HandoffState:
        """waiting -> agent: a person holds the ticket (call when the queue assigns it)."""
        await self._set(conversation_id, ("waiting", "agent"), mode="agent", agent_id=agent_id)
        return await self.get(conversation_id)

    async def hand_back(self, conversation_id: str) -> HandoffState:
        """agent | waiting -> bot: the human stretch is over (resolved or returned to the bot)."""
        state = await self.get(conversation_id)
        if state.mode == "bot":
            raise HandoffError(f"conversation {conversation_id} is already with the bot")
        await self._end(state, ("waiting", "agent"))
        return await self.get(conversation_id)

    async def _end(self, state: HandoffState, allowed: tuple[str, ...]) -> None:
        await self._set(
            state.conversation_id,
            allowed,
            mode="bot",
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
        await self._set(conversation_id, MODES, contact_email=email)
        if state.ticket_id:
            await self.queue.add_note(state.ticket_id, {"contact_email": email})
        return await self.get(conversation_id)

    async def mark_contact_offered(self, conversation_id: str) -> None:
        await self._set(conversation_id, ("waiting",), contact_offered=True)

    async def sync(self, conversation_id: str) -> HandoffState:
        """The state, repaired from the ticket's state in the queue if they disagree."""
        state = await self.get(conversation_id)
        if not state.ticket_id:
            return state
        ticket_state = await self.queue.ticket_state(state.ticket_id)
        expected = MODE_OF_TICKET_STATE.get(ticket_state or "", "bot")
        if expected == state.mode:
            return state
        if expected == "bot":
            await self._end(state, (state.mode,))
        else:
            await self._set(conversation_id, (state.mode,), mode=expected)
        return await self.get(conversation_id)


async def run_in_rasa(
    rasa_url: str,
    conversation_id: str,
    action: str,
    session: aiohttp.ClientSession | None = None,
) -> list[dict[str, Any]]:
    """Run one of the bot's actions in the conversation through Rasa's HTTP API and return the
    bot's messages for the customer; the bot then listens, as after any turn."""
    base = f"{rasa_url.rstrip('/')}/conversations/{conversation_id}"
    timeout = aiohttp.ClientTimeout(total=30)
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.post(f"{base}/execute", json={"name": action}, timeout=timeout) as resp:
            resp.raise_for_status()
            messages = (await resp.json()).get("messages") or []
        # `execute` runs the action alone; appending `action_listen` puts the conversation back
        # where a turn ends, so the customer's next message is handled by the rules as always.
        async with session.post(
            f"{base}/tracker/events",
            json={"event": "action", "name": "action_listen"},
            timeout=timeout,
        ) as resp:
            resp.raise_for_status()
        return messages
    finally:
        if own:
            await session.close()


async def resume_in_rasa(
    rasa_url: str, conversation_id: str, session: aiohttp.ClientSession | None = None
) -> list[dict[str, Any]]:
    """Tell Rasa the human stretch ended: runs `action_handback` (greets the customer back and
    asks for a rating) and returns the bot's messages for the customer."""
    return await run_in_rasa(rasa_url, conversation_id, HANDBACK_ACTION, session)


async def check_wait_in_rasa(
    rasa_url: str, conversation_id: str, session: aiohttp.ClientSession | None = None
) -> list[dict[str, Any]]:
    """For a customer waiting silently: runs `action_wait_check`, which offers to leave contact
    details once the wait passes the policy's limit (nothing otherwise). Returns its messages."""
    return await run_in_rasa(rasa_url, conversation_id, WAIT_CHECK_ACTION, session)


def _decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
