"""The errors the queue raises on purpose, and how a script's error reply becomes one.

A script refuses a call with an error reply ``<CODE> <message>`` (see ``lua/prelude.lua``'s
``fail``); :func:`from_reply` turns it into the :class:`QueueError` subclass of that code.
"""

from __future__ import annotations

from redis.exceptions import ResponseError


class QueueError(Exception):
    """Base class of every error the queue raises on purpose."""


class InvalidInput(QueueError, ValueError):
    """An argument is malformed (empty id, priority out of range, bad topic name ...)."""


class MessageTooLarge(InvalidInput):
    """A message is longer than :data:`bot.queue.validate.MAX_MESSAGE_CHARS` characters or the
    queue's ``max_message_bytes`` bytes."""


class TicketNotFound(QueueError, LookupError):
    """No ticket has this id."""


class AgentNotFound(QueueError, LookupError):
    """No agent has registered under this id."""


class AgentOffline(QueueError):
    """The agent is offline (never came online, went offline, or its lease lapsed)."""


class AgentAtCapacity(QueueError):
    """The agent already has as many open tickets as its capacity allows."""


class AgentLacksSkill(QueueError):
    """The agent does not take tickets of this topic."""


class InvalidTransition(QueueError):
    """The ticket is not in a state that allows this action (e.g. resolving a queued ticket)."""


class NotAssignee(QueueError):
    """The agent acting on the ticket is not the agent it is assigned to."""


ERROR_CODES: dict[str, type[QueueError]] = {
    "QNOTFOUND": TicketNotFound,
    "QNOAGENT": AgentNotFound,
    "QOFFLINE": AgentOffline,
    "QCAPACITY": AgentAtCapacity,
    "QSKILL": AgentLacksSkill,
    "QSTATE": InvalidTransition,
    "QNOTASSIGNEE": NotAssignee,
    "QINPUT": InvalidInput,
}


def from_reply(error: ResponseError) -> Exception:
    """The queue error a script's error reply stands for (``error`` itself if it is none)."""
    code, _, message = str(error).partition(" ")
    cls = ERROR_CODES.get(code)
    if cls is None:
        return error
    return cls(message.split(" script:", 1)[0].strip())
