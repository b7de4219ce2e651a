"""The queue's records: the ticket and its parts, messages, events, agents, positions, sweeps.

A :class:`Ticket` is what the queue keeps for one conversation handed to a person: who the
customer is, why the bot handed over (reason codes), how urgent it is (priority 0-9, 9 highest),
which skill it needs (topic), the bot's summary for the agent (intents with confidences, sentiment
per customer message, the transcript up to the handoff), its state and a timestamp for every state
change.

In Redis a ticket is one hash (:data:`bot.keys.QUEUE_TICKET`): the fields of
:data:`TICKET_FIELDS` as strings (times as epoch milliseconds; customer, reasons and summary as
JSON, so the Lua scripts can change the state without decoding JSON), plus ``ts_<event>`` for
every lifecycle event. :data:`TICKET_FIELDS` is the one list of those fields: the scripts write a
new ticket's hash from it (``new_ticket`` in ``lua/prelude.lua``) and :meth:`Ticket.from_redis`
reads the hash with it. :meth:`Ticket.to_dict` / :meth:`Ticket.from_dict` give the JSON form for
the gateway and the CLI.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, NamedTuple


class TicketState(str, Enum):
    """Where a ticket is in its lifecycle. ``queued`` and ``assigned`` are open; the rest closed."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    RETURNED_TO_BOT = "returned_to_bot"
    ABANDONED = "abandoned"

    @property
    def is_open(self) -> bool:
        return self in (TicketState.QUEUED, TicketState.ASSIGNED)

    def __str__(self) -> str:  # "queued", not "TicketState.QUEUED"
        return self.value


_STATES = {state.value: state for state in TicketState}

SENDER_ROLES = ("customer", "agent", "bot", "system")


@dataclass(frozen=True)
class Customer:
    """The customer behind a conversation, as the agent should see them."""

    id: str
    display_name: str = ""
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "display_name": self.display_name, "verified": self.verified}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Customer:
        return cls(
            id=str(data["id"]),
            display_name=str(data.get("display_name") or ""),
            verified=bool(data.get("verified", False)),
        )


@dataclass(frozen=True)
class IntentScore:
    """One intent the NLU considered, with its confidence (0-1)."""

    name: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentScore:
        return cls(name=str(data["name"]), confidence=float(data["confidence"]))


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the transcript up to the handoff.

    ``role`` is ``customer`` or ``bot``. Customer turns carry what the bot measured on them: the
    top intent and its confidence, and a sentiment score (-1 very negative .. 1 very positive).
    """

    role: str
    text: str
    timestamp: float | None = None
    intent: str | None = None
    confidence: float | None = None
    sentiment: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "text": self.text}
        for name in ("timestamp", "intent", "confidence", "sentiment"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptLine:
        def opt_float(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        return cls(
            role=str(data["role"]),
            text=str(data.get("text") or ""),
            timestamp=opt_float("timestamp"),
            intent=None if data.get("intent") is None else str(data["intent"]),
            confidence=opt_float("confidence"),
            sentiment=opt_float("sentiment"),
        )


@dataclass(frozen=True)
class Summary:
    """The bot's context for the agent: a one-line gist, intents, sentiment and the transcript."""

    text: str = ""
    intents: tuple[IntentScore, ...] = ()
    transcript: tuple[TranscriptLine, ...] = ()

    @property
    def sentiments(self) -> list[float]:
        """Sentiment of each customer message in the transcript, in order (unscored ones left out)."""
        return [
            t.sentiment for t in self.transcript if t.role == "customer" and t.sentiment is not None
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "intents": [i.to_dict() for i in self.intents],
            "transcript": [t.to_dict() for t in self.transcript],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Summary:
        data = data or {}
        return cls(
            text=str(data.get("text") or ""),
            intents=tuple(IntentScore.from_dict(i) for i in data.get("intents") or ()),
            transcript=tuple(TranscriptLine.from_dict(t) for t in data.get("transcript") or ()),
        )


@dataclass(frozen=True)
class Message:
    """One entry of a ticket's message log (a Redis stream entry; ``id`` is the stream id).

    ``duplicate`` is true when :meth:`bot.queue.HandoffQueue.send_message` recognised the client
    message id of an earlier send and returned that earlier message instead of adding a new one.
    """

    id: str
    ticket_id: str
    role: str
    sender_id: str
    text: str
    client_message_id: str
    timestamp: float
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ticket_id": self.ticket_id,
            "role": self.role,
            "sender_id": self.sender_id,
            "text": self.text,
            "client_message_id": self.client_message_id,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_stream(
        cls, ticket_id: str, entry_id: str, fields: dict[str, str], duplicate: bool = False
    ) -> Message:
        return cls(
            id=entry_id,
            ticket_id=ticket_id,
            role=fields.get("role", ""),
            sender_id=fields.get("sender", ""),
            text=fields.get("text", ""),
            client_message_id=fields.get("cmid", ""),
            timestamp=int(fields.get("ts") or entry_id.split("-", 1)[0]) / 1000.0,
            duplicate=duplicate,
        )


@dataclass(frozen=True)
class AuditEvent:
    """One entry of a ticket's audit stream (or of the queue-wide event stream)."""

    id: str
    event: str
    timestamp: float
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def ticket_id(self) -> str | None:
        return self.fields.get("ticket") or None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "timestamp": self.timestamp, **self.fields}

    @classmethod
    def from_stream(cls, entry_id: str, fields: dict[str, str]) -> AuditEvent:
        fields = dict(fields)
        event = fields.pop("event", "")
        ts = fields.pop("ts", None)
        timestamp = int(ts if ts is not None else entry_id.split("-", 1)[0]) / 1000.0
        return cls(id=entry_id, event=event, timestamp=timestamp, fields=fields)


