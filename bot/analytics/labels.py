"""Escalation labels: an agent's one-click verdict on each ticket it handled.

Labels (:data:`bot.analytics.events.LABELS`): ``correct`` escalation, ``bot_should_have_solved``
(unnecessary), ``too_late`` (the bot should have handed over sooner), ``new_topic`` (a need the
bot does not know). Each click is appended to the Redis stream ``<ns>:analytics:labels`` (Redis
runs with AOF, so a label survives a restart); the latest label of a ticket wins.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bot import keys
from bot.analytics.events import LABELS, EscalationLabel
from bot.config import get_settings
from bot.retention import min_stream_id


class LabelError(ValueError):
    """The label is not one of the known ones, or the ticket is missing."""


def stream_key(namespace: str) -> str:
    return keys.ANALYTICS_LABELS.format(ns=namespace)


async def record_label(
    redis: Redis,
    namespace: str,
    *,
    ticket_id: str,
    conversation_id: str,
    label: str,
    agent_id: str | None,
    at: float | None = None,
) -> EscalationLabel:
    """Store one label click and return it."""
    if label not in LABELS:
        raise LabelError(f"unknown label {label!r}; one of {', '.join(LABELS)}")
    if not ticket_id or not conversation_id:
        raise LabelError("a label needs a ticket id and its conversation id")
    event = EscalationLabel(at or time.time(), conversation_id, ticket_id, label, agent_id)
    await redis.xadd(
        stream_key(namespace),
        {
            "ticket": ticket_id,
            "conversation": conversation_id,
            "label": label,
            "agent": agent_id or "",
            "at": f"{event.at:.3f}",
        },
        minid=min_stream_id(get_settings().history_retention_seconds),
        approximate=True,
    )
    return event


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_labels(redis: Redis, namespace: str) -> list[EscalationLabel]:
    """Every label click, oldest first."""
    entries = await redis.xrange(stream_key(namespace))
    labels = []
    for _, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        labels.append(
            EscalationLabel(
                float(fields["at"]),
                fields["conversation"],
                fields["ticket"],
                fields["label"],
                fields.get("agent") or None,
            )
        )
    return labels


async def latest_labels(redis: Redis, namespace: str) -> dict[str, str]:
    """Ticket id -> its current label."""
    return {label.ticket_id: label.label for label in await read_labels(redis, namespace)}


RECENT_CLOSED = 200


async def pending_for(redis: Redis, namespace: str, agent_id: str) -> list[dict]:
    """The agent's recently closed tickets (of the last :data:`RECENT_CLOSED` closed in the
    queue) that it handled and nobody has labelled yet, newest first. Reads only the queue's
    closed set and the label stream, so the console can poll it cheaply."""
    from bot.queue import open_queue

    queue = open_queue(redis, namespace=namespace)
    ids = await redis.zrevrange(keys.QUEUE_CLOSED.format(ns=namespace), 0, RECENT_CLOSED - 1)
    labelled = await latest_labels(redis, namespace)
    tickets = await queue.get_many([i for i in ids if i not in labelled])
    return [
        {
            "ticket_id": t.id,
            "conversation_id": t.conversation_id,
            "topic": t.topic,
            "reason_codes": list(t.reasons),
            "state": t.state.value,
            "closed_at": t.closed_at,
        }
        for t in tickets
        if t.assigned_at is not None and agent_id in (t.agent_id, t.last_agent_id)
    ]
