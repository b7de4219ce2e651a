"""The desk over the real queue (:mod:`bot.queue`) and handoff state (:mod:`bot.handoff`).

The gateway's agents are registered with the queue when they go online, with their skills and
capacity, as *pull* agents by default (they claim tickets from the console: the customer sees
their place in the queue meanwhile); an account with ``auto_assign`` gets work pushed instead.
The conversation's mode follows the ticket (``ModeStore.sync``): a claim makes the conversation
``agent``; resolving or handing back ends the human stretch, and Rasa is told so
(``action_handback`` on the conversation's replica), which greets the customer back and asks
for a rating.

The gateway also runs the queue's sweeper (lapsed agent leases, SLA flags) as a background task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.escalation import load_policy
from bot.handoff import (
    ConversationMode,
    HandoffError,
    ModeStore,
    QueuePort,
)
from bot.handoff.rasa import HANDBACK_ACTION, WAIT_CHECK_ACTION
from bot.queue import (
    AgentAtCapacity,
    AgentLacksSkill,
    AgentNotFound,
    AgentOffline,
    InvalidInput,
    InvalidTransition,
    MessageTooLarge,
    NotAssignee,
    QueueError,
    Ticket,
    TicketNotFound,
    TicketState,
    open_queue,
)
from bot.web.desk import DeskError, DeskState, Sent
from bot.web.rasa_client import RasaUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.config import Settings
    from bot.handoff import TicketRequest
    from bot.web.auth import Agent
    from bot.web.rasa_ring import RasaRing

log = logging.getLogger("bot.web.desk")
OPEN_CACHE_SECONDS = 0.5

_ERRORS: dict[type[QueueError], tuple[int, str, str]] = {
    TicketNotFound: (404, "not_found", "no such ticket"),
    AgentOffline: (409, "agent_offline", "go online first"),
    AgentNotFound: (409, "agent_offline", "go online first"),
    AgentAtCapacity: (409, "at_capacity", "you already have as many chats as your capacity allows"),
    AgentLacksSkill: (403, "lacks_skill", "this ticket needs a skill you do not have"),
    InvalidTransition: (409, "conflict", "the ticket is no longer in a state that allows this"),
    NotAssignee: (403, "forbidden", "you do not hold this ticket"),
    MessageTooLarge: (413, "too_large", "the message is too long"),
    InvalidInput: (400, "bad_request", "the request is not valid"),
}


def desk_error(error: QueueError) -> DeskError:
    for kind, (status, code, message) in _ERRORS.items():
        if isinstance(error, kind):
            return DeskError(status, code, f"{message} ({error})")
    return DeskError(409, "conflict", str(error))


class QueueDesk:
    """Handoff state, waiting positions and every agent operation, over the queue."""

    def __init__(self, redis: Redis, settings: Settings, rasa: RasaRing) -> None:
        namespace = settings.queue_namespace
        self.queue = open_queue(redis, settings)
        self.modes = ModeStore(redis, QueuePort(self.queue), namespace)
        self._rasa = rasa
        self._redis = redis
        self._names_key = f"{namespace}:web:agent-names"
        policy = load_policy(settings.escalation_policy)
        self._priorities = sorted(policy.priorities.items(), key=lambda p: -p[1])
        self._topics = sorted({policy.default_topic, *(rule.topic for rule in policy.sensitive)})
        self._sweeper: asyncio.Task | None = None
        self._open_cache: tuple[float, list[Ticket]] = (0.0, [])
        self._conversations: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self.queue.run_sweeper())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def health(self) -> dict[str, Any]:
        """The queue as /healthz reports it: its counts, and whether this gateway's sweeper
        (lapsed leases, SLA flags) is running."""
        stats = await self.queue.stats()
        sweeping = self._sweeper is not None and not self._sweeper.done()
        return {
            "status": "up" if sweeping else "degraded",
            "sweeper": "running" if sweeping else "stopped",
            "waiting": stats["waiting_total"],
            "open": stats["open"],
            "agents_online": stats["agents_online"],
        }

    # -- customer side ------------------------------------------------------------------

    async def state(self, conversation_id: str) -> DeskState:
        current = await self.modes.sync(conversation_id)
        state = DeskState(mode=current.mode, ticket_id=current.ticket_id)
        if current.mode == ConversationMode.WAITING and current.ticket_id:
            try:
                position = await self.queue.position(current.ticket_id)
            except TicketNotFound:
                return state
            state.position, state.eta_seconds = position.position, position.eta_seconds
        elif current.mode == ConversationMode.AGENT and current.agent_id:
            state.agent_name = await self._redis.hget(self._names_key, current.agent_id)
        return state

    async def customer_message(
        self, state: DeskState, conversation_id: str, text: str, client_id: str
    ) -> None:
        try:
            await self.queue.send_message(
                state.ticket_id or "", "customer", conversation_id, text, client_id
            )
        except QueueError as error:
            raise desk_error(error) from error

    async def request_person(self, request: TicketRequest) -> tuple[DeskState, int]:
        """Open the ticket straight in the queue (the bot is unavailable): the same
        ``ModeStore.request`` the action server uses; a free pushed agent may take it at once."""
        try:
            await self.modes.request(request)
        except QueueError as error:
            raise desk_error(error) from error
        except HandoffError:  # an agent already holds the conversation
            pass
        self._open_cache = (0.0, [])
        state = await self.state(request.conversation_id)
        return state, await self.modes.queue.agents_available(request.topic)

    # -- agents -------------------------------------------------------------------------

    async def topics(self) -> list[str]:
        return list(self._topics)

    def priority_label(self, priority: int) -> str:
        for name, level in self._priorities:
            if priority >= level:
                return name
        return "low"

    def public(self, ticket: Ticket, agent: Agent | None = None) -> dict[str, Any]:
        """The ticket for the console: everything, with wait and priority label."""
        data = ticket.to_dict()
        data.update(self.brief(ticket, agent))
        return data

    def brief(self, ticket: Ticket, agent: Agent | None = None) -> dict[str, Any]:
        """What a queue row needs (no summary or transcript; ``GET /api/tickets/{id}`` has it).
        A waiting ticket carries ``waiting_since`` rather than a wait that changes every second,
        so a snapshot only changes when the queue does."""
        since = ticket.timestamps.get("queued", ticket.created_at)
        queued = ticket.state == TicketState.QUEUED
        data: dict[str, Any] = {
            "id": ticket.id,
            "conversation_id": ticket.conversation_id,
            "state": ticket.state.value,
            "customer": ticket.customer.to_dict(),
            "reasons": list(ticket.reasons),
            "priority": ticket.priority,
            "priority_label": self.priority_label(ticket.priority),
            "topic": ticket.topic,
            "agent_id": ticket.agent_id,
            "sla_breached": ticket.sla_breached,
            "waiting_since": since if queued else None,
        }
        if not queued:
            data["wait_seconds"] = round((ticket.assigned_at or time.time()) - since, 1)
        if agent is not None:
            data["can_claim"] = queued and (ticket.topic in agent.skills or "*" in agent.skills)
        return data

    async def presence(self, agent: Agent) -> dict[str, Any]:
        try:
            info = await self.queue.agent(agent.login)
        except AgentNotFound:
            return {"online": False, "load": 0, "capacity": agent.capacity}
        online = info.online and (info.lease_expires_at or 0) > time.time()
        return {"online": online, "load": info.load, "capacity": info.capacity}

    async def set_presence(self, agent: Agent, online: bool) -> list[dict[str, Any]]:
        """Online: registered with a fresh lease (pushed tickets returned). Offline: the agent's
        open tickets go back to the front of the queue."""
        try:
            if not online:
                await self.queue.agent_offline(agent.login)
                return []
            await self._redis.hset(self._names_key, agent.login, agent.name)
            before = {t["id"] for t in await self.agent_tickets(agent)}
            await self.queue.agent_online(
                agent.login, agent.skills, agent.capacity, auto_assign=agent.auto_assign
            )
        except AgentNotFound:
            return []
        except QueueError as error:
            raise desk_error(error) from error
        pushed = [t for t in await self.agent_tickets(agent) if t["id"] not in before]
        for ticket in pushed:
            await self._joined(ticket["conversation_id"], agent)
        return pushed

    async def heartbeat(self, agent: Agent) -> bool:
        """Renew the agent's lease while its console is connected; False when it is offline."""
        try:
            await self.queue.heartbeat(agent.login)
        except (AgentOffline, AgentNotFound):
            return False
        return True

    async def agent_tickets(self, agent: Agent) -> list[dict[str, Any]]:
        try:
            info = await self.queue.agent(agent.login)
        except AgentNotFound:
            return []
        tickets = await self.queue.get_many(info.tickets)
        return [self.brief(t, agent) for t in tickets if t.state == TicketState.ASSIGNED]

    async def list_tickets(
        self, state: str, agent: Agent, *, with_wait: bool = True
    ) -> list[dict[str, Any]]:
        """Queue rows, most urgent and oldest first. ``with_wait`` adds the current wait of
        waiting tickets (the HTTP API); live snapshots leave it out so they change only with
        the queue."""
        if state == "mine":
            return await self.agent_tickets(agent)
        now = time.time()
        rows = []
        for ticket in await self._open_tickets():
            if state not in ("open", ticket.state.value):
                continue
            row = self.brief(ticket, agent)
            if with_wait and row["waiting_since"] is not None:
                row["wait_seconds"] = round(now - row["waiting_since"], 1)
            rows.append(row)
        return rows

    async def _open_tickets(self) -> list[Ticket]:
        """Open tickets, read at most every OPEN_CACHE_SECONDS however many consoles watch."""
        now = time.monotonic()
        if now - self._open_cache[0] > OPEN_CACHE_SECONDS:
            self._open_cache = (now, await self.queue.list_tickets(None, limit=500))
        return self._open_cache[1]

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        try:
            return self.public(await self.queue.get(ticket_id))
        except QueueError as error:
            raise desk_error(error) from error

    async def claim_next(self, agent: Agent) -> dict[str, Any] | None:
        try:
            ticket = await self.queue.claim_next(agent.login)
        except QueueError as error:
            raise desk_error(error) from error
        if ticket is None:
            return None
        await self._joined(ticket.conversation_id, agent)
        return self.public(ticket, agent)

    async def claim(self, agent: Agent, ticket_id: str) -> dict[str, Any]:
        try:
            ticket = await self.queue.claim(agent.login, ticket_id)
        except QueueError as error:
            raise desk_error(error) from error
        await self._joined(ticket.conversation_id, agent)
        return self.public(ticket, agent)

    async def _joined(self, conversation_id: str, agent: Agent) -> None:
        self._open_cache = (0.0, [])
        try:
            await self.modes.agent_joined(conversation_id, agent.login)
        except HandoffError:
            await self.modes.sync(conversation_id)

    async def conversation_of(self, ticket_id: str) -> str:
        """A ticket's conversation id (it never changes, so it is kept once read)."""
        conversation_id = self._conversations.get(ticket_id)
        if conversation_id is None:
            conversation_id = await self.queue.redis.hget(self.ticket_key(ticket_id), "conv")
            if conversation_id is None:
                raise DeskError(404, "not_found", "no such ticket")
            if len(self._conversations) > 100_000:
                self._conversations.clear()
            self._conversations[ticket_id] = conversation_id
        return conversation_id

    def ticket_key(self, ticket_id: str) -> str:
        """The ticket's hash in the queue (fields ``conv``, ``state``, ``agent`` ...)."""
        return self.queue.key("t", ticket_id)

    async def agent_message(
        self, agent: Agent, ticket_id: str, text: str, client_id: str | None
    ) -> Sent:
        """Append the agent's reply to the ticket's log (refused unless the agent holds it)."""
        client_id = client_id or f"a-{time.time_ns()}"
        try:
            conversation_id = await self.conversation_of(ticket_id)
            message = await self.queue.send_message(
                ticket_id, "agent", agent.login, text, client_id
            )
        except QueueError as error:
            raise desk_error(error) from error
        return Sent(conversation_id, client_id, message.duplicate)

    async def resolve(self, agent: Agent, ticket_id: str, disposition: str) -> list[dict]:
        try:
            ticket = await self.queue.resolve(ticket_id, agent.login, disposition)
        except QueueError as error:
            raise desk_error(error) from error
        return await self._back_to_bot(ticket.conversation_id)

    async def hand_back(self, agent: Agent, ticket_id: str) -> list[dict]:
        try:
            ticket = await self.queue.return_to_bot(ticket_id, agent.login)
        except QueueError as error:
            raise desk_error(error) from error
        return await self._back_to_bot(ticket.conversation_id)

    async def _back_to_bot(self, conversation_id: str) -> list[dict]:
        """End the human stretch and let the bot greet the customer back (and ask for a rating)."""
        self._open_cache = (0.0, [])
        try:
            await self.modes.hand_back(conversation_id)
        except HandoffError:
            await self.modes.sync(conversation_id)
        try:
            return await self._rasa.run_action(conversation_id, HANDBACK_ACTION)
        except (RasaUnavailable, aiohttp.ClientError, asyncio.TimeoutError) as error:
            # The ticket is closed and the mode is bot: the bot answers the next message.
            log.warning(
                "could not tell Rasa that %s is back with the bot: %r", conversation_id, error
            )
            return []

    async def check_wait(self, conversation_id: str) -> list[dict]:
        """For a customer waiting silently: the bot's offer to leave contact details once the
        wait passes the policy's limit (the action makes it once; nothing otherwise)."""
        try:
            return await self._rasa.run_action(conversation_id, WAIT_CHECK_ACTION)
        except (RasaUnavailable, aiohttp.ClientError, asyncio.TimeoutError) as error:
            log.warning("wait check for %s failed: %r", conversation_id, error)
            return []

    async def transfer(self, agent: Agent, ticket_id: str, topic: str) -> None:
        """Pass a ticket the agent holds to another topic; whether it holds it is checked in the
        queue's transfer script, atomically with the move (403 when it no longer does)."""
        try:
            ticket = await self.queue.transfer(ticket_id, topic=topic, holder=agent.login)
        except QueueError as error:
            raise desk_error(error) from error
        self._open_cache = (0.0, [])
        await self.modes.sync(ticket.conversation_id)
