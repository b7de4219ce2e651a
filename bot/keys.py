"""Every Redis key and stream the product uses, in one registry.

Each key is one :class:`KeySpec`: a template (``{ns}:q:t:{ticket}``), the module that owns it
(writes it; others may read it), its Redis type, how long it lives and a one-line comment. Code
never spells a key itself: it formats a spec (``QUEUE_TICKET.format(ns="support", ticket="T1")``)
and, where it has to take a key apart (an XREAD reply names its streams), parses it with the same
spec (:meth:`KeySpec.parse`). The queue's Lua scripts get their key functions generated from these
templates too (:mod:`bot.queue.scripts`), so a template is written exactly once.

``{ns}`` is the deployment's namespace (``SUPPORT_QUEUE_NAMESPACE``, ``support`` by default).

To add a key: define it below with :func:`register`, in the section of its owner, and use the
constant. :data:`REGISTRY` maps each name to its spec; names and templates are unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from string import Formatter
from typing import Literal

RedisType = Literal["string", "hash", "list", "set", "zset", "stream"]


@dataclass(frozen=True)
class KeySpec:
    """One Redis key (or family of keys) of the product."""

    name: str  # registry name, "<area>.<what>", e.g. "queue.ticket"
    template: str  # e.g. "{ns}:q:t:{ticket}"
    owner: str  # the module that writes it
    type: RedisType
    retention: str  # how long it lives, e.g. "kept", "capped at ~1,000 entries"
    comment: str
    parts: tuple[str, ...] = field(init=False)  # the placeholders, in order

    def __post_init__(self) -> None:
        names = tuple(n for _, n, _, _ in Formatter().parse(self.template) if n is not None)
        if not names or names[0] != "ns":
            raise ValueError(f"key template {self.template!r} must start with {{ns}}")
        if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
            raise ValueError(f"key template {self.template!r} has a bad or repeated placeholder")
        object.__setattr__(self, "parts", names)

    def format(self, **parts: str) -> str:
        """The key for these parts, e.g. ``format(ns="support", ticket="T1")``."""
        if set(parts) != set(self.parts):
            raise KeyError(f"{self.name} needs {', '.join(self.parts)}, got {', '.join(parts)}")
        return self.template.format(**parts)

    def pieces(self) -> list[tuple[str, str | None]]:
        """The template as ``(literal text, placeholder or None)`` pairs, in order (what the Lua
        key functions are generated from)."""
        return [(lit, name) for lit, name, _, _ in Formatter().parse(self.template)]

    def parse(self, key: str, **known: str) -> dict[str, str] | None:
        """The parts of ``key`` if it is one of this spec's keys (None otherwise). Parts given in
        ``known`` must match; the last placeholder may contain ``:``, the others may not."""
        pattern = "".join(
            re.escape(lit)
            + (
                ""
                if name is None
                else re.escape(known[name])
                if name in known
                else f"(?P<{name}>.+)"
                if name == self.parts[-1]
                else f"(?P<{name}>[^:]+)"
            )
            for lit, name in self.pieces()
        )
        match = re.fullmatch(pattern, key)
        if match is None:
            return None
        return {**known, **match.groupdict()}


REGISTRY: dict[str, KeySpec] = {}


def register(
    name: str, template: str, *, owner: str, type: RedisType, retention: str, comment: str
) -> KeySpec:
    """Add a key to :data:`REGISTRY` (names and templates must be new) and return its spec."""
    spec = KeySpec(name, template, owner, type, retention, comment)
    if name in REGISTRY:
        raise ValueError(f"key {name} is registered twice")
    if any(s.template == template for s in REGISTRY.values()):
        raise ValueError(f"key template {template} is registered twice")
    REGISTRY[name] = spec
    return spec


def specs(owner: str | None = None) -> list[KeySpec]:
    """The registered keys (of one owner), in registration order."""
    return [s for s in REGISTRY.values() if owner is None or s.owner == owner]


# -- the handoff queue (bot.queue) ---------------------------------------------------------------
# Written only by the queue's Lua scripts (bot/queue/lua); read by the queue client, the
# gateway's desk and analytics. Closed tickets' keys expire after `closed_ttl_seconds` when the
# queue is configured with it ("ticket TTL" below); otherwise they are kept.

_Q = "bot.queue"
_TICKET_TTL = "kept; expires closed_ttl_seconds after the ticket closes, if set"

QUEUE_SEQ = register(
    "queue.seq", "{ns}:q:seq", owner=_Q, type="string", retention="kept",
    comment="ticket counter: ticket ids are T<seq>",
)  # fmt: skip
QUEUE_TICKET = register(
    "queue.ticket", "{ns}:q:t:{ticket}", owner=_Q, type="hash", retention=_TICKET_TTL,
    comment="the ticket: fields of bot.queue.records.TICKET_FIELDS plus ts_<event> (epoch ms)",
)  # fmt: skip
QUEUE_TICKET_MESSAGES = register(
    "queue.ticket_messages", "{ns}:q:t:{ticket}:msgs", owner=_Q, type="stream",
    retention=_TICKET_TTL, comment="the ticket's message log: role sender text cmid",
)  # fmt: skip
QUEUE_TICKET_CMIDS = register(
    "queue.ticket_cmids", "{ns}:q:t:{ticket}:cmid", owner=_Q, type="hash",
    retention=_TICKET_TTL,
    comment="<role>:<sender>:<client message id> -> message stream id (idempotent sends)",
)  # fmt: skip
QUEUE_TICKET_AUDIT = register(
    "queue.ticket_audit", "{ns}:q:t:{ticket}:audit", owner=_Q, type="stream",
    retention=_TICKET_TTL, comment="the ticket's history: event plus details",
)  # fmt: skip
QUEUE_CONVERSATION_OPEN = register(
    "queue.conversation_open", "{ns}:q:conv:{conversation}", owner=_Q, type="string",
    retention="deleted when the ticket closes", comment="the conversation's open ticket id",
)  # fmt: skip
QUEUE_CONVERSATION_LAST = register(
    "queue.conversation_last", "{ns}:q:conv_last:{conversation}", owner=_Q, type="string",
    retention="kept (overwritten by the next close)",
    comment="the conversation's last closed ticket id (returning customers, previous_ticket_id)",
)  # fmt: skip
QUEUE_TOPIC_QUEUE = register(
    "queue.topic_queue", "{ns}:q:q:{topic}", owner=_Q, type="zset",
    retention="a ticket leaves when assigned or closed",
    comment="waiting tickets of a topic, score (9-priority)*2^41 + (taken back ? 0 : 2^40) + seq",
)  # fmt: skip
QUEUE_TOPICS = register(
    "queue.topics", "{ns}:q:topics", owner=_Q, type="set", retention="kept",
    comment="every topic a ticket was ever queued under",
)  # fmt: skip
QUEUE_OPEN = register(
    "queue.open", "{ns}:q:open", owner=_Q, type="zset", retention="a ticket leaves when closed",
    comment="open (queued or assigned) tickets by seq",
)  # fmt: skip
QUEUE_CLOSED = register(
    "queue.closed", "{ns}:q:closed", owner=_Q, type="zset", retention="kept (grows)",
    comment="closed tickets by close time (ms)",
)  # fmt: skip
QUEUE_SLA = register(
    "queue.sla", "{ns}:q:sla", owner=_Q, type="zset",
    retention="a ticket leaves on its first agent message, its SLA breach or its close",
    comment="tickets by first-response deadline (ms)",
)  # fmt: skip
QUEUE_HANDLE_TIMES = register(
    "queue.handle_times", "{ns}:q:handle:{topic}", owner=_Q, type="list",
    retention="last 50 entries", comment="handling times (ms) of a topic's tickets, for ETAs",
)  # fmt: skip
QUEUE_AGENT = register(
    "queue.agent", "{ns}:q:a:{agent}", owner=_Q, type="hash", retention="kept",
    comment="an agent: id skills capacity auto online last_assign ts_online ts_offline",
)  # fmt: skip
QUEUE_AGENT_TICKETS = register(
    "queue.agent_tickets", "{ns}:q:a:{agent}:tickets", owner=_Q, type="set",
    retention="a ticket leaves when it leaves the agent", comment="the agent's open tickets (its load)",
)  # fmt: skip
QUEUE_AGENT_INBOX = register(
    "queue.agent_inbox", "{ns}:q:a:{agent}:inbox", owner=_Q, type="stream",
    retention="capped at ~1,000 entries",
    comment="notifications for the agent: type ticket plus details (assigned, unassigned, ...)",
)  # fmt: skip
QUEUE_AGENTS = register(
    "queue.agents", "{ns}:q:agents", owner=_Q, type="set", retention="kept",
    comment="every agent that ever came online",
)  # fmt: skip
QUEUE_SKILL = register(
    "queue.skill", "{ns}:q:skill:{topic}", owner=_Q, type="set",
    retention="an agent leaves when it goes offline",
    comment="online agents taking a topic (topic '*': generalists)",
)  # fmt: skip
QUEUE_PRESENCE = register(
    "queue.presence", "{ns}:q:presence", owner=_Q, type="zset",
    retention="an agent leaves when it goes offline", comment="online agents by lease expiry (ms)",
)  # fmt: skip
QUEUE_FREE = register(
    "queue.free", "{ns}:q:free", owner=_Q, type="zset",
    retention="an agent leaves when full or offline",
    comment="online auto-assign agents with room, by load % * 2^43 + last assignment ms",
)  # fmt: skip
QUEUE_EVENTS = register(
    "queue.events", "{ns}:q:events", owner=_Q, type="stream",
    retention="capped at ~events_maxlen entries (100,000)",
    comment="queue-wide events: every ticket and agent change (event ticket plus details)",
)  # fmt: skip


# -- Rasa's conversation state (bot.runtime.tracker_store, bot.runtime.lock_store) --------------
# Written by the Rasa server through the project's tracker and lock stores (endpoints.yml).

RASA_TRACKER = register(
    "rasa.tracker", "{ns}:rasa:tracker:{conversation}", owner="bot.runtime.tracker_store",
    type="string", retention="TRACKER_RETENTION_SECONDS (30 days) after the conversation's last turn",
    comment="the conversation's Rasa tracker (events, slots) as JSON",
)  # fmt: skip
RASA_LOCK = register(
    "rasa.lock", "{ns}:rasa:lock:{conversation}", owner="bot.runtime.lock_store", type="hash",
    retention="the longest ticket lifetime after the last ticket (Rasa's 60 s by default)",
    comment="the conversation's ticket lock: seq (last ticket number) and t:<number> -> expiry",
)  # fmt: skip
