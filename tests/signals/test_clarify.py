""" "Did you mean A or B?" in the signals: two topic intents too close to tell apart are a question
to the customer, not a failed turn; a follow-up question is not a restated need; through the
shipped policy (escalation_policy.yml)."""

from __future__ import annotations

from bot.config import PROJECT_ROOT
from bot.escalation import Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, TurnSignals, is_question, observe

POLICY = load_policy(PROJECT_ROOT / "escalation_policy.yml")
CONFIG = POLICY.signal_config()
MARGIN = CONFIG.clarify_margin


def first_turn(
    text: str, ranking: list[tuple[str, float]], replies: list[str] | None = None
) -> TurnSignals:
    top, confidence = ranking[0]
    turn = SignalTurn(text, top, confidence, ranking, replies or [], familiarity=0.8)
    return observe(SignalState(), turn, CONFIG)[0]


def test_the_shipped_policy_asks_between_close_topics():
    assert 0 < MARGIN < 0.5
    assert {"card_payment_not_recognised", "direct_debit_payment_not_recognised"} <= set(
        CONFIG.clarify_sensitive_intents
    )


def test_two_close_topics_are_ambiguous_and_not_a_failed_turn():
    ranking = [("card_arrival", 0.31), ("card_delivery_estimate", 0.31 - MARGIN / 2)]
    signals = first_turn("how long for my card", ranking)
    assert signals.ambiguous
    assert not signals.failed and signals.failed_turns == 0
    assert evaluate(signals, POLICY).action is Verdict.none


def test_a_clear_lead_is_answered():
    ranking = [("card_arrival", 0.6), ("card_delivery_estimate", 0.6 - MARGIN - 0.05)]
    assert not first_turn("how long for my card", ranking).ambiguous


def test_a_button_is_never_ambiguous():
    ranking = [("card_arrival", 0.5), ("card_delivery_estimate", 0.5 - MARGIN / 2)]
    assert not first_turn("/card_arrival", ranking).ambiguous


def test_close_to_a_non_topic_is_not_a_did_you_mean_question():
    ranking = [("card_arrival", 0.4), ("greet", 0.4 - MARGIN / 2)]
    assert not first_turn("card hello", ranking).ambiguous


def test_a_dispute_read_in_a_routine_question_asks_instead_of_handing_off():
    ranking = [
        ("direct_debit_payment_not_recognised", 0.41),
        ("extra_charge_on_statement", 0.41 - MARGIN / 2),
    ]
    signals = first_turn("lost the receipt, how do i see the charge on my statement", ranking)
    assert signals.ambiguous and signals.sensitive_intent is None
    assert evaluate(signals, POLICY).action is Verdict.none


def test_a_dispute_in_the_policy_s_words_is_handed_off_however_close():
    ranking = [
        ("card_payment_not_recognised", 0.41),
        ("extra_charge_on_statement", 0.41 - MARGIN / 2),
    ]
    signals = first_turn("i don't recognise this charge on my statement", ranking)
    assert not signals.ambiguous
    assert evaluate(signals, POLICY).action is Verdict.handoff


def test_a_scam_intent_is_never_traded_for_a_question():
    ranking = [("scam_romance", 0.4), ("receiving_money", 0.4 - MARGIN / 2)]
    signals = first_turn("my boyfriend wants me to send him money", ranking)
    assert not signals.ambiguous and signals.sensitive_intent == "scam_romance"
    assert evaluate(signals, POLICY).action is not Verdict.none


def test_still_ambiguous_right_after_the_bot_asked_is_a_failed_turn():
    ranking = [("pending_transfer", 0.3), ("transfer_timing", 0.3 - MARGIN / 2)]
    state = SignalState()
    turn = SignalTurn("my transfer", "pending_transfer", 0.3, ranking, [], familiarity=0.8)
    signals, state = observe(state, turn, CONFIG)
    assert signals.ambiguous and not signals.failed
    again = SignalTurn(
        "it still hasnt arrived", "pending_transfer", 0.3, ranking, ["clarify"], familiarity=0.8
    )
    signals, state = observe(state, again, CONFIG)
    assert signals.ambiguous and signals.failed and signals.failed_why == ["unclear"]
    third = SignalTurn("still nothing", "pending_transfer", 0.3, ranking, ["clarify"])
    signals, _ = observe(state, third, CONFIG)
    assert signals.failed_turns == 2
    assert evaluate(signals, POLICY).action is Verdict.offer


def after_answer(text: str, intent: str, similarity: float) -> TurnSignals:
    """The customer's message right after the bot answered `verify_my_identity`."""
    state = SignalState()
    first = SignalTurn("how do i verify my identity", "verify_my_identity", 0.9, familiarity=0.8)
    _, state = observe(state, first, CONFIG)
    turn = SignalTurn(
        text,
        intent,
        0.9,
        [(intent, 0.9)],
        ["answer:verify_my_identity", "did_that_help"],
        familiarity=0.8,
        similarity_to_answered=similarity,
    )
    return observe(state, turn, CONFIG)[0]


def test_a_short_follow_up_question_read_as_the_same_topic_is_not_a_loop():
    signals = after_answer("what documents?", "verify_my_identity", similarity=0.5)
    assert signals.kept_topic and not signals.restated and not signals.loop
    assert signals.failed_turns == 1  # the bot cannot answer it further: it asks
    assert evaluate(signals, POLICY).action is Verdict.none


def test_the_answered_question_asked_again_is_still_a_loop():
    signals = after_answer("how do i verify my id?", "verify_my_identity", similarity=0.9)
    assert signals.loop


def test_the_same_need_stated_again_is_still_a_loop():
    signals = after_answer("verify my identity", "verify_my_identity", similarity=0.9)
    assert signals.loop
    signals = after_answer("the verification is wrong", "unable_to_verify_identity", 0.9)
    assert signals.restated and signals.loop


def test_a_question_with_a_persistence_cue_is_a_loop():
    signals = after_answer("why does it still fail?", "verify_my_identity", similarity=0.9)
    assert signals.loop


def test_questions_are_recognised():
    assert is_question("what documents?")
    assert is_question("ok and how long does it take")
    assert not is_question("the exchange rate you charged me was wrong")


def asked_then(text: str, intent: str, reply: str = "clarify") -> TurnSignals:
    """The customer's typed message right after the bot asked what they meant."""
    ranking = [("declined_card_payment", 0.4), ("declined_transfer", 0.4 - MARGIN / 2)]
    state = SignalState()
    first = SignalTurn("card declined", "declined_card_payment", 0.4, ranking, familiarity=0.8)
    signals, state = observe(state, first, CONFIG)
    assert signals.ambiguous
    turn = SignalTurn(text, intent, 0.9, [(intent, 0.9)], [reply], familiarity=0.8)
    return observe(state, turn, CONFIG)[0]


def test_the_need_restated_instead_of_picking_is_a_failed_turn():
    signals = asked_then("STILL declined", "declined_card_payment")
    assert signals.failed and signals.failed_why == ["unclear"]
    signals = asked_then("tried again, same thing", "declined_transfer", reply="unfamiliar")
    assert signals.failed


def test_no_to_did_you_mean_is_a_failed_turn():
    assert asked_then("no", "deny").failed


def test_a_clear_question_after_did_you_mean_is_answered_normally():
    signals = asked_then("how do i order a new card", "order_physical_card")
    assert not signals.failed and not signals.ambiguous
    assert not asked_then("/declined_transfer", "declined_transfer").failed
