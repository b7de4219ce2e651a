"""Every customer turn, before `action_respond` answers: measure, decide, audit, then route.

`EscalationGate.handle()` is the first thing `action_respond` does on every turn:

1. read the conversation's handoff state (Redis, repaired from the ticket's state);
2. measure the turn (`bot.signals.observe`, state carried in the `escalation_state` slot) and ask
   the policy (`bot.escalation.evaluate`);
3. record an audit entry (signals, decision and why) in the `escalation_audit` slot and in the
   Redis streams `<ns>:audit:<conversation id>` and `<ns>:escalation:decisions`;
4. route: silent while an agent holds the conversation; pending answers (rating, comment, email);
   the escalation intents (cancel, keep chatting, leave contact, rating); while waiting, routine
   answers plus the queue position when asked; otherwise hand off, answer and offer a person, or
   just answer (and ask for a rating after goodbye).

The policy is `actions.context.POLICY`, loaded when the actions are imported, so the action server
refuses to start on a bad `escalation_policy.yml` and says why. The turn travels through the steps
as one `actions.context.TurnContext`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rasa_sdk.events import EventType, SlotSet

from actions import csat, handoff, validation
from actions.advice import advise
from actions.connections import redis_client
from actions.context import POLICY, Answer, Assessment, TurnContext, audit_entries
from actions.escalation_messages import OFFER_TAG, say
from actions.turn import TrackerTurn
from bot import keys
from bot.config import get_settings
from bot.escalation import Decision, Policy, Verdict, evaluate
from bot.handoff import ConversationMode
from bot.retention import min_stream_id
from bot.signals import SignalState, SignalTurn, TurnSignals, observe

if TYPE_CHECKING:
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

log = logging.getLogger(__name__)

AUDIT_SLOT_TURNS = 30
CONTROL_INTENTS = ("cancel_handoff", "continue_with_bot", "leave_contact", "csat_rating")
QUESTION_TAGS = ("did_that_help", "rephrase", "rephrase_no_topics", "unfamiliar", "clarify")


def explain(signals: TurnSignals, decision: Decision, policy: Policy) -> str:
    """Why `policy` did or did not escalate, in one line for a reviewer."""
    if decision.held_back:
        return f"{', '.join(decision.reasons)} fired but held back ({decision.held_back})"
    if decision.action is Verdict.none:
        return (
            f"no rule fired: failed turns {signals.failed_turns}/{policy.failed_turns.offer_after}, "
            f"sentiment {signals.sentiment}, negative streak {signals.negative_streak}"
        )
    return (
        f"{decision.action.value}: {', '.join(decision.reasons)} "
        f"(priority {decision.priority_name}, topic {decision.topic})"
    )


def assess(
    tracker: Tracker, turn: TrackerTurn, mode: ConversationMode, policy: Policy = POLICY
) -> Assessment:
    """Signals of the latest turn and the policy's decision, with the audit entry to record."""
    raw = tracker.get_slot("escalation_state")
    state = SignalState.from_slot(raw)
    signal_turn = SignalTurn(
        text=turn.text,
        intent=turn.intent or None,
        confidence=turn.confidence,
        ranking=list(turn.ranking),
        bot_replies=list(turn.previous_replies),
        familiarity=turn.familiarity,
        similarity_to_answered=turn.similarity_to_answered,
        similarity_to_earlier=turn.similarity_to_earlier,
    )
    signals, next_state = observe(state, signal_turn, policy.signal_config())
    signals = signals.copy(update={"mode": str(mode)})
    decision = evaluate(signals, policy)
    entry = {
        "turn": signals.turn,
        "at": round(time.time(), 3),
        "signals": json.loads(signals.json()),
        "decision": json.loads(decision.json()),
        "why": explain(signals, decision, policy),
    }
    return Assessment(signals, decision, next_state, entry)


async def record(conversation_id: str, entry: dict[str, Any]) -> None:
    """Append the audit entry to the conversation's stream and the stream of all decisions."""
    settings = get_settings()
    ns = settings.queue_namespace
    fields = {"conversation_id": conversation_id, "entry": json.dumps(entry)}
    try:
        redis = redis_client()
        async with redis.pipeline(transaction=False) as pipe:
            key = keys.ESCALATION_AUDIT.format(ns=ns, conversation=conversation_id)
            pipe.xadd(key, fields, maxlen=2000, approximate=True)
            pipe.expire(key, settings.audit_retention_seconds)
            decisions = keys.ESCALATION_DECISIONS.format(ns=ns)
            pipe.xadd(decisions, fields, maxlen=200_000, approximate=True)
            oldest = min_stream_id(settings.history_retention_seconds)
            pipe.xtrim(decisions, minid=oldest, approximate=True)
            await pipe.execute()
    except Exception:  # the slot keeps the entry; the conversation must not fail on Redis
        log.exception("could not append the audit entry of %s to Redis", conversation_id)