# -- the ticket hash --------------------------------------------------------------------------

# Hash fields holding times (epoch ms). Every state change sets ``ts_<event>``.
TS_PREFIX = "ts_"


# A ticket's customer, reasons and summary never change, and the queue returns the same ticket
# many times over its life: parse each stored JSON text once (the results are immutable).
@lru_cache(maxsize=4096)
def _customer_from_json(text: str) -> Customer:
    return Customer.from_dict(json.loads(text))


@lru_cache(maxsize=4096)
def _reasons_from_json(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text or "[]"))


@lru_cache(maxsize=4096)
def _summary_from_json(text: str | None) -> Summary:
    return Summary.from_dict(json.loads(text or "{}"))


def _required(value: str | None) -> str:
    if value is None:
        raise KeyError("a required ticket field is missing")
    return value


def _optional(value: str | None) -> str | None:
    return value or None


def _int(value: str | None) -> int:
    return int(_required(value))


def _count(value: str | None) -> int:
    return int(value or 0)


def _ms(value: str | None) -> float:
    return int(_required(value)) / 1000.0


def _optional_ms(value: str | None) -> float | None:
    return None if value in (None, "") else int(value) / 1000.0


def _flag(value: str | None) -> bool:
    return value == "1"


def _customer(value: str | None) -> Customer:
    return _customer_from_json(_required(value))


def _state(value: str | None) -> TicketState:
    return _STATES[_required(value)]


class TicketField(NamedTuple):
    """One field of the ticket hash: its name, the :class:`Ticket` attribute it fills (None:
    used only by the scripts) and how its string becomes that attribute's value."""

    name: str
    attr: str | None
    decode: Callable[[str | None], Any] | None


def _fields(
    *rows: tuple[str, str | None, Callable[[str | None], Any] | None],
) -> tuple[TicketField, ...]:
    return tuple(TicketField(*row) for row in rows)


TICKET_FIELDS: tuple[TicketField, ...] = _fields(
    ("id", "id", _required),
    ("conv", "conversation_id", _required),
    ("customer", "customer", _customer),  # JSON
    ("reasons", "reasons", _reasons_from_json),  # JSON list of reason codes
    ("priority", "priority", _int),
    ("topic", "topic", _required),
    ("summary", "summary", _summary_from_json),  # JSON
    ("state", "state", _state),
    ("created", "created_at", _ms),
    ("agent", "agent_id", _optional),  # while assigned
    ("last_agent", "last_agent_id", _optional),
    ("disposition", "disposition", _optional),
    ("closed_by", None, None),  # the agent, "customer" or "operator"
    ("prev", "previous_ticket_id", _optional),  # the conversation's previous ticket
    ("qseq", None, None),  # arrival order within the topic queues
    ("sla_deadline", "sla_deadline", _optional_ms),
    ("sla_breached", "sla_breached", _flag),  # "0" / "1"
    ("assignments", "assignments", _count),
    ("requeues", "requeues", _count),
    ("transfers", "transfers", _count),
)
_DECODED = tuple((f.name, f.attr, f.decode) for f in TICKET_FIELDS if f.attr and f.decode)


