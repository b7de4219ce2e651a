"""The customer's latest turn as `action_respond` sees it, read from the rasa_sdk tracker.

Every bot message the action sends is tagged with a `reply` name (Rasa keeps it in the bot
event's metadata), so the next turn can tell what the bot last asked, e.g. "Did that answer
your question?", without extra slots.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actions import validation

if TYPE_CHECKING:
    from rasa_sdk import Tracker

REPLY_KEY = "reply"
_INTENT_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
ANSWER_PREFIX = "answer:"


@dataclass(frozen=True)
class TrackerTurn:
    """The customer's latest message as the NLU parsed it, and the reply tags the bot sent since
    their previous one."""

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]
    text: str
    previous_replies: tuple[str, ...]

    def bot_asked(self, reply: str) -> bool:
        """Whether the bot's previous turn (since the customer last spoke) sent `reply`."""
        return reply in self.previous_replies


def answer_tag(intent: str) -> str:
    """The `reply` tag of the answer to a routine intent."""
    return f"{ANSWER_PREFIX}{intent}"


def read_turn(tracker: Tracker) -> TrackerTurn:
    """The latest customer message, its NLU result and what the bot said just before it."""
    message = tracker.latest_message if isinstance(tracker.latest_message, dict) else {}
    intent = message.get("intent") if isinstance(message.get("intent"), dict) else {}
    ranking = message.get("intent_ranking")
    return TrackerTurn(
        intent=_name(intent.get("name")),
        confidence=validation.confidence(intent.get("confidence")),
        ranking=tuple(
            (_name(entry.get("name")), validation.confidence(entry.get("confidence")))
            for entry in (ranking if isinstance(ranking, list) else [])
            if isinstance(entry, dict) and _name(entry.get("name"))
        ),
        text=validation.free_text(message.get("text")),
        previous_replies=previous_bot_replies(tracker.events or []),
    )


def _name(value: Any) -> str:
    """An intent name as Rasa writes them (letters, digits, ``_``), else ''."""
    return value if isinstance(value, str) and _INTENT_NAME.fullmatch(value) else ""


def previous_bot_replies(events: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """Reply tags of the bot messages between the last two customer messages."""
    user_positions = [i for i, event in enumerate(events) if event.get("event") == "user"]
    if not user_positions:
        return ()
    end = user_positions[-1]
    start = user_positions[-2] + 1 if len(user_positions) > 1 else 0
    return tuple(
        tag
        for event in events[start:end]
        if event.get("event") == "bot"
        and isinstance(tag := (event.get("metadata") or {}).get(REPLY_KEY), str)
    )
