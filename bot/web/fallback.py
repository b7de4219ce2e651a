"""A person is always reachable: customer turns while Rasa or the action server is unavailable.

When Rasa cannot be reached, does not answer in time, or answers with nothing because its action
server is down (Rasa 3.6 logs the failed custom action and its REST webhook returns ``[]``), the
gateway answers the turn itself, honestly, without pretending the bot answered:

* the customer's message is stored in the conversation's event stream, as every acknowledged
  message is, so nothing sent in that window is lost (it is not replayed to Rasa later: a turn
  that may have run is never run twice; the agent sees it in the ticket's transcript);
* "Talk to a person" (``/request_human``) or a message the escalation policy reads as a request
  for a person without the NLU (its ``explicit_request`` phrases, or a sensitive-topic phrase of a
  ``handoff`` rule) opens a ticket straight in the queue, on the same path the action server
  uses (``ModeStore.request`` with a :class:`~bot.handoff.TicketRequest`), with reason codes
  ``bot_unavailable`` and the policy's (``explicit_request``, ``sensitive:<rule>``) and the
  transcript the stream holds; the customer is told their place in the queue and the wait;
* any other message gets a notice (``type: notice``, ``code: bot_unavailable``): the assistant is
  reconnecting, the message is saved, and a person is one button away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.escalation import Verdict, evaluate
from bot.handoff import ConversationMode, TicketRequest
from bot.queue import Summary, TranscriptLine
from bot.sentiment import sentiment
from bot.signals import SignalTurn, TurnSignals, human_request, sensitive_phrases
from bot.web.offers import REQUEST_HUMAN

if TYPE_CHECKING:
    from bot.escalation import Policy
    from bot.web.desk import DeskState

BOT_UNAVAILABLE = "bot_unavailable"
TRANSCRIPT_LINES = 100

RECONNECTING = (
    "The assistant is reconnecting. Your message is saved. If you'd rather not wait, "
    "press \u201cTalk to a person\u201d and someone from our team will take it from here."
)
RECONNECTING_WAITING = (
    "The assistant is reconnecting. Your message is saved, and you keep your place in the "
    "queue for a person."
)
QUEUED = (
    "The assistant is unavailable right now, so I've passed your conversation straight to our "
    "team: you're number {position} in the queue; the expected wait is {eta}. They'll see "
    "everything you've written here."
)
NO_AGENTS = (
    "The assistant is unavailable right now, so I've passed your conversation to our team. "
    "Nobody from the team is online at the moment, so I can't promise when they'll reply, but "
    "your request is kept in the queue with everything you've written here."
)
ASSIGNED = "Someone from our team has your conversation now and will reply here shortly."


@dataclass(frozen=True)
class Handoff:
    """What the policy asks for a turn the bot could not run: reasons, priority and topic."""

    reasons: list[str]
    priority: int
    topic: str


def eta_text(seconds: float | None) -> str:
    """A wait in words (as the bot says it): "under a minute", "about 4 minutes"."""
    if seconds is None:
        return "not known yet"
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return "about 1 minute" if minutes == 1 else f"about {minutes} minutes"


def handoff_for(policy: Policy, text: str | None, payload: str | None) -> Handoff | None:
    """The handoff the policy makes for this message without the NLU, else None.

    Only what needs no NLU counts: the "Talk to a person" payload, the policy's explicit-request
    phrases (its ``unless`` patterns respected) and the phrases of sensitive-topic rules whose
    action is ``handoff``.
    """
    config = policy.signal_config()
    intent = "request_human" if payload == REQUEST_HUMAN else None
    words = text or ""
    explicit = human_request(SignalTurn(text=words, intent=intent), config)
    signals = TurnSignals(
        turn=0,
        text=words,
        intent=intent,
        confidence=1.0 if intent else 0.0,
        margin=0.0,
        unclear=False,
        fallback_streak=0,
        failed_turns=0,
        failed_total=0,
        explicit_request=explicit is not None,
        explicit_match=explicit,
        sensitive_phrases=sensitive_phrases(words, config),
    )
    decision = evaluate(signals, policy)
    if decision.action != Verdict.handoff:
        return None
    return Handoff([BOT_UNAVAILABLE, *decision.reasons], decision.priority, decision.topic)


def transcript(history: list[dict[str, Any]]) -> tuple[TranscriptLine, ...]:
    """The customer's and the bot's messages of the stream, as the ticket's transcript."""
    lines = []
    for event in history:
        role, text = event.get("from"), str(event.get("text") or "")
        if event.get("type") != "message" or role not in ("customer", "bot") or not text:
            continue
        ts = event.get("ts")
        line = TranscriptLine(
            role=str(role),
            text=text,
            timestamp=float(ts) if isinstance(ts, int | float) else None,
            sentiment=sentiment(text) if role == "customer" else None,
        )
        lines.append(line)
    return tuple(lines[-TRANSCRIPT_LINES:])


def ticket_request(
    conversation_id: str, handoff: Handoff, history: list[dict[str, Any]]
) -> TicketRequest:
    """The ticket the bot would have asked for, from what the gateway has."""
    why = "The assistant was unavailable; " + (
        "the customer asked for a person."
        if "explicit_request" in handoff.reasons
        else "the customer raised a topic a person handles."
    )
    return TicketRequest(
        conversation_id=conversation_id,
        customer_id=conversation_id,
        reasons=handoff.reasons,
        priority=handoff.priority,
        topic=handoff.topic,
        summary=Summary(text=why, transcript=transcript(history)),
    )


def notice(text: str) -> dict[str, Any]:
    """A system notice of this path (never a bot message: the bot did not answer)."""
    return {
        "type": "notice",
        "from": "system",
        "code": BOT_UNAVAILABLE,
        "text": text,
        "ts": time.time(),
    }


def queued_notice(state: DeskState, agents_online: int) -> dict[str, Any]:
    """Where the customer stands, as the bot tells it: place and wait, or nobody online."""
    if state.mode == ConversationMode.AGENT:
        return notice(ASSIGNED)
    if agents_online == 0:
        return notice(NO_AGENTS)
    return notice(QUEUED.format(position=state.position or 1, eta=eta_text(state.eta_seconds)))


def reconnecting_notice(state: DeskState) -> dict[str, Any]:
    waiting = state.mode == ConversationMode.WAITING
    return notice(RECONNECTING_WAITING if waiting else RECONNECTING)
