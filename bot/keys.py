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

RedisType = Literal["string", "hash", "list", "set", "zset", "stream", "channel"]
# How a key's growth is bounded: "ttl" (every key expires), "capped" (a stream or list trimmed by
# length or age, or a collection whose members leave), "kept" (small and wanted for good: say why)
Bound = Literal["ttl", "capped", "kept"]


@dataclass(frozen=True)
class KeySpec:
    """One Redis key (or family of keys) of the product."""

    name: str  # registry name, "<area>.<what>", e.g. "queue.ticket"
    template: str  # e.g. "{ns}:q:t:{ticket}"
    owner: str  # the module that writes it
    type: RedisType
    retention: str  # how long it lives, e.g. "kept", "capped at ~1,000 entries"
    comment: str
    bound: Bound = "kept"  # how retention is enforced (checked by tests/security/test_retention)
    cap: int | None = None  # for a capped stream or list: the most entries it holds (about)
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

    def pattern(self, **known: str) -> str:
        """A SCAN ``MATCH`` glob for this spec's keys, with the ``known`` parts filled in."""
        return "".join(
            re.sub(r"([*?\[\]\\])", r"\\\1", lit)
            + ("" if name is None else known[name] if name in known else "*")
            for lit, name in self.pieces()
        )


REGISTRY: dict[str, KeySpec] = {}


def register(
    name: str,
    template: str,
    *,
    owner: str,
    type: RedisType,
    retention: str,
    comment: str,
    bound: Bound | None = None,
    cap: int | None = None,
) -> KeySpec:
    """Add a key to :data:`REGISTRY` (names and templates must be new) and return its spec.
    ``bound`` defaults from ``retention``: "kept..." is kept, anything else is capped."""
    if bound is None:
        bound = "kept" if retention.startswith("kept") else "capped"
    spec = KeySpec(name, template, owner, type, retention, comment, bound, cap)
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
# gateway's desk and analytics. A closed ticket's keys expire CLOSED_TICKET_RETENTION_SECONDS
# after the close (30 days by default; `closed_ttl_seconds` of the queue), and the close also
# trims older ids from the closed-tickets index.

_Q = "bot.queue"
_TICKET_TTL = "open: kept; closed: expires after CLOSED_TICKET_RETENTION_SECONDS (30 days)"

