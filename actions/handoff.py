"""Handing a conversation to a person, the wait, cancelling, contact details and the handback.

`start()` opens the ticket through the queue with the bot's summary for the agent (intents with
confidences, sentiment per customer message, the transcript, the reasons), then tells the customer
their position and expected wait, or honestly that nobody is online or that the team is closed (the
ticket is kept and they can leave an email). While waiting the customer keeps their place and may
ask routine questions; past the policy's wait limit they are offered to leave an email instead.
`ActionHandback` (`action_handback`) runs when the gateway returns the conversation to the bot
(`bot.handoff.resume_in_rasa`): it greets the customer back and asks for a rating.

The steps of a turn take the turn's `actions.context.TurnContext`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import csat, validation
from actions.advice import advise
from actions.connections import mode_store
from actions.context import POLICY, Answer, TurnContext, audit_entries
from actions.escalation_messages import eta_text, say
from bot.handoff import AgentAlreadyJoined, ConversationMode, HandoffState, TicketRequest
from bot.queue import IntentScore, QueuePosition, Summary, TranscriptLine
from bot.runtime import action_metrics
from bot.sentiment import sentiment
from bot.signals import SignalState

if TYPE_CHECKING:
    from actions.turn import TrackerTurn
    from bot.escalation import Policy

log = logging.getLogger(__name__)

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
INTRO = {"explicit_request": "handoff_requested", "failed_turns": "handoff_failed_turns"}
UNKNOWN_PLACE = QueuePosition(position=None, eta_seconds=None)


async def current_state(conversation_id: str, tracker: Tracker) -> HandoffState:
    """The handoff state from Redis (synced with the ticket); the slots' view if Redis is down."""
    try:
        return await mode_store().sync(conversation_id)
    except Exception:
        log.exception("handoff state of %s unavailable; using the tracker's slots", conversation_id)
        return HandoffState(
            conversation_id=conversation_id,
            mode=validation.conversation_mode(tracker.get_slot("handoff_mode")),
            ticket_id=validation.identifier(tracker.get_slot("handoff_ticket")),
        )


def summary(tracker: Tracker, reasons: list[str], why: str) -> Summary:
    """The bot's summary for the agent from the conversation's events."""
    transcript: list[TranscriptLine] = []
    intents: list[IntentScore] = []
    for event in tracker.events:
        kind, text = event.get("event"), event.get("text") or ""
        timestamp = event.get("timestamp")
        timestamp = None if timestamp is None else float(timestamp)
        if kind == "user":
            intent = (event.get("parse_data") or {}).get("intent") or {}
            name = intent.get("name")
            confidence = round(float(intent.get("confidence") or 0.0), 4)
            transcript.append(
                TranscriptLine(
                    role="customer",
                    text=text,
                    timestamp=timestamp,
                    intent=None if name is None else str(name),
                    confidence=confidence,
                    sentiment=None if text.startswith("/") else sentiment(text),
                )
            )
            if name:
                intents.append(IntentScore(name=str(name), confidence=confidence))
        elif kind == "bot" and text:
            transcript.append(TranscriptLine(role="bot", text=text, timestamp=timestamp))
    return Summary(text=why, intents=tuple(intents), transcript=tuple(transcript))


def handoff_reasons(tracker: Tracker, turn: TrackerTurn, reasons: list[str]) -> list[str]:
    """The turn's reason codes; when the customer accepts an offer of a person, also
    `offer_accepted` and why the person was offered (the previous turn's audit entry)."""
    if "offer_human" not in turn.previous_replies:
        return list(reasons)
    previous = (audit_entries(tracker) or [{}])[-1]
    offered_for = list((previous.get("decision") or {}).get("reasons") or [])
    if not offered_for and (previous.get("signals") or {}).get("feedback") == "not_helped":
        offered_for = ["not_helped"]
    combined = [*reasons, "offer_accepted", *offered_for]
    return list(dict.fromkeys(combined))


