"""Customer satisfaction: a 1-5 rating (buttons) and an optional comment when a conversation ends.

Asked after goodbye and after an agent hands the conversation back. Every answer is appended to
the Redis stream `<ns>:csat` (durable with AOF) with fields:

- `kind`: `offered` (the question was asked), `rating`, or `comment` (a later comment on a rating);
- `conversation_id`, `rating_id` (the `rating` entry's own id; `comment` entries repeat it),
  `score` (1-5), `comment`, `at` (Unix seconds);
- `path`: `bot_only`, or `escalated` with `reasons` (JSON list of the handoff's reason codes) and
  `ticket_id` - so satisfaction can be compared between the bot alone and the human path.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from rasa_sdk.events import EventType, SlotSet

from actions import validation
from actions.connections import redis_client
from actions.escalation_messages import say
from bot import keys
from bot.config import get_settings
from bot.retention import min_stream_id

if TYPE_CHECKING:
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.context import TurnContext
    from actions.turn import TrackerTurn
    from bot.escalation import Policy
    from bot.handoff import HandoffState

log = logging.getLogger(__name__)

SCORE = re.compile(r'^\W*([1-5])\b|"csat_score"\s*:\s*"?([1-5])')
QUESTION = re.compile(
    r"\?\s*$|^\s*(how|what|why|when|where|which|who|can|could|do|does|is|are|will)\b", re.I
)
NO_COMMENT = ("deny", "goodbye")
STAGES = ("rating", "comment")  # values of the csat_stage slot


def stream_key() -> str:
    return keys.CSAT.format(ns=get_settings().queue_namespace)


def path_of(state: HandoffState) -> dict[str, str]:
    """`bot_only`, or `escalated` with the reasons and ticket of the human stretch."""
    ticket = state.ticket_id or state.last_ticket_id
    if not ticket:
        return {"path": "bot_only", "reasons": "[]", "ticket_id": ""}
    reasons = state.reasons if state.ticket_id else state.last_reasons
    return {"path": "escalated", "reasons": json.dumps(reasons), "ticket_id": ticket}


def score_of(turn: TrackerTurn, tracker: Tracker) -> int | None:
    """The rating in the message: the button's entity, or a leading digit 1-5."""
    entities = (tracker.latest_message or {}).get("entities")
    for entity in entities if isinstance(entities, list) else []:
        if isinstance(entity, dict) and entity.get("entity") == "csat_score":
            return validation.csat_score(entity.get("value"))
    match = SCORE.search(turn.text or "")
    return int(match.group(1) or match.group(2)) if match else None


def is_new_question(turn: TrackerTurn, policy: Policy) -> bool:
    """A routine question rather than a comment: asked as a question, about a banking topic."""
    config = policy.signal_config()
    topical = turn.intent not in config.non_topic_intents | config.unanswerable_intents
    return bool(turn.intent) and topical and bool(QUESTION.search(turn.text or ""))


async def _append(fields: dict[str, str]) -> None:
    try:
        await redis_client().xadd(
            stream_key(),
            {**fields, "at": f"{time.time():.3f}"},
            minid=min_stream_id(get_settings().history_retention_seconds),
            approximate=True,
        )
    except Exception:
        log.exception("could not store a satisfaction answer of %s", fields.get("conversation_id"))


async def ask(dispatcher: CollectingDispatcher, conversation_id: str) -> list[EventType]:
    """Ask for a 1-5 rating."""
    say(dispatcher, "csat_ask")
    await _append({"kind": "offered", "conversation_id": conversation_id})
    return [SlotSet("csat_stage", "rating")]


async def take_answer(stage: str, ctx: TurnContext) -> list[EventType] | None:
    """Store the rating or comment; None when the message is neither (the customer moved on)."""
    turn, tracker, dispatcher, state = ctx.turn, ctx.tracker, ctx.dispatcher, ctx.state
    conversation_id = ctx.conversation_id
    if stage == "rating":
        score = score_of(turn, tracker)
        if score is None:
            return None
        rating_id = uuid.uuid4().hex
        await _append(
            {
                "kind": "rating",
                "conversation_id": conversation_id,
                "rating_id": rating_id,
                "score": str(score),
                "comment": "",
                **path_of(state),
            }
        )
        say(dispatcher, "csat_comment")
        return [SlotSet("csat_stage", "comment"), SlotSet("csat_rating_id", rating_id)]
    if stage == "comment":
        text = validation.free_text(turn.text)
        if is_new_question(turn, ctx.policy):
            return None  # not a comment: the customer moved on to a new question
        if turn.intent in NO_COMMENT or not text or text.startswith("/"):
            say(dispatcher, "csat_thanks")
            return [SlotSet("csat_stage", None)]
        await _append(
            {
                "kind": "comment",
                "conversation_id": conversation_id,
                "rating_id": validation.rating_id(tracker.get_slot("csat_rating_id")) or "",
                "comment": text[:2000],
                **path_of(state),
            }
        )
        say(dispatcher, "csat_thanks")
        return [SlotSet("csat_stage", None)]
    return None