QUEUE_SEQ = register(
    "queue.seq", "{ns}:q:seq", owner=_Q, type="string",
    retention="kept: one counter; ids must never repeat",
    comment="ticket counter: ticket ids are T<seq>",
)  # fmt: skip
QUEUE_TICKET = register(
    "queue.ticket", "{ns}:q:t:{ticket}", owner=_Q, type="hash", retention=_TICKET_TTL,
    comment="the ticket: fields of bot.queue.records.TICKET_FIELDS plus ts_<event> (epoch ms)", bound="ttl",
)  # fmt: skip
QUEUE_TICKET_MESSAGES = register(
    "queue.ticket_messages", "{ns}:q:t:{ticket}:msgs", owner=_Q, type="stream",
    retention=_TICKET_TTL, comment="the ticket's message log: role sender text cmid", bound="ttl",
)  # fmt: skip
QUEUE_TICKET_CMIDS = register(
    "queue.ticket_cmids", "{ns}:q:t:{ticket}:cmid", owner=_Q, type="hash",
    retention=_TICKET_TTL,
    comment="<role>:<sender>:<client message id> -> message stream id (idempotent sends)", bound="ttl",
)  # fmt: skip
QUEUE_TICKET_AUDIT = register(
    "queue.ticket_audit", "{ns}:q:t:{ticket}:audit", owner=_Q, type="stream",
    retention=_TICKET_TTL, comment="the ticket's history: event plus details", bound="ttl",
)  # fmt: skip
QUEUE_CONVERSATION_OPEN = register(
    "queue.conversation_open", "{ns}:q:conv:{conversation}", owner=_Q, type="string",
    retention="deleted when the ticket closes", comment="the conversation's open ticket id",
)  # fmt: skip
QUEUE_CONVERSATION_LAST = register(
    "queue.conversation_last", "{ns}:q:conv_last:{conversation}", owner=_Q, type="string",
    retention="expires after CLOSED_TICKET_RETENTION_SECONDS, like the ticket it names",
    comment="the conversation's last closed ticket id (returning customers, previous_ticket_id)", bound="ttl",
)  # fmt: skip
QUEUE_TOPIC_QUEUE = register(
    "queue.topic_queue", "{ns}:q:q:{topic}", owner=_Q, type="zset",
    retention="a ticket leaves when assigned or closed",
    comment="waiting tickets of a topic, score (9-priority)*2^41 + (taken back ? 0 : 2^40) + seq",
)  # fmt: skip
QUEUE_TOPICS = register(
    "queue.topics", "{ns}:q:topics", owner=_Q, type="set",
    retention="kept: one member per topic of the domain (a short, fixed list)",
    comment="every topic a ticket was ever queued under",
)  # fmt: skip
QUEUE_OPEN = register(
    "queue.open", "{ns}:q:open", owner=_Q, type="zset", retention="a ticket leaves when closed",
    comment="open (queued or assigned) tickets by seq",
)  # fmt: skip
QUEUE_CLOSED = register(
    "queue.closed", "{ns}:q:closed", owner=_Q, type="zset",
    retention="ids older than CLOSED_TICKET_RETENTION_SECONDS are trimmed at each close",
    comment="closed tickets by close time (ms)",
)  # fmt: skip
QUEUE_SLA = register(
    "queue.sla", "{ns}:q:sla", owner=_Q, type="zset",
    retention="a ticket leaves on its first agent message, its SLA breach or its close",
    comment="tickets by first-response deadline (ms)",
)  # fmt: skip
QUEUE_HANDLE_TIMES = register(
    "queue.handle_times", "{ns}:q:handle:{topic}", owner=_Q, type="list",
    retention="capped at the last 50 entries", comment="handling times (ms) of a topic's tickets, for ETAs", cap=50,
)  # fmt: skip
QUEUE_AGENT = register(
    "queue.agent", "{ns}:q:a:{agent}", owner=_Q, type="hash",
    retention="kept: one small hash per agent account",
    comment="an agent: id skills capacity auto online last_assign ts_online ts_offline",
)  # fmt: skip
QUEUE_AGENT_TICKETS = register(
    "queue.agent_tickets", "{ns}:q:a:{agent}:tickets", owner=_Q, type="set",
    retention="a ticket leaves when it leaves the agent", comment="the agent's open tickets (its load)",
)  # fmt: skip
QUEUE_AGENT_INBOX = register(
    "queue.agent_inbox", "{ns}:q:a:{agent}:inbox", owner=_Q, type="stream",
    retention="capped at ~1,000 entries",
    comment="notifications for the agent: type ticket plus details (assigned, unassigned, ...)", cap=1000,
)  # fmt: skip
QUEUE_AGENTS = register(
    "queue.agents", "{ns}:q:agents", owner=_Q, type="set",
    retention="kept: the agent index (one member per agent)",
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
    retention="capped at ~100,000 entries (events_maxlen)",
    comment="queue-wide events: every ticket and agent change (event ticket plus details)", cap=100_000,
)  # fmt: skip


# -- the web gateway (bot.web) -------------------------------------------------------------------
# A conversation's keys live CONVERSATION_RETENTION_SECONDS (30 days) after its last activity.

_CONV_TTL = "expires CONVERSATION_RETENTION_SECONDS (30 days) after the conversation's last event"