def ticket_request(ctx: TurnContext) -> TicketRequest:
    tracker, decision = ctx.tracker, ctx.assessment.decision
    reasons = handoff_reasons(tracker, ctx.turn, decision.reasons)
    customer = validation.customer_info((tracker.latest_message or {}).get("metadata"))
    return TicketRequest(
        conversation_id=tracker.sender_id,
        customer_id=customer.customer_id or tracker.sender_id,
        customer_name=customer.display_name,
        verified=customer.verified,
        reasons=reasons,
        priority=decision.priority,
        topic=decision.topic,
        summary=summary(tracker, reasons, ctx.assessment.entry["why"]),
    )


def _answer_only(turn: TrackerTurn, answer: Answer) -> list[dict[str, Any]]:
    """The routine answer to the turn, if it has one, without the closing question."""
    scratch = CollectingDispatcher()
    answer(turn, scratch)
    return [m for m in scratch.messages if str(m.get("reply", "")).startswith("answer:")]


async def start(ctx: TurnContext) -> list[EventType]:
    """Hand off now: the sensitive rule's advice (scam, crisis...) first, else the routine
    answer when there is one (e.g. how to freeze a card)."""
    dispatcher, decision = ctx.dispatcher, ctx.assessment.decision
    advised = advise(dispatcher, decision, ctx.policy)
    if not advised and "explicit_request" not in decision.reasons:
        dispatcher.messages.extend(_answer_only(ctx.turn, ctx.answer))
    intro = next((INTRO[r] for r in decision.reasons if r in INTRO), None)
    if any(r.startswith("sensitive:") for r in decision.reasons):
        intro = "handoff_sensitive"
    store = mode_store()
    try:
        request = ticket_request(ctx)
        state = await store.request(request)
    except Exception:
        log.exception("could not open a ticket for %s", ctx.conversation_id)
        action_metrics.ERRORS.labels("handoff_failed").inc()
        say(dispatcher, "handoff_unavailable")
        return []
    for reason in request.reasons:
        action_metrics.HANDOFFS.labels(reason).inc()
    say(dispatcher, intro or "handoff_requested")
    state = await store.sync(state.conversation_id)  # a free agent may have it already
    if state.mode == ConversationMode.AGENT:
        say(dispatcher, "handoff_assigned")
    else:
        await tell_where(dispatcher, state, ctx.policy)
    return [
        SlotSet("handoff_mode", state.mode.value),
        SlotSet("handoff_ticket", state.ticket_id),
        SlotSet("handoff_reasons", request.reasons),
    ]


async def tell_where(dispatcher: CollectingDispatcher, state: HandoffState, policy: Policy) -> None:
    """Position and wait; or, honestly, that the team is closed or nobody is online.

    An agent who is online answers whatever the clock says, so opening hours only decide which
    honest message a customer gets when nobody is there.
    """
    store = mode_store()
    try:
        online = await store.queue.agents_available(state.topic or policy.default_topic)
        waiting = await store.queue.waiting(state.ticket_id or "")
    except Exception:
        log.exception("queue position of %s unavailable", state.conversation_id)
        online, waiting = 0, UNKNOWN_PLACE
    if online == 0:
        hours = policy.handoff.opening_hours
        if not hours.is_open(datetime.now(timezone.utc)):
            say(dispatcher, "handoff_closed", hours=hours_text(policy))
        else:
            say(dispatcher, "handoff_no_agents")
        return
    say(
        dispatcher,
        "handoff_queued",
        position=waiting.position or 1,
        eta=eta_text(waiting.eta_seconds),
    )


def hours_text(policy: Policy) -> str:
    hours = policy.handoff.opening_hours
    days = "every day" if len(hours.days) == 7 else ", ".join(d.capitalize() for d in hours.days)
    return f"{hours.open}-{hours.close} ({hours.timezone} time), {days}"


async def while_waiting(ctx: TurnContext) -> list[EventType]:
    """Waiting: routine answers go on; asking for a person again tells where they stand."""
    dispatcher, state = ctx.dispatcher, ctx.state
    if ctx.assessment.signals.explicit_request:
        try:
            waiting = await mode_store().queue.waiting(state.ticket_id or "")
        except Exception:
            waiting = UNKNOWN_PLACE
        say(
            dispatcher,
            "already_waiting",
            position=waiting.position or 1,
            eta=eta_text(waiting.eta_seconds),
        )
        return []
    advised = advise(dispatcher, ctx.assessment.decision, ctx.policy)
    events = [] if advised else ctx.answer(ctx.turn, dispatcher)
    await offer_contact_if_waited_too_long(dispatcher, state, ctx.policy)
    return events


