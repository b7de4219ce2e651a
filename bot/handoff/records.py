"""The handoff's records: who answers a conversation, its stored state, and the bot's request.

`ConversationMode` is who answers the customer; it follows the ticket's state in the queue.
`HandoffState` is one conversation's hash in Redis (`<ns>:handoff:<conversation id>`), read by
`ModeStore`. `TicketRequest` is what the bot asks the queue to open, with the queue's own
`bot.queue.Summary` for the agent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from bot.queue import Summary


class ConversationMode(str, Enum):
    """Who answers the customer: the bot, nobody yet (a ticket is queued: the customer keeps
    their place and the bot still answers routine questions), or a person (the bot is silent)."""

    BOT = "bot"
    WAITING = "waiting"
    AGENT = "agent"

    def __str__(self) -> str:  # "waiting", not "ConversationMode.WAITING" (Redis, slots, logs)
        return self.value

    @classmethod
    def of_ticket_state(cls, ticket_state: str | None) -> ConversationMode:
        """The mode a ticket in this state means; a closed or unknown ticket: the bot."""
        return _MODE_OF_TICKET_STATE.get(ticket_state or "", cls.BOT)


_MODE_OF_TICKET_STATE = {
    "queued": ConversationMode.WAITING,
    "assigned": ConversationMode.AGENT,
    "resolved": ConversationMode.BOT,
    "returned_to_bot": ConversationMode.BOT,
    "abandoned": ConversationMode.BOT,
}


@dataclass(frozen=True, kw_only=True)
class TicketRequest:
    """What the bot asks the queue to open."""

    conversation_id: str
    customer_id: str
    customer_name: str = "Customer"
    verified: bool = False
    reasons: list[str]
    priority: int
    topic: str
    summary: Summary = field(default_factory=Summary)


class HandoffState(BaseModel):
    """One conversation's handoff state as stored in Redis."""

    conversation_id: str
    mode: ConversationMode = ConversationMode.BOT
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
        if self.mode != ConversationMode.WAITING or self.requested_at is None:
            return 0.0
        return (now or time.time()) - self.requested_at

    @classmethod
    def from_hash(cls, conversation_id: str, raw: dict[str, str]) -> HandoffState:
        data: dict[str, Any] = {"conversation_id": conversation_id, **raw}
        for key in ("reasons", "last_reasons"):
            data[key] = json.loads(raw.get(key) or "[]")
        data["contact_offered"] = raw.get("contact_offered") == "1"
        return cls.parse_obj(data)
