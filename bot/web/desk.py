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
    """What the gateway needs from the queue and the handoff state."""

    async def state(self, conversation_id: str) -> DeskState: ...

    async def customer_message(
        self, state: DeskState, conversation_id: str, text: str, client_id: str
    ) -> None: ...


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