WEB_CONVERSATION = register(
    "web.conversation", "{ns}:web:conv:{conversation}", owner="bot.web.conversations",
    type="hash", retention=_CONV_TTL, bound="ttl",
    comment="a customer conversation: token (SHA-256), created_at, mode, origin",
)  # fmt: skip
WEB_CONVERSATION_EVENTS = register(
    "web.conversation_events", "{ns}:web:conv:{conversation}:events", owner="bot.web.events",
    type="stream", retention=f"capped at ~2,000 entries; {_CONV_TTL}", bound="ttl", cap=2000,
    comment="everything the customer sees, in order (field e: the event's JSON)",
)  # fmt: skip
WEB_CONVERSATION_CLIENT_ID = register(
    "web.conversation_client_id", "{ns}:web:conv:{conversation}:cid:{client_id}",
    owner="bot.web.events", type="string", retention="expires after 24 hours", bound="ttl",
    comment="a message's client id -> its event id (a retried send is appended once)",
)  # fmt: skip
WEB_CONVERSATION_TURN = register(
    "web.conversation_turn", "{ns}:web:conv:{conversation}:turn:{client_id}",
    owner="bot.web.turns", type="string", retention="expires 24 hours after the turn started or ended",
    bound="ttl", comment="a customer turn's reservation and outcome (pending, done, unknown)",
)  # fmt: skip
WEB_CONVERSATION_OFFERS = register(
    "web.conversation_offers", "{ns}:web:conv:{conversation}:offers", owner="bot.web.offers",
    type="hash", retention="expires after OFFERED_BUTTONS_TTL_SECONDS (24 hours)", bound="ttl",
    comment="the buttons the bot offered last: payload -> title",
)  # fmt: skip
WEB_CONVERSATION_CARD_TAIL = register(
    "web.conversation_card_tail", "{ns}:web:conv:{conversation}:cardtail:{side}",
    owner="bot.web.card_tail", type="string",
    retention="expires after CARD_TAIL_TTL_SECONDS (10 minutes)", bound="ttl",
    comment="the trailing digits of a side's last message (card numbers split over messages)",
)  # fmt: skip
WEB_ACCOUNT = register(
    "web.account", "{ns}:web:agent:{login}", owner="bot.web.auth", type="hash",
    retention="kept: an agent account (disabled, never deleted, so its history keeps a name)",
    comment="an agent account: agent JSON, password hash, disabled, generation",
)  # fmt: skip
WEB_ACCOUNTS = register(
    "web.accounts", "{ns}:web:agents", owner="bot.web.auth", type="set",
    retention="kept: the account index (one member per account)", comment="every account's login",
)  # fmt: skip
WEB_LEADS = register(
    "web.leads", "{ns}:web:leads", owner="bot.web.auth", type="set",
    retention="kept: a member per active lead", comment="the enabled leads' logins",
)  # fmt: skip
WEB_ACCOUNTS_INDEXED = register(
    "web.accounts_indexed", "{ns}:web:agents-indexed", owner="bot.web.auth", type="string",
    retention="kept: one marker", comment="set once accounts stored before the index are indexed",
)  # fmt: skip
WEB_SESSION = register(
    "web.session", "{ns}:web:session:{token_hash}", owner="bot.web.auth", type="string",
    retention="expires: AGENT_SESSION_IDLE_SECONDS sliding, AGENT_SESSION_MAX_SECONDS at most",
    bound="ttl", comment="an agent session (JSON), keyed by the token's SHA-256",
)  # fmt: skip
WEB_LOGIN_FAILURES = register(
    "web.login_failures", "{ns}:web:login-failures:{login}", owner="bot.web.auth",
    type="string", retention="expires after the failed-login window", bound="ttl",
    comment="failed logins of an account in the current window",
)  # fmt: skip
WEB_AGENT_NAMES = register(
    "web.agent_names", "{ns}:web:agent-names", owner="bot.web.queue_desk", type="hash",
    retention="kept: one field per agent", comment="agent login -> display name shown to customers",
)  # fmt: skip
WEB_TYPING = register(
    "web.typing", "{ns}:web:typing", owner="bot.web.typing_relay", type="channel",
    retention="nothing stored (Pub/Sub)", bound="ttl",
    comment="typing signals relayed between gateways",
)  # fmt: skip
WEB_CONVERSATION_NOTICES = register(
    "web.conversation_notices", "{ns}:web:conv-notices", owner="bot.web.events", type="channel",
    retention="nothing stored (Pub/Sub)", bound="ttl",
    comment="'<conversation id> <entry id>' per append to an events stream (bot.web.fanout reads it)",
)  # fmt: skip
LIMIT_RATE = register(
    "limit.rate", "{ns}:limit:{name}:{subject}", owner="bot.web.limits", type="string",
    retention="expires when the subject is idle for the limit's period", bound="ttl",
    comment="a GCRA rate limit's theoretical arrival time (name: the limit; subject: IP, id)",
)  # fmt: skip
LIMIT_SOCKETS = register(
    "limit.sockets", "{ns}:limit:sockets:{scope}:{subject}", owner="bot.web.limits", type="zset",
    retention="expires when no socket renews it", bound="ttl",
    comment="open WebSockets of a conversation or IP, scored by expiry (ms)",
)  # fmt: skip


# -- handoff state (bot.handoff) ------------------------------------------------------------------

