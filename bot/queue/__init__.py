"""The handoff queue: tickets on Redis that no agent loses and no two agents take.

An async library on ``redis.asyncio`` in which every state change is one atomic Lua script and is
appended to the ticket's audit stream and the queue-wide event stream. The guide (lifecycle,
routing, guarantees, the API with its errors, the data model, the CLI and the benchmark) is
``docs/queue.md``; the modules are ``client`` (:class:`HandoffQueue`: tickets, agents, routing,
closing), ``streams`` (messages, inboxes, positions), ``sweeper``, ``scripts`` and ``lua/`` (the
scripts), ``records``, ``errors``, ``validate``, ``factory`` (:func:`open_queue`, reading the
settings) and ``cli`` (``python -m bot.queue.cli``); its Redis keys are in :mod:`bot.keys`.
"""

from bot.queue.client import HandoffQueue
from bot.queue.errors import (
    AgentAtCapacity,
    AgentLacksSkill,
    AgentNotFound,
    AgentOffline,
    InvalidInput,
    InvalidTransition,
    MessageTooLarge,
    NotAssignee,
    QueueError,
    TicketNotFound,
)
from bot.queue.factory import open_queue, open_queue_url
from bot.queue.records import (
    SENDER_ROLES,
    TICKET_FIELDS,
    AgentEvent,
    AgentInfo,
    AuditEvent,
    Customer,
    IntentScore,
    Message,
    QueuePosition,
    Summary,
    SweepResult,
    Ticket,
    TicketState,
    TranscriptLine,
)

__all__ = [
    "SENDER_ROLES",
    "TICKET_FIELDS",
    "AgentAtCapacity",
    "AgentEvent",
    "AgentInfo",
    "AgentLacksSkill",
    "AgentNotFound",
    "AgentOffline",
    "AuditEvent",
    "Customer",
    "HandoffQueue",
    "IntentScore",
    "InvalidInput",
    "InvalidTransition",
    "Message",
    "MessageTooLarge",
    "NotAssignee",
    "QueueError",
    "QueuePosition",
    "SweepResult",
    "Summary",
    "Ticket",
    "TicketNotFound",
    "TicketState",
    "TranscriptLine",
    "open_queue",
    "open_queue_url",
]
