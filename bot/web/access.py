"""Agents' access to conversations: an agent reads and follows a ticket's conversation only while
it holds the ticket now; a support lead may read any.

Holding is the queue's word: the ticket is ``assigned`` and its ``agent`` is this agent. A
resolve, hand-back, transfer or lapsed lease ends it, and with it the agent's access: the ticket
and its transcript answer 403, and a console's WebSocket stops relaying the conversation (it is
told with a ``{"type": "revoked", ...}`` frame). The checks ask the desk (the queue in Redis)
each time, so they hold across gateways.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from bot.web.desk import DeskError
from bot.web.inputs import valid_id

if TYPE_CHECKING:
    from bot.web.auth import Agent
    from bot.web.desk import Desk

LEAD = "lead"


def is_lead(agent: Agent) -> bool:
    return agent.role == LEAD


def holds(agent: Agent, ticket: dict[str, Any]) -> bool:
    """Whether the agent holds this ticket (a ticket as the desk returns it) now."""
    return ticket.get("state") == "assigned" and ticket.get("agent_id") == agent.login


def may_read(agent: Agent, ticket: dict[str, Any]) -> bool:
    """Whether the agent may read the ticket, its transcript and its conversation."""
    return is_lead(agent) or holds(agent, ticket)


async def held_conversations(desk: Desk, agent: Agent) -> dict[str, str]:
    """``{conversation id: ticket id}`` of every ticket the agent holds now."""
    return held_in(await desk.agent_tickets(agent), agent)


def held_in(tickets: list[dict[str, Any]], agent: Agent) -> dict[str, str]:
    """``{conversation id: ticket id}`` of the tickets (queue rows) the agent holds."""
    return {t["conversation_id"]: t["id"] for t in tickets if holds(agent, t)}


class Watch:
    """The conversations one agent's socket follows: ``offsets`` (conversation id -> last event
    id sent, the dict the socket's readers use) and the ticket each was allowed through."""

    def __init__(self, agent: Agent, limit: int) -> None:
        self.agent = agent
        self.limit = limit
        self.offsets: dict[str, str] = {}
        self.tickets: dict[str, str] = {}

    def set(self, wanted: dict[str, str], held: dict[str, str]) -> None:
        """Follow the conversations asked for that the agent may see (held ones; a lead: any
        valid id), each from its offset."""
        self.offsets.clear()
        self.tickets.clear()
        for conversation_id, offset in list(wanted.items())[: self.limit]:
            if conversation_id in held:
                self.tickets[conversation_id] = held[conversation_id]
            elif not (is_lead(self.agent) and valid_id(conversation_id)):
                continue
            self.offsets[conversation_id] = offset

    def revoke(self, held: dict[str, str]) -> list[tuple[str, str]]:
        """Stop following the conversations whose ticket the agent no longer holds; returns
        ``(conversation id, ticket id)`` of each. A lead keeps what it follows."""
        if is_lead(self.agent):
            return []
        gone = [
            (conversation_id, self.tickets.get(conversation_id, ""))
            for conversation_id in self.offsets
            if held.get(conversation_id) != self.tickets.get(conversation_id)
        ]
        for conversation_id, _ticket in gone:
            self.offsets.pop(conversation_id, None)
            self.tickets.pop(conversation_id, None)
        return gone


async def revoked_frame(desk: Desk, conversation_id: str, ticket_id: str) -> dict[str, Any]:
    """What the console is told when it stops getting a conversation: ``reason`` ``closed``
    (resolved, handed back, abandoned) or ``moved`` (transferred, requeued, lapsed lease)."""
    state = None
    if ticket_id:
        with contextlib.suppress(DeskError):
            state = (await desk.ticket(ticket_id)).get("state")
    return {
        "type": "revoked",
        "conversation_id": conversation_id,
        "ticket_id": ticket_id or None,
        "state": state,
        "reason": "moved" if state in ("queued", "assigned") else "closed",
    }
