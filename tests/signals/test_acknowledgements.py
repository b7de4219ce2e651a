"""Replies to an answer typed the way customers type (issue 13): a short acknowledgement the NLU
misreads is a "yes", "that didn't help" in words is a failed turn, "did that already" is not a
"yes"; and a clear new question starts the failed count again. Through the shipped policy."""

from __future__ import annotations

import pytest

from bot.config import PROJECT_ROOT
from bot.escalation import Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, acknowledgement, observe

POLICY = load_policy(PROJECT_ROOT / "escalation_policy.yml")
CONFIG = POLICY.signal_config()
ANSWERED = ["answer:transaction_charged_twice", "did_that_help"]


def after_answer(text: str, intent: str, confidence: float = 0.3, **extra):
    state = SignalState()
    first = SignalTurn(
        "charged twice for one coffee", "transaction_charged_twice", 0.95, familiarity=0.8
    )
    _, state = observe(state, first, CONFIG)
    turn = SignalTurn(text, intent, confidence, [(intent, confidence)], list(ANSWERED), **extra)
    signals, state = observe(state, turn, CONFIG)
    return signals, evaluate(signals, POLICY), state


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("ok fair enough", "deny"),
        ("ok ill wait for it to drop off", "nlu_fallback"),
        ("ok fine", "nlu_fallback"),
        ("cool cheers", "out_of_scope"),
        ("merci", "out_of_scope"),
        ("au revoir", "out_of_scope"),
        ("ah ok, makes sense", "card_payment_fee_charged"),
    ],
)
def test_a_misread_acknowledgement_is_a_yes_not_a_failed_turn(text, intent):
    signals, decision, _ = after_answer(text, intent)
    assert signals.acknowledged and signals.intent == "affirm"
    assert not signals.failed and signals.feedback == "helped"
    assert decision.action is Verdict.none


@pytest.mark.parametrize(
    ("text", "intent", "confidence"),
    [
        ("ok and apple pay?", "apple_pay_or_google_pay", 0.5),  # a question
        ("ok what about the fee", "exchange_charge", 0.5),  # a new question without "?"
        ("ok but it still doesn't work", "nlu_fallback", 0.3),  # a persistence cue
        ("ok thanks for nothing", "thanks", 0.5),  # sarcasm
        ("ok my card was stolen", "nlu_fallback", 0.3),  # a sensitive phrase
        ("ok can i speak to someone", "nlu_fallback", 0.3),  # a request for a person
        ("ok how do I change my pin", "change_pin", 0.95),  # a clear new topic
        ("no", "deny", 0.99),  # read right: the NLU's "no" stands
        ("thanks", "thanks", 0.99),  # read right: nothing to correct
    ],
)
def test_questions_complaints_and_well_read_replies_are_not_acknowledgements(
    text, intent, confidence
):
    turn = SignalTurn(text, intent, confidence, [(intent, confidence)], list(ANSWERED))
    assert not acknowledgement(turn, CONFIG)


@pytest.mark.parametrize(
    "text",
    [
        "oh great, really helpful, thanks for nothing",
        "that didn't help at all",
        "that's not what I asked",
        "you didn't answer my question",
        "not very helpful",
    ],
)
def test_saying_the_answer_did_not_help_is_a_failed_turn_and_offers_a_person(text):
    signals, decision, _ = after_answer(text, "thanks", 0.5)
    assert signals.said_not_helped and signals.feedback == "not_helped" and signals.failed
    assert decision.action is Verdict.offer and "not_helped" in decision.reasons


def test_a_complaint_right_after_an_offer_is_left_to_the_cooldown():
    state = SignalState()
    turn = SignalTurn("that didn't help", "deny", 0.9, [("deny", 0.9)], ["offer_human"])
    signals, _ = observe(state, turn, CONFIG)
    assert not signals.said_not_helped


def test_i_did_that_already_read_as_yes_is_a_loop_not_a_confirmation():
    signals, _, state = after_answer("i did that already", "affirm", 0.16)
    assert signals.feedback is None and signals.intent is None
    assert signals.persistence == "did that already"
    assert signals.loop and signals.failed and signals.kept_topic
    assert state.answered.get("transaction_charged_twice") != "helped"


def test_a_clear_new_question_after_an_unclear_turn_starts_the_count_again():
    state = SignalState()
    signals, state = observe(state, SignalTurn("my card came today", "nlu_fallback", 0.15), CONFIG)
    assert signals.failed_turns == 1
    clear = SignalTurn(
        "how do i activate it",
        "activate_my_card",
        0.99,
        [("activate_my_card", 0.99)],
        ["rephrase"],
        familiarity=0.82,
    )
    signals, state = observe(state, clear, CONFIG)
    assert signals.failed_turns == 0
    follow = SignalTurn(
        "and can i use it straight away?", "nlu_fallback", 0.15, [], ["answer:activate_my_card"]
    )
    signals, state = observe(state, follow, CONFIG)
    assert signals.failed_turns == 1 and evaluate(signals, POLICY).action is Verdict.none


@pytest.mark.parametrize(("confidence", "familiarity"), [(0.5, 0.8), (0.99, 0.3)])
def test_an_unsure_or_unfamiliar_answer_does_not_start_the_count_again(confidence, familiarity):
    state = SignalState()
    _, state = observe(state, SignalTurn("the thing", "nlu_fallback", 0.15), CONFIG)
    guess = SignalTurn(
        "how do i sort it",
        "activate_my_card",
        confidence,
        [("activate_my_card", confidence)],
        ["rephrase"],
        familiarity=familiarity,
    )
    signals, state = observe(state, guess, CONFIG)
    assert signals.failed_turns >= 1
    again = SignalTurn("whatever", "nlu_fallback", 0.15, [], [])
    signals, _ = observe(state, again, CONFIG)
    assert signals.failed_turns >= 2 and evaluate(signals, POLICY).action is Verdict.offer


@pytest.mark.parametrize(
    ("text", "intent", "confidence", "familiarity"),
    [
        ("hola, mi tarjeta no funciona en el cajero", "deny", 0.19, 0.16),
        ("bitte hilfe", "greet", 0.23, 0.36),
        ("whatever", "deny", 0.27, 0.41),
    ],
)
def test_small_talk_the_nlu_is_unsure_of_on_an_unfamiliar_message_is_unclear(
    text, intent, confidence, familiarity
):
    turn = SignalTurn(text, intent, confidence, [(intent, confidence)], [], familiarity=familiarity)
    signals, _ = observe(SignalState(), turn, CONFIG)
    assert signals.intent == "nlu_fallback" and signals.unclear and signals.failed


@pytest.mark.parametrize(
    ("text", "intent", "confidence", "familiarity"),
    [
        ("ta", "thanks", 0.33, 0.51),  # sure enough
        ("hello there", "greet", 0.25, 0.7),  # familiar
        ("ok ill try in daylight", "affirm", 0.18, 0.44),  # an acknowledgement
        ("/affirm", "affirm", 0.2, 0.1),  # a button
    ],
)
def test_small_talk_read_well_enough_stands(text, intent, confidence, familiarity):
    turn = SignalTurn(text, intent, confidence, [(intent, confidence)], [], familiarity=familiarity)
    signals, _ = observe(SignalState(), turn, CONFIG)
    assert signals.intent == ("affirm" if intent == "affirm" else intent)
    assert not signals.failed
