"""The help desk as the gateway sees it: handoff state per conversation and ticket operations.

A narrow port over the queue (:mod:`bot.queue`) and the handoff state (:mod:`bot.handoff`), so
the HTTP and WebSocket code does not depend on their details. :class:`DeskState` is what a
customer's conversation looks like from outside Rasa: ``bot``, ``waiting`` (with position and
ETA) or ``agent``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

MODES = ("bot", "waiting", "agent")


@dataclass
class DeskState:
    """Handoff state of one conversation."""

    mode: str = "bot"
    ticket_id: str | None = None
    position: int | None = None
    eta_seconds: float | None = None
    agent_name: str | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        if self.mode != "waiting":
            data["position"] = data["eta_seconds"] = None
        return data


@dataclass
class Sent:
    """An agent message taken by the ticket's log."""

    conversation_id: str
    client_id: str
    duplicate: bool = False


class DeskError(Exception):
    """A desk operation was refused (unknown ticket, wrong state, no capacity ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Desk(Protocol):
    """What the gateway needs from the queue and the handoff state (see :mod:`bot.web.queue_desk`).

    Ticket dicts are JSON-ready (``QueueDesk.public`` / ``brief``); failures raise
    :class:`DeskError` with the HTTP status to answer.
    """

    async def state(self, conversation_id: str) -> DeskState: ...

    async def customer_message(
        self, state: DeskState, conversation_id: str, text: str, client_id: str
    ) -> None: ...

    async def check_wait(self, conversation_id: str) -> list[dict]: ...

    async def topics(self) -> list[str]: ...

    async def presence(self, agent: Any) -> dict[str, Any]: ...

    async def set_presence(self, agent: Any, online: bool) -> list[dict[str, Any]]: ...

    async def heartbeat(self, agent: Any) -> bool: ...

    async def agent_tickets(self, agent: Any) -> list[dict[str, Any]]: ...

    async def list_tickets(
        self, state: str, agent: Any, *, with_wait: bool = True
    ) -> list[dict[str, Any]]: ...

    async def ticket(self, ticket_id: str) -> dict[str, Any]: ...

    async def claim_next(self, agent: Any) -> dict[str, Any] | None: ...

    async def claim(self, agent: Any, ticket_id: str) -> dict[str, Any]: ...

    async def conversation_of(self, ticket_id: str) -> str: ...

    def ticket_key(self, ticket_id: str) -> str: ...

    async def agent_message(
        self, agent: Any, ticket_id: str, text: str, client_id: str | None
    ) -> Sent: ...

    async def resolve(self, agent: Any, ticket_id: str, disposition: str) -> list[dict]: ...

    async def hand_back(self, agent: Any, ticket_id: str) -> list[dict]: ...

    async def transfer(self, agent: Any, ticket_id: str, topic: str) -> None: ...


DISPOSITIONS = (
    "solved",
    "solved_with_follow_up",
    "workaround_given",
    "referred_elsewhere",
    "customer_unresponsive",
    "not_an_issue",
)
TICKET_FILTERS = ("open", "queued", "assigned", "mine")
PRIORITY_LABELS = ((8, "urgent"), (6, "high"), (3, "normal"), (0, "low"))


def priority_label(priority: int) -> str:
    for floor, label in PRIORITY_LABELS:
        if priority >= floor:
            return label
    return "low"


class BotOnlyDesk:
    """A desk without a queue (bot.queue not installed): every conversation stays with the bot."""

    async def state(self, conversation_id: str) -> DeskState:
        return DeskState()

    async def customer_message(
        self, state: DeskState, conversation_id: str, text: str, client_id: str
    ) -> None:
        raise DeskError(503, "queue_unavailable", "no handoff queue is configured")

    async def check_wait(self, conversation_id: str) -> list[dict]:
        return []

    def __getattr__(self, name: str) -> Any:
        async def unavailable(*_args: Any, **_kwargs: Any) -> Any:
            raise DeskError(503, "queue_unavailable", "no handoff queue is configured")

        return unavailable


def default_desk(redis: Any, settings: Any, rasa: Any, events: Any) -> Any:
    """The queue-backed desk when the queue is installed, else :class:`BotOnlyDesk`."""
    try:
        from bot.web.queue_desk import QueueDesk
    except ImportError:
        return BotOnlyDesk()
    return QueueDesk(redis, settings, rasa)


def start_desk(desk: Any) -> None:
    """Start the desk's background work (the queue's sweeper), if it has any."""
    if hasattr(desk, "start") and not isinstance(desk, BotOnlyDesk):
        desk.start()


async def stop_desk(desk: Any) -> None:
    if hasattr(desk, "stop") and not isinstance(desk, BotOnlyDesk):
        await desk.stop()