@dataclass(frozen=True)
class Ticket:
    """A conversation handed to a person. Times are epoch seconds (floats, ms precision).

    ``timestamps`` maps each lifecycle event (``created``, ``queued``, ``assigned``,
    ``first_response``, ``requeued``, ``transferred``, ``sla_breached``, ``resolved``,
    ``returned_to_bot``, ``abandoned``) to when it last happened; the full history, including
    repeats, is :meth:`bot.queue.HandoffQueue.audit`.
    """

    id: str
    conversation_id: str
    customer: Customer
    reasons: tuple[str, ...]
    priority: int
    topic: str
    summary: Summary
    state: TicketState
    created_at: float
    timestamps: dict[str, float] = field(default_factory=dict)
    agent_id: str | None = None
    last_agent_id: str | None = None
    disposition: str | None = None
    sla_deadline: float | None = None
    sla_breached: bool = False
    previous_ticket_id: str | None = None
    assignments: int = 0
    requeues: int = 0
    transfers: int = 0
    duplicate: bool = False  # set by enqueue when it returned the conversation's open ticket

    @property
    def is_open(self) -> bool:
        return self.state.is_open

    @property
    def assigned_at(self) -> float | None:
        return self.timestamps.get("assigned")

    @property
    def first_response_at(self) -> float | None:
        return self.timestamps.get("first_response")

    @property
    def closed_at(self) -> float | None:
        if self.state.is_open:
            return None
        return self.timestamps.get(self.state.value)

    # -- Redis form -------------------------------------------------------------------------

    @classmethod
    def from_redis(cls, data: dict[str, str], duplicate: bool = False) -> Ticket:
        """Build a ticket from its hash (as returned by HGETALL with decoded responses), field by
        field as :data:`TICKET_FIELDS` says.

        On the queue's hot path, so it fills the (frozen) instance directly instead of going
        through the generated ``__init__``; the values are the same.
        """
        get = data.get
        ticket = object.__new__(cls)
        ticket.__dict__.update(
            {attr: decode(get(name)) for name, attr, decode in _DECODED},
            timestamps={
                key[3:]: int(value) / 1000.0
                for key, value in data.items()
                if key[:3] == TS_PREFIX and value
            },
            duplicate=duplicate,
        )
        return ticket

    # -- JSON form --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the gateway sends to the agent console and the CLI prints)."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "customer": self.customer.to_dict(),
            "reasons": list(self.reasons),
            "priority": self.priority,
            "topic": self.topic,
            "summary": self.summary.to_dict(),
            "state": self.state.value,
            "created_at": self.created_at,
            "timestamps": dict(self.timestamps),
            "agent_id": self.agent_id,
            "last_agent_id": self.last_agent_id,
            "disposition": self.disposition,
            "sla_deadline": self.sla_deadline,
            "sla_breached": self.sla_breached,
            "previous_ticket_id": self.previous_ticket_id,
            "assignments": self.assignments,
            "requeues": self.requeues,
            "transfers": self.transfers,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ticket:
        return cls(
            id=str(data["id"]),
            conversation_id=str(data["conversation_id"]),
            customer=Customer.from_dict(data["customer"]),
            reasons=tuple(data.get("reasons") or ()),
            priority=int(data["priority"]),
            topic=str(data["topic"]),
            summary=Summary.from_dict(data.get("summary")),
            state=TicketState(data["state"]),
            created_at=float(data["created_at"]),
            timestamps={k: float(v) for k, v in (data.get("timestamps") or {}).items()},
            agent_id=data.get("agent_id"),
            last_agent_id=data.get("last_agent_id"),
            disposition=data.get("disposition"),
            sla_deadline=data.get("sla_deadline"),
            sla_breached=bool(data.get("sla_breached", False)),
            previous_ticket_id=data.get("previous_ticket_id"),
            assignments=int(data.get("assignments") or 0),
            requeues=int(data.get("requeues") or 0),
            transfers=int(data.get("transfers") or 0),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Ticket:
        return cls.from_dict(json.loads(text))


_ticket_attrs = {f.attr for f in TICKET_FIELDS if f.attr} | {"timestamps", "duplicate"}
if _ticket_attrs != {f.name for f in dataclasses.fields(Ticket)}:  # one layout, checked at import
    raise RuntimeError("TICKET_FIELDS and the Ticket dataclass disagree")


# -- the queue's answers ----------------------------------------------------------------------


class QueuePosition(NamedTuple):
    """Place of a ticket in its topic's queue (1 = next) and the estimated wait in seconds.

    ``position`` is 0 once an agent has the ticket, None when it is closed. ``eta_seconds`` is
    None when it cannot be estimated (no agent for the topic is online) or the ticket is closed.
    """

    position: int | None
    eta_seconds: float | None


@dataclass(frozen=True)
class AgentInfo:
    """An agent as the queue sees it."""

    id: str
    skills: tuple[str, ...]
    capacity: int
    auto_assign: bool
    online: bool
    load: int
    tickets: tuple[str, ...] = ()
    lease_expires_at: float | None = None
    last_assigned_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "skills": list(self.skills),
            "capacity": self.capacity,
            "auto_assign": self.auto_assign,
            "online": self.online,
            "load": self.load,
            "tickets": list(self.tickets),
            "lease_expires_at": self.lease_expires_at,
            "last_assigned_at": self.last_assigned_at,
        }


@dataclass(frozen=True)
class AgentEvent:
    """One entry of an agent's inbox stream (``type``: assigned, unassigned, resolved ...)."""

    id: str
    type: str
    ticket_id: str | None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def timestamp(self) -> float:
        return int(self.id.split("-", 1)[0]) / 1000.0


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: agents taken offline, tickets requeued, tickets flagged for SLA."""

    lapsed_agents: tuple[str, ...] = ()
    requeued: tuple[str, ...] = ()
    sla_breached: tuple[str, ...] = ()
