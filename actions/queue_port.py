"""The handoff's view of the queue (`bot.handoff.TicketQueue`) over `bot.queue.HandoffQueue`."""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis

from bot.handoff import TicketRequest, Waiting
from bot.queue import Customer, HandoffQueue, Summary, TicketNotFound

BOT_SENDER = "bot"


class QueuePort:
    """Opens tickets with the bot's summary, reads their state and the customer's place."""

    def __init__(self, redis: Redis, namespace: str = "support") -> None:
        self.queue = HandoffQueue(redis, namespace=namespace)

    async def open_ticket(self, request: TicketRequest) -> str:
        ticket = await self.queue.enqueue(
            request.conversation_id,
            Customer(request.customer_id, request.customer_name, request.verified),
            reasons=request.reasons,
            priority=request.priority,
            topic=request.topic,
            summary=Summary.from_dict(request.summary.dict()),
        )
        return ticket.id

    async def ticket_state(self, ticket_id: str) -> str | None:
        try:
            return str((await self.queue.get(ticket_id)).state)
        except TicketNotFound:
            return None

    async def waiting(self, ticket_id: str) -> Waiting:
        position = await self.queue.position(ticket_id)
        return Waiting(position=position.position, eta_seconds=position.eta_seconds)

    async def agents_available(self, topic: str) -> int:
        agents = await self.queue.agents(online_only=True)
        return sum(1 for a in agents if topic in a.skills or "*" in a.skills)

    async def abandon(self, ticket_id: str, reason: str) -> None:
        await self.queue.abandon(ticket_id, reason)

    async def add_note(self, ticket_id: str, note: dict[str, Any]) -> None:
        text = "; ".join(f"{key.replace('_', ' ')}: {value}" for key, value in note.items())
        await self.queue.send_message(
            ticket_id, "system", BOT_SENDER, f"Customer left {text}", uuid.uuid4().hex
        )
