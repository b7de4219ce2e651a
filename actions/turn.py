"""The customer's latest turn as `action_respond` sees it, read from the rasa_sdk tracker.

Every bot message the action sends is tagged with a `reply` name (Rasa keeps it in the bot
event's metadata), so the next turn can tell what the bot last asked, e.g. "Did that answer
your question?", without extra slots.

The NLU adds to each message how familiar it is to the training examples of its intent and a
compact copy of its MiniLM embedding (`bot.nlu.familiarity`); `read_turn` compares the latest
message's embedding with the customer's earlier ones and with the message the latest answer
answered, so the escalation signals see a restated need whatever intent the NLU read in it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actions import validation
from bot.nlu.familiarity import cosine, unpack

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
    familiarity: float | None = None
    similarity_to_answered: float | None = None
    similarity_to_earlier: float | None = None
    given_answers: tuple[str, ...] = ()  # answer tags the bot sent earlier in the conversation
    # set by the escalation gate from the turn's signals (bot.signals.TurnSignals)
    unfamiliar: bool = False
    ambiguous: bool = False  # the top two topics are too close: ask which one
    kept_topic: bool = False
    restated: bool = False
    repeat_request: bool = False
    topic_helped: bool = False  # the customer confirmed the topic's earlier answer helped

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
        previous_replies=previous_bot_replies(events := tracker.events or []),
        familiarity=_familiarity(message, _name(intent.get("name"))),
        given_answers=given_answers(events),
        **similarities(message.get("embedding"), events),
    )


def _familiarity(message: dict[str, Any], intent: str) -> float | None:
    """The familiarity score the NLU gave the message's top intent (None if not scored)."""
    raw = message.get("familiarity")
    if not isinstance(raw, dict) or raw.get("intent") != intent:
        return None
    score = raw.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not -1 <= score <= 1:
        return None
    return float(score)


def given_answers(events: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """Answer tags (`answer:<intent>`) of the bot messages before the latest customer message."""
    user_positions = [i for i, event in enumerate(events) if event.get("event") == "user"]
    end = user_positions[-1] if user_positions else len(events)
    return tuple(
        tag
        for event in events[:end]
        if event.get("event") == "bot"
        and isinstance(tag := (event.get("metadata") or {}).get(REPLY_KEY), str)
        and tag.startswith(ANSWER_PREFIX)
    )


def _embedding(event: dict[str, Any]) -> Any:
    parse = event.get("parse_data")
    return parse.get("embedding") if isinstance(parse, dict) else None


def similarities(packed: object, events: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Cosine of the latest message's embedding to the message the latest answer answered and,
    highest, to the customer's earlier messages (None when there is nothing to compare)."""
    latest = unpack(packed)
    result: dict[str, float | None] = {
        "similarity_to_answered": None,
        "similarity_to_earlier": None,
    }
    if latest is None:
        return result
    users = [i for i, event in enumerate(events) if event.get("event") == "user"]
    earlier = [vector for i in users[:-1] if (vector := unpack(_embedding(events[i]))) is not None]
    if earlier:
        result["similarity_to_earlier"] = max(cosine(latest, v) for v in earlier)
    answers = [
        i
        for i, event in enumerate(events[: users[-1]] if users else events)
        if event.get("event") == "bot"
        and str((event.get("metadata") or {}).get(REPLY_KEY, "")).startswith(ANSWER_PREFIX)
    ]
    asked = [i for i in users if answers and i < answers[-1]]
    if asked and (vector := unpack(_embedding(events[asked[-1]]))) is not None:
        result["similarity_to_answered"] = cosine(latest, vector)
    return result


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
