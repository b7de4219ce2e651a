"""The escalation audit trail and the queue's ticket history, read from Redis, as events.

- Escalation decisions: the action server appends one entry per customer turn to the stream
  ``<ns>:escalation:decisions`` (fields ``conversation_id`` and ``entry``: the turn's signals, the
  policy's decision with its reason codes, and why). Each becomes a :class:`TurnDecision`.
- Tickets: every handoff ticket with its audit history (:mod:`bot.queue`) becomes
  :class:`TicketChange` events (queued, assigned, resolved, returned_to_bot, abandoned; a requeue
  or transfer re-enters ``queued``) and an :class:`AgentMessage` at the first agent response.

Redis runs with AOF, so these streams survive a restart like Rasa's event database does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from redis.asyncio import Redis

from bot import keys
from bot.analytics.events import AgentMessage, Event, TicketChange, TurnDecision

BATCH = 5000
QUEUED_AGAIN = {"created", "queued", "requeued", "transferred"}
CLOSING = {"resolved", "returned_to_bot", "abandoned"}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_stream(redis: Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of a stream, oldest first, in batches."""
    entries: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while True:
        batch = await redis.xrange(key, min=start, count=BATCH)
        for entry_id, fields in batch:
            entries.append((_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}))
        if len(batch) < BATCH:
            return entries
        start = "(" + _text(batch[-1][0])


def decision_event(fields: dict[str, str]) -> TurnDecision | None:
    """One audit entry as a :class:`TurnDecision` (None when it is not one)."""
    try:
        entry = json.loads(fields["entry"])
        decision = entry["decision"]
        return TurnDecision(
            at=float(entry["at"]),
            conversation_id=fields["conversation_id"],
            action=str(decision.get("action") or "none"),
            reason_codes=tuple(decision.get("reasons") or ()),
            signals=entry.get("signals") or {},
            turn=entry.get("turn"),
        )
    except (KeyError, TypeError, ValueError):
        return None


async def read_decisions(redis: Redis, namespace: str) -> list[TurnDecision]:
    """Every per-turn escalation decision recorded by the action server."""
    entries = await read_stream(redis, keys.ESCALATION_DECISIONS.format(ns=namespace))
    return [d for _, fields in entries if (d := decision_event(fields)) is not None]


def ticket_events(ticket: Any, history: Iterable[Any]) -> Iterator[Event]:
    """Events of one ticket (:class:`bot.queue.Ticket`) from its audit history
    (:class:`bot.queue.AuditEvent`, oldest first)."""
    common = {
        "conversation_id": ticket.conversation_id,
        "ticket_id": ticket.id,
    }
    details = {
        "reason_codes": tuple(ticket.reasons),
        "priority": ticket.priority,
        "topic": ticket.topic,
    }
    replied = False
    for item in history:
        name, at, fields = item.event, item.timestamp, item.fields
        if name in QUEUED_AGAIN:
            topic = fields.get("topic") or details["topic"]
            yield TicketChange(at, state="queued", **common, **{**details, "topic": topic})
        elif name == "assigned":
            agent = fields.get("agent") or ticket.agent_id or ticket.last_agent_id
            yield TicketChange(at, state="assigned", agent_id=agent, **common)
        elif name == "first_response" and not replied:
            replied = True
            yield AgentMessage(at, agent_id=fields.get("agent"), **common)
        elif name in CLOSING:
            yield TicketChange(at, state=name, disposition=ticket.disposition, **common)
    first = ticket.first_response_at
    if not replied and first is not None:
        yield AgentMessage(first, agent_id=ticket.last_agent_id, **common)
