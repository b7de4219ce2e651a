"""The queue's streams: ticket message logs, agent inboxes, audit and event streams, and the
positions of waiting customers (:class:`QueueStreams`, mixed into
:class:`bot.queue.client.HandoffQueue`).

Readers resume after any stream id (``after``) and may block (``block_ms``); a message send is
one script, idempotent by client message id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from bot import keys as K
from bot.queue.errors import InvalidInput, TicketNotFound
from bot.queue.records import (
    SENDER_ROLES,
    AgentEvent,
    AuditEvent,
    Message,
    QueuePosition,
    Ticket,
    TicketState,
)
from bot.queue.scripts import ScriptRunner, pairs
from bot.queue.validate import check_id, check_message_text, check_stream_id, check_topic


class QueueStreams:
    """Messages, notifications and waiting customers' positions of a :class:`HandoffQueue`."""

    redis: Redis
    namespace: str
    max_message_bytes: int
    _scripts: ScriptRunner

    if TYPE_CHECKING:

        async def get_many(self, ticket_ids: Iterable[str]) -> list[Ticket]: ...

    # -- messages ---------------------------------------------------------------------------

    async def send_message(
        self,
        ticket_id: str,
        sender_role: str,
        sender_id: str,
        text: str,
        client_message_id: str,
    ) -> Message:
        """Append a message to the ticket's log. A retry with the same client message id (same
        role and sender) returns the first message with ``duplicate=True``. Agents must hold the
        ticket; customers may write while it is queued or assigned."""
        check_id("ticket_id", ticket_id)
        if sender_role not in SENDER_ROLES:
            raise InvalidInput(
                f"sender_role must be one of {', '.join(SENDER_ROLES)}, not {sender_role!r}"
            )
        check_id("sender_id", sender_id)
        check_id("client_message_id", client_message_id)
        check_message_text(text, self.max_message_bytes)
        dup, entry_id, *rest = await self._scripts.run(
            "send", ticket_id, sender_role, sender_id, text, client_message_id
        )
        if dup:
            return Message.from_stream(ticket_id, entry_id, pairs(rest[0]), duplicate=True)
        return Message(
            id=entry_id,
            ticket_id=ticket_id,
            role=sender_role,
            sender_id=sender_id,
            text=text,
            client_message_id=client_message_id,
            timestamp=int(entry_id.split("-", 1)[0]) / 1000.0,
        )

    async def read_messages(
        self,
        ticket_id: str,
        after: str = "0-0",
        block_ms: int | None = None,
        count: int | None = None,
    ) -> list[Message]:
        """Messages after the stream id ``after`` (exclusive), oldest first. With ``block_ms``,
        waits up to that long for the first new one when there is none yet (0 = forever).
        Resume after a reconnect by passing the id of the last message seen."""
        check_id("ticket_id", ticket_id)
        check_stream_id(after)
        key = K.QUEUE_TICKET_MESSAGES.format(ns=self.namespace, ticket=ticket_id)
        start = "-" if after in ("0", "0-0") else f"({after}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(K.QUEUE_TICKET.format(ns=self.namespace, ticket=ticket_id))
            if after != "$":  # "$": only messages that arrive from now on
                pipe.xrange(key, start, "+", count=count)
            exists, *found = await pipe.execute()
        entries = found[0] if found else []
        if not exists:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        if not entries and block_ms is not None:
            got = await self.redis.xread({key: after}, count=count, block=block_ms)
            entries = got[0][1] if got else []
        return [Message.from_stream(ticket_id, eid, fields) for eid, fields in entries]

    async def read_many(
        self, offsets: dict[str, str], block_ms: int | None = None, count: int | None = None
    ) -> dict[str, list[Message]]:
        """Messages of several tickets at once: ``{ticket_id: after}`` -> ``{ticket_id: [...]}``
        (one XREAD; only tickets with new messages appear)."""
        if not offsets:
            return {}
        by_key = {
            K.QUEUE_TICKET_MESSAGES.format(
                ns=self.namespace, ticket=check_id("ticket_id", tid)
            ): tid
            for tid in offsets
        }
        streams = {key: check_stream_id(offsets[tid]) for key, tid in by_key.items()}
        got = await self.redis.xread(streams, count=count, block=block_ms)
        out: dict[str, list[Message]] = {}
        for key, entries in got or []:
            tid = by_key[key]
            out[tid] = [Message.from_stream(tid, eid, fields) for eid, fields in entries]
        return out

    # -- notifications ----------------------------------------------------------------------

    async def read_agent_events(
        self, agent_id: str, after: str = "$", block_ms: int | None = None, count: int | None = None
    ) -> list[AgentEvent]:
        """Entries of the agent's inbox after ``after`` (``"$"``: only new ones; pass the last id
        seen to resume). Blocks up to ``block_ms`` when given."""
        check_id("agent_id", agent_id)
        check_stream_id(after)
        got = await self.redis.xread(
            {K.QUEUE_AGENT_INBOX.format(ns=self.namespace, agent=agent_id): after},
            count=count,
            block=block_ms,
        )
        out = []
        for _, entries in got or []:
            for eid, fields in entries:
                fields = dict(fields)
                kind = fields.pop("type", "")
                tid = fields.pop("ticket", "") or None
                out.append(AgentEvent(eid, kind, tid, fields))
        return out

    async def read_ticket_events(
        self, ticket_id: str, after: str = "0-0", block_ms: int | None = None
    ) -> list[AuditEvent]:
        """State changes of one ticket after ``after`` (e.g. for the customer's page: ``assigned``,
        ``resolved``, ``returned_to_bot`` ...), optionally blocking."""
        check_id("ticket_id", ticket_id)
        check_stream_id(after)
        got = await self.redis.xread(
            {K.QUEUE_TICKET_AUDIT.format(ns=self.namespace, ticket=ticket_id): after},
            block=block_ms,
        )
        return [AuditEvent.from_stream(eid, f) for _, entries in got or [] for eid, f in entries]

    async def read_events(
        self, after: str = "$", block_ms: int | None = None, count: int | None = None
    ) -> list[AuditEvent]:
        """The queue-wide event stream (every ticket and agent change) after ``after``."""
        check_stream_id(after)
        got = await self.redis.xread(
            {K.QUEUE_EVENTS.format(ns=self.namespace): after}, count=count, block=block_ms
        )
        return [AuditEvent.from_stream(eid, f) for _, entries in got or [] for eid, f in entries]

    # -- waiting customers ------------------------------------------------------------------

    async def position(self, ticket_id: str) -> QueuePosition:
        """Place in the topic's queue (1 = next) and ETA in seconds; ``(0, 0.0)`` once assigned,
        ``(None, None)`` when closed; ETA None when no agent for the topic is online."""
        pos, eta = await self._scripts.run("position", check_id("ticket_id", ticket_id))
        return _position(int(pos), int(eta))

    async def positions(self, topic: str | None = None) -> dict[str, QueuePosition]:
        """Position and ETA of every waiting ticket (of one topic, or all), in one round trip."""
        flat = await self._scripts.run("positions", check_topic(topic) if topic else "")
        return {
            flat[i]: _position(int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)
        }

    async def watch_positions(
        self, *, block_ms: int = 5000, after: str = "$"
    ) -> AsyncIterator[dict[str, QueuePosition]]:
        """Push updates for waiting customers: yields ``{ticket_id: QueuePosition}`` for every
        ticket whose position or ETA changed (including tickets that left the queue:
        ``(0, 0.0)`` assigned, ``(None, None)`` closed). The first yield is the full snapshot.
        Follows the event stream; bursts of events cost one :meth:`positions` call."""
        check_stream_id(after)
        cursor = after
        if cursor == "$":  # pin the cursor before the snapshot so no change slips between
            latest = await self.redis.xrevrange(
                K.QUEUE_EVENTS.format(ns=self.namespace), "+", "-", count=1
            )
            cursor = latest[0][0] if latest else "0-0"
        last: dict[str, QueuePosition] = await self.positions()
        yield dict(last)
        while True:
            got = await self.redis.xread(
                {K.QUEUE_EVENTS.format(ns=self.namespace): cursor}, count=1000, block=block_ms
            )
            if not got:
                continue
            cursor = got[0][1][-1][0]
            current = await self.positions()
            changes = {tid: pos for tid, pos in current.items() if last.get(tid) != pos}
            gone = [tid for tid in last if tid not in current]
            if gone:
                for ticket in await self.get_many(gone):
                    changes[ticket.id] = (
                        QueuePosition(0, 0.0)
                        if ticket.state == TicketState.ASSIGNED
                        else QueuePosition(None, None)
                    )
            last = current
            if changes:
                yield changes


def _position(pos: int, eta_ms: int) -> QueuePosition:
    if pos < 0:
        return QueuePosition(None, None)
    if pos == 0:
        return QueuePosition(0, 0.0)
    return QueuePosition(pos, None if eta_ms < 0 else eta_ms / 1000.0)
