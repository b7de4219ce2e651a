"""Handing a conversation to a person, the wait, cancelling, contact details and the handback.

`start()` opens the ticket through the queue with the bot's summary for the agent (intents with
confidences, sentiment per customer message, the transcript, the reasons), then tells the customer
their position and expected wait, or honestly that nobody is online or that the team is closed (the
ticket is kept and they can leave an email). While waiting the customer keeps their place and may
ask routine questions; past the policy's wait limit they are offered to leave an email instead.
`ActionHandback` (`action_handback`) runs when the gateway returns the conversation to the bot
(`bot.handoff.resume_in_rasa`): it greets the customer back and asks for a rating.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import csat
from actions.connections import handoff_store
from actions.escalation_messages import eta_text, say
from actions.turn import Turn
from bot.escalation import Policy
from bot.handoff import HandoffState, Summary, TicketRequest, Waiting
from bot.sentiment import sentiment
from bot.signals import SignalState

log = logging.getLogger(__name__)

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
INTRO = {"explicit_request": "handoff_requested", "failed_turns": "handoff_failed_turns"}


async def current_state(conversation_id: str, tracker: Tracker) -> HandoffState:
    """The handoff state from Redis (synced with the ticket); the slots' view if Redis is down."""
    try:
        return await handoff_store().sync(conversation_id)
    except Exception:
        log.exception("handoff state of %s unavailable; using the tracker's slots", conversation_id)
        return HandoffState(
            conversation_id=conversation_id,
            mode=tracker.get_slot("handoff_mode") or "bot",
            ticket_id=tracker.get_slot("handoff_ticket"),
        )


def summary(tracker: Tracker, reasons: list[str], why: str) -> Summary:
    """The bot's summary for the agent from the conversation's events."""
    transcript: list[dict[str, Any]] = []
    intents: list[dict[str, Any]] = []
    for event in tracker.events:
        kind, text = event.get("event"), event.get("text") or ""
        if kind == "user":
            intent = (event.get("parse_data") or {}).get("intent") or {}
            line = {
                "role": "customer",
                "text": text,
                "timestamp": event.get("timestamp"),
                "intent": intent.get("name"),
                "confidence": round(float(intent.get("confidence") or 0.0), 4),
                "sentiment": None if text.startswith("/") else sentiment(text),
            }
            transcript.append(line)
            if line["intent"]:
                intents.append({"name": line["intent"], "confidence": line["confidence"]})
        elif kind == "bot" and text:
            transcript.append({"role": "bot", "text": text, "timestamp": event.get("timestamp")})
    return Summary(text=why, intents=intents, transcript=transcript)


def handoff_reasons(tracker: Tracker, turn: Turn, reasons: list[str]) -> list[str]:
    """The turn's reason codes; when the customer accepts an offer of a person, also
    `offer_accepted` and why the person was offered (the previous turn's audit entry)."""
    if "offer_human" not in turn.previous_replies:
        return list(reasons)
    previous = (tracker.get_slot("escalation_audit") or [{}])[-1]
    offered_for = list((previous.get("decision") or {}).get("reasons") or [])
    if not offered_for and (previous.get("signals") or {}).get("feedback") == "not_helped":
        offered_for = ["not_helped"]
    combined = [*reasons, "offer_accepted", *offered_for]
    return list(dict.fromkeys(combined))


def ticket_request(tracker: Tracker, turn: Turn, assessment: Any) -> TicketRequest:
    decision = assessment.decision
    reasons = handoff_reasons(tracker, turn, decision.reasons)
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    customer = metadata.get("customer") if isinstance(metadata.get("customer"), dict) else {}
    return TicketRequest(
        conversation_id=tracker.sender_id,
        customer_id=str(customer.get("id") or metadata.get("customer_id") or tracker.sender_id),
        customer_name=str(customer.get("display_name") or metadata.get("customer_name") or ""),
        verified=bool(customer.get("verified") or metadata.get("verified") or False),
        reasons=reasons,
        priority=decision.priority,
        topic=decision.topic,
        summary=summary(tracker, reasons, assessment.entry["why"]),
    )


def _answer_only(turn: Turn, answer: Any) -> list[dict[str, Any]]:
    """The routine answer to the turn, if it has one, without the closing question."""
    scratch = CollectingDispatcher()
    answer(turn, scratch)
    return [m for m in scratch.messages if str(m.get("reply", "")).startswith("answer:")]


async def start(
    turn: Turn,
    tracker: Tracker,
    dispatcher: CollectingDispatcher,
    answer: Any,
    assessment: Any,
    policy: Policy,
) -> list[EventType]:
    """Hand off now: routine answer first when there is one (e.g. how to freeze a card)."""
    decision = assessment.decision
    if "explicit_request" not in decision.reasons:
        dispatcher.messages.extend(_answer_only(turn, answer))
    intro = next((INTRO[r] for r in decision.reasons if r in INTRO), None)
    if any(r.startswith("sensitive:") for r in decision.reasons):
        intro = "handoff_sensitive"
    store = handoff_store()
    try:
        request = ticket_request(tracker, turn, assessment)
        state = await store.request(request)
    except Exception:
        log.exception("could not open a ticket for %s", tracker.sender_id)
        say(dispatcher, "handoff_unavailable")
        return []
    say(dispatcher, intro or "handoff_requested")
    state = await store.sync(state.conversation_id)  # a free agent may have it already
    if state.mode == "agent":
        say(dispatcher, "handoff_assigned")
    else:
        await tell_where(dispatcher, state, policy)
    return [
        SlotSet("handoff_mode", state.mode),
        SlotSet("handoff_ticket", state.ticket_id),
        SlotSet("handoff_reasons", request.reasons),
    ]


