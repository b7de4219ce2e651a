"""Context in the signals: a restated need is a loop, a short follow-up keeps the topic, an
unfamiliar message is unclear; through the shipped policy's thresholds (escalation_policy.yml)."""

from __future__ import annotations

from bot.config import PROJECT_ROOT
from bot.escalation import Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, TurnSignals, observe, persistence_cue

POLICY = load_policy(PROJECT_ROOT / "escalation_policy.yml")
CONFIG = POLICY.signal_config()
ANSWERED = ["answer:declined_card_payment", "did_that_help"]


def after_answer(
    text: str,
    intent: str,
    *,
    confidence: float = 0.9,
    similarity: float | None = 0.1,
    familiarity: float | None = 0.8,
) -> tuple[TurnSignals, SignalState]:
    """The customer's message right after the bot answered `declined_card_payment`."""
    state = SignalState()
    first = SignalTurn("my card payment failed", "declined_card_payment", 0.9, familiarity=0.8)
    _, state = observe(state, first, CONFIG)
    turn = SignalTurn(
        text,
        intent,
        confidence,
        [(intent, confidence)],
        list(ANSWERED),
        familiarity=familiarity,
        similarity_to_answered=similarity,
    )
    return observe(state, turn, CONFIG)


def test_typed_follow_up_with_a_persistence_cue_is_a_loop_whatever_the_nlu_reads():
    signals, _ = after_answer("tried again, same thing", "failed_transfer", similarity=0.35)
    assert signals.restated and signals.loop and signals.failed
    assert signals.failed_why == ["loop"]
    assert signals.topic == "declined_card_payment" and signals.kept_topic
    assert signals.persistence in ("again", "same thing")


def test_two_typed_follow_ups_reach_the_offer_of_a_person():
    state = SignalState()
    _, state = observe(
        state, SignalTurn("my card payment failed", "declined_card_payment", 0.9), CONFIG
    )
    first = SignalTurn(
        "tried again, same thing",
        "failed_transfer",
        0.9,
        bot_replies=list(ANSWERED),
        similarity_to_answered=0.35,
    )
    signals, state = observe(state, first, CONFIG)
    assert signals.failed_turns == 1
    # the bot said its answer did not solve it and offered a person; the customer kept chatting
    second = SignalTurn("still not working", "failed_transfer", 0.9, bot_replies=[])
    signals, state = observe(state, second, CONFIG)
    assert signals.failed_turns <= 2


def test_restated_need_in_other_words_is_a_loop_without_any_cue():
    signals, _ = after_answer(
        "the payment at the shop got rejected", "card_not_working", similarity=0.8
    )
    assert signals.restated and signals.loop
    assert signals.persistence is None


def test_capitals_are_a_persistence_cue():
    assert persistence_cue("why is this HAPPENING", CONFIG) == "capitals"
    assert persistence_cue("my IBAN is wrong", CONFIG) is None  # a 4-letter acronym is not shouting
    signals, _ = after_answer("DECLINED", "declined_transfer", similarity=0.2)
    assert signals.restated


def test_a_new_question_after_an_answer_is_not_a_loop():
    signals, _ = after_answer(
        "and what are the fees for sending money abroad?", "transfer_fee_charged", similarity=0.1
    )
    assert not signals.loop and not signals.failed
    assert signals.topic == "transfer_fee_charged" and not signals.kept_topic


def test_short_follow_up_read_as_another_topic_keeps_the_topic_and_is_unclear():
    signals, _ = after_answer("the one at tesco", "card_acceptance", confidence=0.5)
    assert signals.kept_topic and signals.topic == "declined_card_payment"
    assert signals.unclear and not signals.loop


def test_short_follow_up_that_clearly_names_a_new_topic_changes_the_topic():
    signals, _ = after_answer("how do I top up?", "top_up_by_card", confidence=0.95)
    assert not signals.kept_topic and signals.topic == "top_up_by_card"
    assert not signals.failed


def test_nothing_is_restated_once_the_customer_said_the_answer_helped():
    state = SignalState()
    _, state = observe(
        state, SignalTurn("my card payment failed", "declined_card_payment", 0.9), CONFIG
    )
    _, state = observe(state, SignalTurn("yes", "affirm", 0.9, bot_replies=list(ANSWERED)), CONFIG)
    turn = SignalTurn(
        "still, can I pay by card abroad?",
        "card_acceptance",
        0.6,
        bot_replies=["glad_it_helped"],
        similarity_to_answered=0.4,
    )
    signals, _ = observe(state, turn, CONFIG)
    assert not signals.loop and not signals.kept_topic


def test_asking_for_the_answer_again_is_not_a_loop():
    signals, _ = after_answer("can you repeat that", "declined_card_payment", similarity=0.1)
    assert signals.repeat_request
    assert not signals.loop and not signals.failed


def test_thanks_and_goodbye_never_restate_a_need():
    for text, intent in [("thanks, that's the same as before", "thanks"), ("bye again", "goodbye")]:
        signals, _ = after_answer(text, intent, similarity=0.9)
        assert not signals.restated and not signals.failed, text


def test_unfamiliar_message_is_unclear_even_when_the_classifier_is_sure():
    state = SignalState()
    turn = SignalTurn(
        "should I send money to someone I met online?",
        "transfer_fee_charged",
        0.97,
        familiarity=POLICY.context.unfamiliar_below - 0.1,
    )
    signals, _ = observe(state, turn, CONFIG)
    assert signals.unfamiliar and signals.unclear and signals.failed_why == ["unclear"]
    familiar = SignalTurn(
        "what's the fee for a transfer?",
        "transfer_fee_charged",
        0.97,
        familiarity=POLICY.context.unfamiliar_below + 0.1,
    )
    signals, _ = observe(SignalState(), familiar, CONFIG)
    assert not signals.unfamiliar and not signals.failed


def test_a_loop_and_an_unfamiliar_turn_offer_a_person_on_the_second_failed_turn():
    state = SignalState()
    turn = SignalTurn("my ex keeps moving money out", "transfer_into_account", 0.9, familiarity=0.3)
    signals, state = observe(state, turn, CONFIG)
    assert evaluate(signals, POLICY).action is Verdict.none
    turn = SignalTurn(
        "he still does it",
        "transfer_into_account",
        0.9,
        bot_replies=["unfamiliar"],
        familiarity=0.3,
    )
    signals, state = observe(state, turn, CONFIG)
    assert signals.failed_turns == 2
    assert evaluate(signals, POLICY).action is Verdict.offer
