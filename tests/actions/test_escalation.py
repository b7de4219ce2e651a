"""The escalation gate's measure-and-decide step (`actions/escalation.py`), without Redis: the
audit entry's one-line "why" comes from the policy the step was given."""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.context import POLICY
from actions.escalation import assess
from actions.turn import read_turn
from bot.escalation import Verdict
from bot.handoff import ConversationMode


def unclear_turn() -> Tracker:
    latest = {
        "text": "asdf qwer",
        "intent": {"name": "nlu_fallback", "confidence": 0.2},
        "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.2}],
    }
    events = [{"event": "user", "text": "asdf qwer", "parse_data": latest}]
    return Tracker("customer-1", {}, latest, events, False, None, {}, "action_listen")


def test_the_why_of_a_quiet_turn_names_the_threshold_of_the_given_policy():
    patient = POLICY.copy(
        update={"failed_turns": POLICY.failed_turns.copy(update={"offer_after": 5})}, deep=True
    )
    tracker = unclear_turn()
    turn = read_turn(tracker)

    with_patient = assess(tracker, turn, ConversationMode.BOT, patient)
    with_shipped = assess(tracker, turn, ConversationMode.BOT, POLICY)

    assert with_patient.decision.action is Verdict.none
    assert with_patient.entry["why"].startswith("no rule fired: failed turns 1/5,")
    assert with_shipped.entry["why"].startswith("no rule fired: failed turns 1/2,")


def test_the_mode_is_recorded_in_the_signals_as_its_plain_value():
    tracker = unclear_turn()
    assessment = assess(tracker, read_turn(tracker), ConversationMode.WAITING)
    assert assessment.entry["signals"]["mode"] == "waiting"
    assert assessment.decision.held_back == "mode:waiting"
