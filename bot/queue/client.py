"""The handoff queue's client: :class:`HandoffQueue` (tickets, agents, routing, closing).

Every state change is one Lua script (:mod:`bot.queue.scripts`): one round trip, atomic. Message
logs, notifications and positions are in :mod:`bot.queue.streams`, the sweeper in
:mod:`bot.queue.sweeper`; both are mixed in here. The guide is ``docs/queue.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from bot import keys as K
from bot.queue.errors import AgentNotFound, InvalidInput, TicketNotFound
from bot.queue.records import (
    AgentInfo,
    AuditEvent,
    Customer,
    Summary,
    Ticket,
    TicketState,
)
from bot.queue.scripts import ScriptRunner, ScriptSettings, compile_scripts, ticket_from_reply
from bot.queue.streams import QueueStreams
from bot.queue.sweeper import QueueSweeper
from bot.queue.validate import (
    MAX_MESSAGE_BYTES,
    check_capacity,
    check_id,
    check_namespace,
    check_priority,
    check_reason,
    check_topic,
    record,
)


class HandoffQueue(QueueStreams, QueueSweeper):
    """Tickets, agents, routing and message logs under ``<namespace>:q:`` in one Redis (every
    key is in :mod:`bot.keys`). Production code builds it with
    :func:`bot.queue.factory.open_queue`, which reads the settings.

    ``lease_seconds``: how long an agent stays online without a heartbeat. ``sweep_interval``:
    default period of :meth:`run_sweeper` (a lapsed agent's tickets are back in the queue within
    lease + interval). ``sla_first_response_seconds``: a ticket with no agent message by then is
    flagged. ``default_handle_seconds``: handling time assumed for ETAs before any ticket of a
    topic was handled. ``closed_ttl_seconds``: if set, a closed ticket's keys expire after that.
    ``autobatch``: send the scripts that concurrent callers start in the same event-loop turn as
    one pipeline (one write, one connection, replies in order); each call is still its own atomic
    script and its own result or error. Turn it off to send every call on its own.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str = "support",
        lease_seconds: float = 15.0,
        sla_first_response_seconds: float = 120.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        default_handle_seconds: float = 240.0,
        closed_ttl_seconds: float | None = None,
        events_maxlen: int = 100_000,
        sweep_interval: float | None = None,
        autobatch: bool = True,
    ) -> None:
        kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", {})
        if not kwargs.get("decode_responses", False):
            raise ValueError("HandoffQueue needs a redis client created with decode_responses=True")
        if lease_seconds <= 0 or sla_first_response_seconds <= 0:
            raise ValueError("lease_seconds and sla_first_response_seconds must be positive")
        self.redis = redis
        self.namespace = check_namespace(namespace)
        self.lease_seconds = float(lease_seconds)
        self.sla_first_response_seconds = float(sla_first_response_seconds)
        self.max_message_bytes = int(max_message_bytes)
        self.default_handle_seconds = float(default_handle_seconds)
        self.closed_ttl_seconds = closed_ttl_seconds
        self.sweep_interval = (
            sweep_interval if sweep_interval is not None else min(0.5, self.lease_seconds / 4)
        )
        scripts = compile_scripts(
            ScriptSettings(
                namespace=namespace,
                events_maxlen=int(events_maxlen),
                closed_ttl_ms=int((closed_ttl_seconds or 0) * 1000),
                lease_ms=int(self.lease_seconds * 1000),
                default_handle_ms=int(self.default_handle_seconds * 1000),
            )
        )
        self._scripts = ScriptRunner(redis, scripts, autobatch=autobatch)

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 256, **kwargs: Any) -> HandoffQueue:
        """A queue on a new client for ``url``: decoded responses, and a pool of up to
        ``max_connections`` in which extra callers wait for a free connection (blocking readers
        each hold one while they wait)."""
        pool = BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=max_connections, timeout=30
        )
        return cls(Redis(connection_pool=pool), **kwargs)

    async def aclose(self) -> None:
        """Close the underlying client (only if you created the queue with :meth:`from_url`)."""
        await self.redis.close()
        await self.redis.connection_pool.disconnect()

    def key(self, *parts: str) -> str:
        """A registered key of this queue from its parts after ``<namespace>:q:``, e.g.
        ``key("t", "T1")`` -> ``support:q:t:T1``. Kept for callers that predate
        :mod:`bot.keys`; new code formats the spec (``QUEUE_TICKET.format(...)``)."""
        candidate = ":".join((self.namespace, "q", *parts))
        for spec in K.specs(owner="bot.queue"):
            if spec.parse(candidate, ns=self.namespace) is not None:
                return candidate
        raise KeyError(f"{candidate} is not a key of the queue (see bot.keys)")

    # -- tickets ----------------------------------------------------------------------------

    async def enqueue(
        self,
        conversation_id: str,
        customer: Customer | dict[str, Any],
        reasons: Iterable[str],
        priority: int,
        topic: str,
        summary: Summary | dict[str, Any] | None = None,
        *,
        prefer_agent: str | None = None,
    ) -> Ticket:
        """Open a ticket for a conversation, or return its open one (``ticket.duplicate``).

        The ticket is queued and, if a fitting auto-assign agent is free, assigned in the same
        step. A conversation whose last ticket is closed gets a new ticket; it goes to the last
        agent (or ``prefer_agent``) only if that agent is online with room.
        """
        check_id("conversation_id", conversation_id)
        customer = record(customer, Customer, "customer must have an id")
        check_id("customer id", customer.id)
        if isinstance(reasons, str):
            raise InvalidInput("reasons must be a list of reason codes, not a single string")
        reasons = list(reasons)
        if not all(isinstance(r, str) and r for r in reasons):
            raise InvalidInput(f"reasons must be non-empty strings, not {reasons!r}")
        check_priority(priority)
        check_topic(topic)
        summary = Summary() if summary is None else record(summary, Summary, "summary is malformed")
        if prefer_agent is not None:
            check_id("prefer_agent", prefer_agent)
        dup, flat = await self._scripts.run(
            "enqueue",
            conversation_id,
            json.dumps(customer.to_dict(), separators=(",", ":")),
            json.dumps(reasons, separators=(",", ":")),
            priority,
            topic,
            json.dumps(summary.to_dict(), separators=(",", ":")),
            int(self.sla_first_response_seconds * 1000),
            prefer_agent or "",
        )
        return ticket_from_reply(flat, duplicate=bool(dup))

    async def get(self, ticket_id: str) -> Ticket:
        """The ticket, or :class:`TicketNotFound`."""
        data = await self.redis.hgetall(
            K.QUEUE_TICKET.format(ns=self.namespace, ticket=check_id("ticket_id", ticket_id))
        )
        if not data:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        return Ticket.from_redis(data)

    async def get_many(self, ticket_ids: Iterable[str]) -> list[Ticket]:
        """The tickets that exist among ``ticket_ids``, in that order (one round trip)."""
        ids = list(ticket_ids)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(K.QUEUE_TICKET.format(ns=self.namespace, ticket=tid))
            rows = await pipe.execute()
        return [Ticket.from_redis(row) for row in rows if row]

    async def open_ticket_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's open (queued or assigned) ticket, if any."""
        return await self._ticket_at(K.QUEUE_CONVERSATION_OPEN, conversation_id)

    async def last_ticket_for(self, conversation_id: str) -> Ticket | None:
        """The conversation's most recent closed ticket, if any."""
        return await self._ticket_at(K.QUEUE_CONVERSATION_LAST, conversation_id)

    async def _ticket_at(self, pointer: K.KeySpec, conversation_id: str) -> Ticket | None:
        """The ticket a per-conversation pointer key names, if it still exists."""
        conversation = check_id("conversation_id", conversation_id)
        tid = await self.redis.get(pointer.format(ns=self.namespace, conversation=conversation))
        if tid is None:
            return None
        try:
            return await self.get(tid)
        except TicketNotFound:
            return None

    async def list_tickets(
        self, state: TicketState | str | None = None, *, limit: int = 1000
    ) -> list[Ticket]:
        """Tickets, newest first for closed ones, oldest first for open ones.

        ``state=None`` lists open tickets (queued and assigned); a closed state lists the
        ``limit`` most recently closed tickets in it.
        """
        wanted = TicketState(state) if state is not None else None
        if wanted is None or wanted.is_open:
            ids = await self.redis.zrange(K.QUEUE_OPEN.format(ns=self.namespace), 0, -1)
        else:
            ids = await self.redis.zrevrange(
                K.QUEUE_CLOSED.format(ns=self.namespace), 0, max(limit * 4, limit) - 1
            )
        tickets = await self.get_many(ids)
        if wanted is not None:
            tickets = [t for t in tickets if t.state == wanted]
        if wanted is None or wanted.is_open:  # queued first, in routing order; then assigned
            tickets.sort(
                key=lambda t: (
                    (t.state != TicketState.QUEUED, -t.priority, t.created_at)
                    if t.state == TicketState.QUEUED
                    else (True, 0, t.created_at)
                )
            )
        return tickets[:limit]

    async def queued(self, topic: str | None = None) -> list[str]:
        """Ids of waiting tickets in routing order (per topic; topics in name order)."""
        topics = [check_topic(topic)] if topic else sorted(await self.topics())
        out: list[str] = []
        for t in topics:
            out += await self.redis.zrange(
                K.QUEUE_TOPIC_QUEUE.format(ns=self.namespace, topic=t), 0, -1
            )
        return out

    async def topics(self) -> set[str]:
        """Every topic a ticket has been queued under."""
        return set(await self.redis.smembers(K.QUEUE_TOPICS.format(ns=self.namespace)))

    async def audit(self, ticket_id: str) -> list[AuditEvent]:
        """The ticket's history: every state change, oldest first."""
        check_id("ticket_id", ticket_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(K.QUEUE_TICKET.format(ns=self.namespace, ticket=ticket_id))
            pipe.xrange(K.QUEUE_TICKET_AUDIT.format(ns=self.namespace, ticket=ticket_id), "-", "+")
            exists, entries = await pipe.execute()
        if not exists:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        return [AuditEvent.from_stream(eid, fields) for eid, fields in entries]

    # -- agents -----------------------------------------------------------------------------

    async def agent_online(
        self,
        agent_id: str,
        skills: Iterable[str],
        capacity: int,
        *,
        auto_assign: bool = True,
    ) -> AgentInfo:
        """Register (or update) an agent as online, with a fresh lease.

        Skills are topics; ``"*"`` takes every topic. An auto-assign agent immediately gets the
        best waiting tickets it can take, up to its capacity (see its inbox). Calling it again
        updates skills/capacity and keeps the agent's tickets.
        """
        check_id("agent_id", agent_id)
        if isinstance(skills, str):
            raise InvalidInput("skills must be a list of topics, not a single string")
        skill_list = sorted({s if s == "*" else check_topic(s, "skill") for s in skills})
        if not skill_list:
            raise InvalidInput("an agent needs at least one skill (a topic, or '*' for all)")
        check_capacity(capacity)
        await self._scripts.run(
            "agent_online", agent_id, ",".join(skill_list), capacity, "1" if auto_assign else "0"
        )
        return await self.agent(agent_id)

    async def heartbeat(self, agent_id: str) -> float:
        """Renew the agent's lease; returns when it expires (epoch seconds).

        Raises :class:`AgentOffline` if the agent is offline or its lease already lapsed (then
        it has just been taken offline and its tickets requeued): call :meth:`agent_online`.
        """
        expires = await self._scripts.run("heartbeat", check_id("agent_id", agent_id))
        return int(expires) / 1000.0

    async def agent_offline(self, agent_id: str, reason: str = "signed_out") -> list[str]:
        """Take an agent offline; its open tickets go back to the front of their queues (and on
        to other free agents). Returns the requeued ticket ids. Idempotent."""
        return list(
            await self._scripts.run("agent_offline", check_id("agent_id", agent_id), reason)
        )

    async def agent(self, agent_id: str) -> AgentInfo:
        """One agent, or :class:`AgentNotFound`."""
        infos = await self._agents([check_id("agent_id", agent_id)])
        if not infos:
            raise AgentNotFound(f"agent {agent_id} is not registered")
        return infos[0]

    async def agents(self, *, online_only: bool = False) -> list[AgentInfo]:
        """Every registered agent (sorted by id)."""
        ids = sorted(await self.redis.smembers(K.QUEUE_AGENTS.format(ns=self.namespace)))
        infos = await self._agents(ids)
        return [a for a in infos if a.online] if online_only else infos

    async def _agents(self, ids: list[str]) -> list[AgentInfo]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for a in ids:
                pipe.hgetall(K.QUEUE_AGENT.format(ns=self.namespace, agent=a))
                pipe.smembers(K.QUEUE_AGENT_TICKETS.format(ns=self.namespace, agent=a))
                pipe.zscore(K.QUEUE_PRESENCE.format(ns=self.namespace), a)
            rows = await pipe.execute()
        now_s, now_us = rows[0]
        now = now_s + now_us / 1e6
        out = []
        for i, a in enumerate(ids):
            data, tickets, lease = rows[1 + 3 * i : 4 + 3 * i]
            if not data:
                continue
            lease_at = lease / 1000.0 if lease is not None else None
            last = int(data.get("last_assign") or 0)
            out.append(
                AgentInfo(
                    id=a,
                    skills=tuple(s for s in (data.get("skills") or "").split(",") if s),
                    capacity=int(data.get("capacity") or 0),
                    auto_assign=data.get("auto") == "1",
                    online=data.get("online") == "1" and lease_at is not None and lease_at >= now,
                    load=len(tickets),
                    tickets=tuple(sorted(tickets, key=_ticket_order)),
                    lease_expires_at=lease_at,
                    last_assigned_at=last / 1000.0 if last else None,
                )
            )
        return out

    # -- routing ----------------------------------------------------------------------------

    async def claim_next(self, agent_id: str) -> Ticket | None:
        """Assign the best waiting ticket the agent can take (highest priority, front of queue,
        oldest) to it; None when nothing fits. For pull agents, but any online agent may call it.
        """
        flat = await self._scripts.run("claim", check_id("agent_id", agent_id), "")
        return ticket_from_reply(flat) if flat else None

    async def claim(self, agent_id: str, ticket_id: str) -> Ticket:
        """Assign a given queued ticket to the agent (needs the skill and room)."""
        flat = await self._scripts.run(
            "claim", check_id("agent_id", agent_id), check_id("ticket_id", ticket_id)
        )
        return ticket_from_reply(flat)

    async def requeue(self, ticket_id: str, reason: str = "requeued") -> Ticket:
        """Take an assigned ticket from its agent and put it at the front of its queue; it goes to
        another free agent if there is one (not straight back to the same agent)."""
        flat = await self._scripts.run(
            "requeue", check_id("ticket_id", ticket_id), check_reason(reason)
        )
        return ticket_from_reply(flat)

    async def transfer(
        self,
        ticket_id: str,
        topic: str | None = None,
        agent_id: str | None = None,
        *,
        priority: int | None = None,
        holder: str | None = None,
    ) -> Ticket:
        """Move an open ticket to another topic (front of that queue) and/or straight to an online
        agent with room, and/or change its priority.

        ``holder``: transfer only while that agent holds the ticket (else :class:`NotAssignee`),
        checked in the same atomic step as the move, so a concurrent resolve, transfer or lapsed
        lease cannot slip in between (an agent's transfer; an operator's passes None)."""
        check_id("ticket_id", ticket_id)
        if topic is None and agent_id is None and priority is None:
            raise InvalidInput("transfer needs a topic, an agent_id or a priority")
        flat = await self._scripts.run(
            "transfer",
            ticket_id,
            check_topic(topic) if topic is not None else "",
            check_id("agent_id", agent_id) if agent_id is not None else "",
            str(check_priority(priority)) if priority is not None else "",
            check_id("holder", holder) if holder is not None else "",
        )
        return ticket_from_reply(flat)

    # -- closing ----------------------------------------------------------------------------

    async def _close(
        self,
        ticket_id: str,
        state: TicketState,
        agent_id: str,
        disposition: str,
        by: str,
        allowed: str,
    ) -> Ticket:
        flat = await self._scripts.run(
            "close", check_id("ticket_id", ticket_id), state.value, agent_id,
            check_reason(disposition, "disposition"), by, allowed,
        )  # fmt: skip
        return ticket_from_reply(flat)

    async def resolve(self, ticket_id: str, agent_id: str, disposition: str = "resolved") -> Ticket:
        """The assigned agent closes the ticket as resolved; the agent pulls its next ticket."""
        check_id("agent_id", agent_id)
        return await self._close(
            ticket_id, TicketState.RESOLVED, agent_id, disposition, agent_id, "assigned"
        )

    async def return_to_bot(
        self, ticket_id: str, agent_id: str, disposition: str = "returned to bot"
    ) -> Ticket:
        """The assigned agent hands the conversation back to the bot (closes the ticket)."""
        check_id("agent_id", agent_id)
        return await self._close(
            ticket_id, TicketState.RETURNED_TO_BOT, agent_id, disposition, agent_id, "assigned"
        )

    async def abandon(
        self, ticket_id: str, reason: str = "customer left", *, waiting_only: bool = False
    ) -> Ticket:
        """The customer left or cancelled: close a queued or assigned ticket as abandoned. With
        ``waiting_only`` only a queued one (a cancel that races an agent's claim loses it, in the
        same script: :class:`InvalidTransition`)."""
        allowed = "queued" if waiting_only else "queued,assigned"
        return await self._close(ticket_id, TicketState.ABANDONED, "", reason, "customer", allowed)

    async def close(self, ticket_id: str, disposition: str = "closed by operator") -> Ticket:
        """An operator closes an open ticket as resolved, whoever holds it."""
        return await self._close(
            ticket_id, TicketState.RESOLVED, "", disposition, "operator", "queued,assigned"
        )

    # -- stats ------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Counts for dashboards and the CLI: waiting per topic, open, agents online."""
        topics = sorted(await self.topics())
        async with self.redis.pipeline(transaction=False) as pipe:
            for t in topics:
                pipe.zcard(K.QUEUE_TOPIC_QUEUE.format(ns=self.namespace, topic=t))
            pipe.zcard(K.QUEUE_OPEN.format(ns=self.namespace))
            pipe.zcard(K.QUEUE_CLOSED.format(ns=self.namespace))
            pipe.zcount(K.QUEUE_PRESENCE.format(ns=self.namespace), "-inf", "+inf")
            rows = await pipe.execute()
        waiting = dict(zip(topics, rows[: len(topics)], strict=True))
        return {
            "waiting": {t: n for t, n in waiting.items() if n},
            "waiting_total": sum(waiting.values()),
            "open": rows[len(topics)],
            "closed": rows[len(topics) + 1],
            "agents_online": rows[len(topics) + 2],
        }


def _ticket_order(tid: str) -> tuple[int, int, str]:
    digits = tid[1:]
    return (0, int(digits), tid) if digits.isdigit() else (1, 0, tid)