async def tell_where(dispatcher: CollectingDispatcher, state: HandoffState, policy: Policy) -> None:
    """Position and wait; or, honestly, that the team is closed or nobody is online.

    An agent who is online answers whatever the clock says, so opening hours only decide which
    honest message a customer gets when nobody is there.
    """
    store = handoff_store()
    try:
        online = await store.queue.agents_available(state.topic or policy.default_topic)
        waiting = await store.queue.waiting(state.ticket_id or "")
    except Exception:
        log.exception("queue position of %s unavailable", state.conversation_id)
        online, waiting = 0, Waiting()
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


async def while_waiting(
    turn: Turn,
    tracker: Tracker,
    dispatcher: CollectingDispatcher,
    answer: Any,
    state: HandoffState,
    assessment: Any,
    policy: Policy,
) -> list[EventType]:
    """Waiting: routine answers go on; asking for a person again tells where they stand."""
    store = handoff_store()
    signals = assessment.signals
    if signals.explicit_request:
        try:
            waiting = await store.queue.waiting(state.ticket_id or "")
        except Exception:
            waiting = Waiting()
        say(
            dispatcher,
            "already_waiting",
            position=waiting.position or 1,
            eta=eta_text(waiting.eta_seconds),
        )
        return []
    events = answer(turn, dispatcher)
    await offer_contact_if_waited_too_long(dispatcher, state, policy)
    return events


async def offer_contact_if_waited_too_long(
    dispatcher: CollectingDispatcher, state: HandoffState, policy: Policy
) -> bool:
    """Past the wait limit, offer once to leave an email instead of waiting (ticket kept)."""
    if state.mode != "waiting" or state.contact_offered or state.contact_email:
        return False
    if state.waited_seconds() <= policy.handoff.wait_limit_seconds:
        return False
    say(dispatcher, "wait_limit")
    try:
        await handoff_store().mark_contact_offered(state.conversation_id)
    except Exception:
        log.exception("could not mark the contact offer of %s", state.conversation_id)
    return True


async def cancel(
    tracker: Tracker, dispatcher: CollectingDispatcher, state: HandoffState
) -> list[EventType]:
    """The customer withdraws the request: the ticket is abandoned, the bot carries on."""
    if state.mode != "waiting":
        say(dispatcher, "nothing_to_cancel")
        return []
    try:
        await handoff_store().cancel(state.conversation_id)
    except Exception:
        log.exception("could not cancel the request of %s", state.conversation_id)
        say(dispatcher, "handoff_unavailable")
        return []
    say(dispatcher, "cancelled")
    return [SlotSet("handoff_mode", "bot"), SlotSet("handoff_ticket", None)]


def ask_email(dispatcher: CollectingDispatcher, state: HandoffState) -> list[EventType]:
    if state.mode != "waiting":
        say(dispatcher, "continue_with_bot")
        return []
    say(dispatcher, "ask_email")
    return [SlotSet("awaiting_contact", True)]


async def take_email(
    turn: Turn, tracker: Tracker, dispatcher: CollectingDispatcher, state: HandoffState
) -> list[EventType] | None:
    """The email asked for; None (ask no more) when the message is something else."""
    match = EMAIL.search(turn.text or "")
    if match is None:
        if "@" in (turn.text or ""):
            say(dispatcher, "email_invalid")
            return []
        return None
    email = match.group(0)
    try:
        await handoff_store().set_contact(state.conversation_id, email)
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
        if state.mode == "agent":  # the gateway has not handed back yet: never talk over a person
            return []
        raw = tracker.get_slot("escalation_state")
        signal_state = SignalState.parse_obj(raw) if isinstance(raw, dict) else SignalState()
        fresh = signal_state.copy(
            update={"failed_turns": 0, "fallback_streak": 0, "negative_streak": 0}
        )
        say(dispatcher, "handback")
        events: list[EventType] = [
            SlotSet("handoff_mode", state.mode),
            SlotSet("handoff_ticket", state.ticket_id),
            SlotSet("awaiting_contact", False),
            SlotSet("escalation_state", fresh.dict()),
        ]
        return events + await csat.ask(dispatcher, tracker.sender_id)


class ActionWaitCheck(Action):
    """Run by the gateway for a customer waiting without writing (`bot.handoff.check_wait_in_rasa`):
    past the wait limit, offers to leave contact details; otherwise says nothing."""

    def __init__(self, policy: Policy | None = None) -> None:
        self._policy = policy

    def name(self) -> str:
        return "action_wait_check"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        from actions.escalation import POLICY

        state = await current_state(tracker.sender_id, tracker)
        await offer_contact_if_waited_too_long(dispatcher, state, self._policy or POLICY)
        return []
