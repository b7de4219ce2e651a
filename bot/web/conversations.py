"""Customer conversations: creation with an unguessable token, and routing of each message.

A conversation id is also the Rasa sender id and the queue's conversation id. Its token (32
random bytes, issued once) is stored only as a SHA-256 hash and reaches only that conversation.

Routing of a customer message (text is masked first, see :mod:`bot.masking`):

* mode ``bot`` or ``waiting``: to Rasa's REST webhook; the bot's replies are appended to the
  conversation's event stream (while waiting, the customer keeps their place and may go on
  asking the bot routine questions);
* mode ``agent``: to the ticket's message log through the desk, and to the event stream, where
  the agent's console reads it live. Rasa does not see it: the bot never answers over the agent.

After each turn the handoff state is read again and a change of mode (e.g. the action server
escalated) is recorded once in the stream, whichever gateway notices it first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.masking import mask_card_numbers
from bot.web.desk import Desk, DeskState
from bot.web.events import ConversationEvents
from bot.web.rasa_client import RasaClient

CONVERSATION_TTL = 30 * 24 * 3600
MAX_TEXT_CHARS = 2000
MAX_PAYLOAD_CHARS = 300
PAYLOAD_PATTERN = re.compile(r"/[A-Za-z_][A-Za-z0-9_]*(\{.*\})?", re.DOTALL)

# Records a mode change once: compare with the stored mode, set it, append the event.
_SYNC_MODE = """
local current = redis.call('HGET', KEYS[1], 'mode')
if current == ARGV[1] then return nil end
redis.call('HSET', KEYS[1], 'mode', ARGV[1])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
"""


class ConversationNotFound(LookupError):
    pass


class TokenRejected(PermissionError):
    pass


@dataclass
class Incoming:
    """One customer message: free text or a button payload (with the button's title)."""

    text: str | None = None
    payload: str | None = None
    title: str | None = None
    client_id: str | None = None

    def shown(self) -> str:
        return self.text if self.text is not None else (self.title or self.payload or "")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bot_events(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rasa REST replies as message events (text masked, buttons kept, images as links)."""
    events = []
    for reply in replies:
        event: dict[str, Any] = {"type": "message", "from": "bot"}
        event["text"] = mask_card_numbers(str(reply.get("text") or ""))
        buttons = [
            {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
            for b in reply.get("buttons") or []
        ]
        if buttons:
            event["buttons"] = buttons
        if reply.get("image"):
            event["image"] = str(reply["image"])
        if isinstance(reply.get("custom"), dict):
            event["custom"] = reply["custom"]
        if event["text"] or buttons or "image" in event or "custom" in event:
            events.append(event)
    return events


class Conversations:
    """Creates conversations, checks tokens and routes customer messages."""

    def __init__(
        self, redis: Redis, namespace: str, events: ConversationEvents, rasa: RasaClient, desk: Desk
    ) -> None:
        self._redis = redis
        self._ns = namespace
        self.events = events
        self._rasa = rasa
        self.desk = desk
        self._sync_mode = redis.register_script(_SYNC_MODE)

    def _key(self, conversation_id: str) -> str:
        return f"{self._ns}:web:conv:{conversation_id}"

    async def create(self, origin: str | None = None) -> tuple[str, str]:
        """A new conversation id and its token (the token is returned once, never stored)."""
        conversation_id = f"web-{uuid.uuid4().hex}"
        token = secrets.token_urlsafe(32)
        record = {"token": _hash(token), "created_at": time.time(), "mode": "bot"}
        if origin:
            record["origin"] = origin[:200]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(conversation_id), mapping=record)
            pipe.expire(self._key(conversation_id), CONVERSATION_TTL)
            await pipe.execute()
        return conversation_id, token

    async def exists(self, conversation_id: str) -> bool:
        return bool(await self._redis.exists(self._key(conversation_id)))

    async def authenticate(self, conversation_id: str, token: str) -> None:
        """Raises ConversationNotFound / TokenRejected unless the token is this conversation's."""
        stored = await self._redis.hget(self._key(conversation_id), "token")
        if stored is None:
            raise ConversationNotFound(conversation_id)
        if not token or not hmac.compare_digest(stored, _hash(token)):
            raise TokenRejected(conversation_id)

    async def sync_mode(self, conversation_id: str, state: DeskState | None = None) -> DeskState:
        """The current handoff state; a change of mode is appended to the stream exactly once."""
        state = state or await self.desk.state(conversation_id)
        event = {"type": "mode", "from": "system", "ts": time.time(), **state.public()}
        await self._sync_mode(
            keys=[self._key(conversation_id), self.events.key(conversation_id)],
            args=[state.mode, json.dumps(event), 2000],
        )
        return state

    async def send(self, conversation_id: str, incoming: Incoming) -> tuple[list[dict], DeskState]:
        """Route one customer message; returns the new events for the customer and the state.

        A retry with the client id of a message already taken returns what followed it and
        sends nothing again. In bot mode the message and the bot's replies are appended together
        once Rasa has answered: if Rasa fails, nothing is recorded and the client retries.
        """
        client_id = incoming.client_id or uuid.uuid4().hex
        earlier = await self.events.find(conversation_id, client_id)
        if earlier is not None:
            later = await self.events.history(conversation_id, earlier["id"])
            return [earlier, *later], await self.desk.state(conversation_id)
        state = await self.desk.state(conversation_id)
        shown = mask_card_numbers(incoming.shown())
        customer_event = {"type": "message", "from": "customer", "text": shown}
        customer_event["client_id"] = client_id
        if state.mode == "agent" and state.ticket_id:
            await self.desk.customer_message(state, conversation_id, shown, client_id)
            return await self.events.append(conversation_id, [customer_event]), state
        customer_event["ts"] = time.time()
        to_rasa = incoming.payload if incoming.payload else _as_text(shown)
        replies = await self._rasa.send(conversation_id, to_rasa)
        appended = await self.events.append(conversation_id, [customer_event, *bot_events(replies)])
        return appended, await self.sync_mode(conversation_id)

    async def view(self, conversation_id: str, after: str = "0-0") -> dict[str, Any]:
        state = await self.sync_mode(conversation_id)
        history = await self.events.history(conversation_id, after)
        return {"conversation_id": conversation_id, **state.public(), "messages": history}


def _as_text(text: str) -> str:
    """Free text never reaches Rasa as an intent payload ("/restart" typed by a customer)."""
    return text.lstrip("/ ") or text.replace("/", "")