async def offer_contact_if_waited_too_long(
    dispatcher: CollectingDispatcher, state: HandoffState, policy: Policy
) -> bool:
    """Past the wait limit, offer once to leave an email instead of waiting (ticket kept)."""
    if state.mode != ConversationMode.WAITING or state.contact_offered or state.contact_email:
        return False
    if state.waited_seconds() <= policy.handoff.wait_limit_seconds:
        return False
    say(dispatcher, "wait_limit")
    try:
        await mode_store().mark_contact_offered(state.conversation_id)
    except Exception:
        log.exception("could not mark the contact offer of %s", state.conversation_id)
    return True


async def cancel(ctx: TurnContext) -> list[EventType]:
    """The customer withdraws the request: the ticket is abandoned, the bot carries on."""
    dispatcher, state = ctx.dispatcher, ctx.state
    if state.mode != ConversationMode.WAITING:
        say(dispatcher, "nothing_to_cancel")
        return []
    try:
        await mode_store().cancel(state.conversation_id)
    except AgentAlreadyJoined:  # an agent took it a moment before the cancel: stay with them
        say(dispatcher, "cancel_too_late")
        return []
    except Exception:
        log.exception("could not cancel the request of %s", state.conversation_id)
        say(dispatcher, "handoff_unavailable")
        return []
    say(dispatcher, "cancelled")
    return [SlotSet("handoff_mode", ConversationMode.BOT.value), SlotSet("handoff_ticket", None)]


def ask_email(ctx: TurnContext) -> list[EventType]:
    """The customer offers to leave contact details: ask for the email (only while waiting)."""
    dispatcher = ctx.dispatcher
    if ctx.state.mode != ConversationMode.WAITING:
        say(dispatcher, "continue_with_bot")
        return []
    say(dispatcher, "ask_email")
    return [SlotSet("awaiting_contact", True)]


async def take_email(ctx: TurnContext) -> list[EventType] | None:
    """The email asked for; None (ask no more) when the message is something else."""
    turn, dispatcher, state = ctx.turn, ctx.dispatcher, ctx.state
    match = EMAIL.search(turn.text or "")
    if match is None:
        if "@" in (turn.text or ""):
            say(dispatcher, "email_invalid")
            return []
        return None
    email = validation.email(match.group(0))
    if email is None:
        say(dispatcher, "email_invalid")
        return []
    try:
        await mode_store().set_contact(state.conversation_id, email)
    except Exception:
        log.exception("could not store the email of %s", state.conversation_id)
        say(dispatcher, "handoff_unavailable")
        return [SlotSet("awaiting_contact", False)]
    say(dispatcher, "email_saved", email=email)
    return [SlotSet("awaiting_contact", False), SlotSet("contact_email", email)]


class ActionHandback(Action):
    """The agent returned the conversation: greet the customer back and ask for a rating."""

    def name(self) -> str:
        return "action_handback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        state = await current_state(tracker.sender_id, tracker)
        if state.mode == ConversationMode.AGENT:  # not handed back yet: never talk over a person
            return []
        raw = tracker.get_slot("escalation_state")
        signal_state = SignalState.from_slot(raw)
        fresh = signal_state.copy(
            update={"failed_turns": 0, "fallback_streak": 0, "negative_streak": 0}
        )
        say(dispatcher, "handback")
        events: list[EventType] = [
            SlotSet("handoff_mode", state.mode.value),
            SlotSet("handoff_ticket", state.ticket_id),
            SlotSet("awaiting_contact", False),
            SlotSet("escalation_state", fresh.dict()),
        ]
        return events + await csat.ask(dispatcher, tracker.sender_id)


class ActionWaitCheck(Action):
    """Run by the gateway for a customer waiting without writing (`bot.handoff.check_wait_in_rasa`):
    past the wait limit, offers to leave contact details; otherwise says nothing."""

    def __init__(self, policy: Policy = POLICY) -> None:
        self._policy = policy

    def name(self) -> str:
        return "action_wait_check"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        state = await current_state(tracker.sender_id, tracker)
        await offer_contact_if_waited_too_long(dispatcher, state, self._policy)
        return []