class EscalationGate:
    """Runs the escalation part of every turn around `action_respond`'s answer."""

    def __init__(self, policy: Policy = POLICY) -> None:
        self.policy = policy

    async def handle(
        self,
        turn: TrackerTurn,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
        answer: Answer,
    ) -> list[EventType]:
        conversation_id = tracker.sender_id
        state = await handoff.current_state(conversation_id, tracker)
        assessment = assess(tracker, turn, state.mode, self.policy)
        await record(conversation_id, assessment.entry)
        events = [
            SlotSet("escalation_state", json.loads(assessment.state.json())),
            SlotSet("escalation_audit", _audit(tracker, assessment.entry)),
            SlotSet("handoff_mode", state.mode.value),
        ]
        context = TurnContext(
            read_in_context(turn, assessment.signals),
            tracker,
            dispatcher,
            state,
            assessment,
            answer,
            self.policy,
        )
        return events + await self.route(context)

    async def route(self, ctx: TurnContext) -> list[EventType]:
        mode = ctx.state.mode
        if mode == ConversationMode.AGENT:
            return []  # a person holds the conversation: the bot never answers over them
        pending, cleared = await self.pending_input(ctx)
        if pending is not None:
            return pending
        if ctx.turn.intent in CONTROL_INTENTS:
            return cleared + await self.control(ctx)
        if mode == ConversationMode.WAITING:
            return cleared + await handoff.while_waiting(ctx)
        decision = ctx.assessment.decision
        if decision.action is Verdict.handoff:
            return cleared + await handoff.start(ctx)
        # a sensitive topic gets its rule's advice (scam, crisis...) in place of a routine answer
        advised = advise(ctx.dispatcher, decision, ctx.policy)
        events = cleared + ([] if advised else ctx.answer(ctx.turn, ctx.dispatcher))
        if decision.action is Verdict.offer:
            offer(ctx.dispatcher, ctx.assessment)
        elif ctx.turn.intent == "goodbye":
            events += await csat.ask(ctx.dispatcher, ctx.conversation_id)
        return events

    async def pending_input(
        self, ctx: TurnContext
    ) -> tuple[list[EventType] | None, list[EventType]]:
        """The answer to what the escalation asked last turn (rating, comment, email), if it is
        one; else None and the events that stop waiting for it. A message that calls for a
        person (explicit request, sensitive topic) is never taken as a comment."""
        cleared: list[EventType] = []
        stage = ctx.tracker.get_slot("csat_stage")
        stage = stage if stage in csat.STAGES else None
        if stage and ctx.assessment.decision.action is Verdict.handoff:
            return None, [SlotSet("csat_stage", None)]
        if stage:
            taken = await csat.take_answer(stage, ctx)
            if taken is not None:
                return taken, cleared
            cleared.append(SlotSet("csat_stage", None))
        if validation.flag(ctx.tracker.get_slot("awaiting_contact")):
            if ctx.state.mode == ConversationMode.WAITING:
                taken = await handoff.take_email(ctx)
                if taken is not None:
                    return taken, cleared
            cleared.append(SlotSet("awaiting_contact", False))
        return None, cleared

    async def control(self, ctx: TurnContext) -> list[EventType]:
        intent = ctx.turn.intent
        if intent == "cancel_handoff":
            return await handoff.cancel(ctx)
        if intent == "leave_contact":
            return handoff.ask_email(ctx)
        # csat_rating here is a rating nobody asked for, or a malformed one (an asked-for, valid
        # rating is taken by pending_input): never stored, the customer just carries on
        waiting = ctx.state.mode == ConversationMode.WAITING
        say(ctx.dispatcher, "keep_waiting" if waiting else "continue_with_bot")
        return []


def read_in_context(turn: TrackerTurn, signals: TurnSignals) -> TrackerTurn:
    """The turn as the answer sees it: about the topic it keeps (a restated or short follow-up
    keeps the previous topic), a "no" when the customer says the bot did not help, a "yes" for a
    short acknowledgement the NLU misread, with what the signals found."""
    if signals.kept_topic and signals.topic:
        intent = signals.topic
    elif signals.said_not_helped:
        intent = "deny"  # "thanks for nothing": sorry, and a person
    elif (signals.intent or "") != (turn.intent or ""):
        # the signals corrected the NLU: "ok fair enough" is a "yes"; "i did that already" is
        # not, nor is "hola, mi tarjeta no funciona" a "no": the bot asks instead
        intent = signals.intent or "nlu_fallback"
    else:
        intent = turn.intent
    return replace(
        turn,
        intent=intent,
        unfamiliar=signals.unfamiliar,
        ambiguous=signals.ambiguous,
        kept_topic=signals.kept_topic,
        restated=signals.restated,
        repeat_request=signals.repeat_request,
        topic_helped=signals.topic_status == "helped",
    )


def offer(dispatcher: CollectingDispatcher, assessment: Assessment) -> None:
    """Offer a person in place of the bot's closing question (unless it already offered one)."""
    tags = [m.get("reply") for m in dispatcher.messages]
    if OFFER_TAG in tags:
        return
    dispatcher.messages[:] = [m for m in dispatcher.messages if m.get("reply") not in QUESTION_TAGS]
    reasons = set(assessment.decision.reasons)
    if reasons & {
        "negative_sentiment",
        "negative_failed_turn",
        "negative_streak",
        "sentiment_falling",
    }:
        name = "offer_mood"
    elif any(r.startswith("sensitive:") for r in reasons):
        name = "offer_sensitive"
    elif "conversation_length" in reasons and "failed_turns" not in reasons:
        name = "offer_length"
    else:
        name = "offer_failed_turns"
    say(dispatcher, name, tag=OFFER_TAG)


def _audit(tracker: Tracker, entry: dict[str, Any]) -> list[dict[str, Any]]:
    previous = audit_entries(tracker)
    return [*previous, entry][-AUDIT_SLOT_TURNS:]
