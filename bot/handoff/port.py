"""The handoff's port to the queue: what it needs (`TicketQueue`) and the adapter over
`bot.queue.HandoffQueue` (`QueuePort`). The queue client itself comes from `bot.queue.open_queue`."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

from bot.queue import Customer, HandoffQueue, InvalidTransition, QueuePosition

if TYPE_CHECKING:
    from bot.handoff.records import TicketRequest

BOT_SENDER = "bot"


class TicketQueue(Protocol):
    """What the handoff needs from the queue (`QueuePort` implements it)."""

    async def open_ticket(self, request: TicketRequest) -> str:
        """Open (or return the already open) ticket of the conversation; its id."""

    async def ticket_state(self, ticket_id: str) -> str | None:
        """The ticket's state (queued, assigned, ...), None if unknown."""

    async def waiting(self, ticket_id: str) -> QueuePosition: ...

    async def agents_available(self, topic: str) -> int:
        """Agents online now who could take a ticket of this topic."""

    async def abandon(self, ticket_id: str, reason: str) -> None: ...

    async def abandon_waiting(self, ticket_id: str, reason: str) -> bool:
        """Abandon the ticket only if no agent has taken it yet (atomically); whether it was."""

    async def add_note(self, ticket_id: str, note: dict[str, Any]) -> None:
        """Attach information to the ticket (e.g. contact details) for the agent."""


class QueuePort:
    """Opens tickets with the bot's summary, reads their state and the customer's place."""

    def __init__(self, queue: HandoffQueue) -> None:
        self.queue = queue

    async def open_ticket(self, request: TicketRequest) -> str:
        ticket = await self.queue.enqueue(
            request.conversation_id,
            Customer(request.customer_id, request.customer_name, request.verified),
            reasons=request.reasons,
            priority=request.priority,
            topic=request.topic,
            summary=request.summary,
        )
        return ticket.id

    async def ticket_state(self, ticket_id: str) -> str | None:
        """One HGET of the ticket hash's `state` (read on every turn and every gateway poll)."""
        return await self.queue.redis.hget(self.queue.key("t", ticket_id), "state")

    async def waiting(self, ticket_id: str) -> QueuePosition:
        return await self.queue.position(ticket_id)

    async def agents_available(self, topic: str) -> int:
        agents = await self.queue.agents(online_only=True)
        return sum(1 for a in agents if topic in a.skills or "*" in a.skills)

    async def abandon(self, ticket_id: str, reason: str) -> None:
        await self.queue.abandon(ticket_id, reason)

    async def abandon_waiting(self, ticket_id: str, reason: str) -> bool:
        try:
            await self.queue.abandon(ticket_id, reason, waiting_only=True)
        except InvalidTransition:
            return False
        return True

    async def add_note(self, ticket_id: str, note: dict[str, Any]) -> None:
        text = "; ".join(f"{key.replace('_', ' ')}: {value}" for key, value in note.items())
        await self.queue.send_message(
            ticket_id, "system", BOT_SENDER, f"Customer left {text}", uuid.uuid4().hex
        )