HANDOFF_STATE = register(
    "handoff.state", "{ns}:handoff:{conversation}", owner="bot.handoff.modes", type="hash",
    retention="expires CONVERSATION_RETENTION_SECONDS after its last change", bound="ttl",
    comment="a conversation's mode (bot, waiting, agent), ticket, reasons, contact",
)  # fmt: skip
HANDOFF_CHANGES = register(
    "handoff.changes", "{ns}:handoff:changes", owner="bot.handoff.modes", type="stream",
    retention="capped at ~100,000 entries", cap=100_000,
    comment="every change of a conversation's mode: conversation_id mode ticket_id at",
)  # fmt: skip


# -- the action server (actions) ------------------------------------------------------------------
# Entries older than HISTORY_RETENTION_SECONDS (400 days) are trimmed from the shared streams;
# analytics reads its long history from Rasa's SQL event store (see docs/security.md).

CSAT = register(
    "csat", "{ns}:csat", owner="actions.csat", type="stream",
    retention="entries older than HISTORY_RETENTION_SECONDS (400 days) are trimmed",
    comment="satisfaction ratings and comments: conversation_id score comment path reasons",
)  # fmt: skip
ESCALATION_AUDIT = register(
    "escalation.audit", "{ns}:audit:{conversation}", owner="actions.escalation", type="stream",
    retention="capped at ~2,000 entries; expires AUDIT_RETENTION_SECONDS after its last turn",
    bound="ttl", cap=2000, comment="a conversation's escalation trail: one entry per turn",
)  # fmt: skip
ESCALATION_DECISIONS = register(
    "escalation.decisions", "{ns}:escalation:decisions", owner="actions.escalation",
    type="stream", cap=200_000,
    retention="capped at ~200,000 entries; entries older than HISTORY_RETENTION_SECONDS trimmed",
    comment="every turn's escalation decision (conversation_id, entry JSON), read by analytics",
)  # fmt: skip


# -- analytics (bot.analytics) -------------------------------------------------------------------

ANALYTICS_LABELS = register(
    "analytics.labels", "{ns}:analytics:labels", owner="bot.analytics.labels", type="stream",
    retention="entries older than HISTORY_RETENTION_SECONDS (400 days) are trimmed",
    comment="agents' escalation labels: ticket_id conversation_id label agent_id at",
)  # fmt: skip


# -- Rasa's conversation state (bot.runtime.tracker_store, bot.runtime.lock_store) --------------
# Written by the Rasa server through the project's tracker and lock stores (endpoints.yml).

RASA_TRACKER = register(
    "rasa.tracker", "{ns}:rasa:tracker:{conversation}", owner="bot.runtime.tracker_store",
    type="string", retention="TRACKER_RETENTION_SECONDS (30 days) after the conversation's last turn",
    comment="the conversation's Rasa tracker (events, slots) as JSON", bound="ttl",
)  # fmt: skip
RASA_EVENTS = register(
    "rasa.events", "{ns}:rasa:events", owner="bot.analytics.rasa_broker", type="stream",
    retention="until the event sink has stored and acknowledged them (XTRIM MINID below the "
    "oldest unacknowledged entry)",
    comment="every Rasa event on its way to the SQL event store (bot.analytics.event_sink)",
)  # fmt: skip
RASA_LOCK = register(
    "rasa.lock", "{ns}:rasa:lock:{conversation}", owner="bot.runtime.lock_store", type="hash",
    retention="the longest ticket lifetime after the last ticket (Rasa's 60 s by default)",
    comment="the conversation's ticket lock: seq (last ticket number), t:<number> -> expiry, o:<number> -> the ticket's owner",
    bound="ttl",
)  # fmt: skip
RASA_LOCK_OWNER = register(
    "rasa.lock_owner", "{ns}:rasa:lock-owner:{owner}", owner="bot.runtime.lock_store", type="string",
    retention="expires LOCK_OWNER_TTL_SECONDS after the Rasa process last renewed it",
    comment="a live Rasa process's heartbeat; its tickets are dropped once it has expired (a killed Rasa)",
    bound="ttl",
)  # fmt: skip


def markdown_table() -> str:
    """The registry as a Markdown table (the "Retention" table of docs/security.md)."""
    rows = [
        "| Key | Type | Owner | Retention | What |",
        "|---|---|---|---|---|",
    ]
    for spec in specs():
        cells = (f"`{spec.template}`", spec.type, f"`{spec.owner}`", spec.retention, spec.comment)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bot.keys", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the registry as a table")
    parser.parse_args()
    print(markdown_table(), end="")
