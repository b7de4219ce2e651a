"""The help desk as the gateway sees it: handoff state per conversation and ticket operations.

A narrow port (:class:`Desk`) over the queue (:mod:`bot.queue`) and the conversations' modes
(:mod:`bot.handoff`), so the HTTP and WebSocket code does not depend on their details; the
implementation is :class:`bot.web.queue_desk.QueueDesk`, built by :func:`bot.web.app.create_app`.
:class:`DeskState` is what a customer's conversation looks like from outside Rasa: ``bot``,
``waiting`` (with position and ETA) or ``agent``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.handoff import ConversationMode
from bot.web.errors import ApiError

if TYPE_CHECKING:
    from bot.handoff import TicketRequest
    from bot.web.auth import Agent


@dataclass
class DeskState:
    """Handoff state of one conversation."""

    mode: ConversationMode = ConversationMode.BOT
    ticket_id: str | None = None
    position: int | None = None
    eta_seconds: float | None = None
    agent_name: str | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = ConversationMode(self.mode).value
        if self.mode != ConversationMode.WAITING:
            data["position"] = data["eta_seconds"] = None
        return data


@dataclass
class Sent:
    """An agent message taken by the ticket's log."""

    conversation_id: str
    client_id: str
    duplicate: bool = False


class DeskError(ApiError):
    """A desk operation was refused (unknown ticket, wrong state, no capacity ...): answered
    like every other :class:`ApiError`, with its status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)


class Desk(Protocol):
    """What the gateway needs from the queue and the handoff state (see :mod:`bot.web.queue_desk`).

    Ticket dicts are JSON-ready (``QueueDesk.public`` / ``brief``); failures raise
    :class:`DeskError` with the HTTP status to answer.
    """

    def start(self) -> None:
        """Start the desk's background work (the queue's sweeper)."""

    async def stop(self) -> None: ...

    async def health(self) -> dict[str, Any]:
        """The queue's health for /healthz: ``status`` (up | degraded) and counts."""

    async def state(self, conversation_id: str) -> DeskState: ...

    async def customer_message(
        self, state: DeskState, conversation_id: str, text: str, client_id: str
    ) -> None: ...

    async def check_wait(self, conversation_id: str) -> list[dict]: ...

    async def request_person(self, request: TicketRequest) -> tuple[DeskState, int]:
        """Open the conversation's ticket without the bot (idempotent); its state and how
        many agents who could take it are online."""

    async def topics(self) -> list[str]: ...

    async def presence(self, agent: Agent) -> dict[str, Any]: ...

    async def set_presence(self, agent: Agent, online: bool) -> list[dict[str, Any]]: ...

    async def heartbeat(self, agent: Agent) -> bool: ...

    async def agent_tickets(self, agent: Agent) -> list[dict[str, Any]]: ...

    async def list_tickets(
        self, state: str, agent: Agent, *, with_wait: bool = True
    ) -> list[dict[str, Any]]: ...

    async def ticket(self, ticket_id: str) -> dict[str, Any]: ...

    async def claim_next(self, agent: Agent) -> dict[str, Any] | None: ...

    async def claim(self, agent: Agent, ticket_id: str) -> dict[str, Any]: ...

    async def conversation_of(self, ticket_id: str) -> str: ...

    def ticket_key(self, ticket_id: str) -> str: ...

    async def agent_message(
        self, agent: Agent, ticket_id: str, text: str, client_id: str | None
    ) -> Sent: ...

    async def resolve(self, agent: Agent, ticket_id: str, disposition: str) -> list[dict]: ...

    async def hand_back(self, agent: Agent, ticket_id: str) -> list[dict]: ...

    async def transfer(self, agent: Agent, ticket_id: str, topic: str) -> None: ...


DISPOSITIONS = (
    "solved",
    "solved_with_follow_up",
    "workaround_given",
    "referred_elsewhere",
    "customer_unresponsive",
    "not_an_issue",
)
TICKET_FILTERS = ("open", "queued", "assigned", "mine")
