"""Signals of a conversation, turn by turn, through the shipped policy's one evaluate()."""

from datetime import datetime, timezone

import pytest

from bot.config import PROJECT_ROOT
from bot.escalation import OpeningHours, Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, observe

POLICY = load_policy(PROJECT_ROOT / "escalation_policy.yml")
CONFIG = POLICY.signal_config()


class Chat:
    """Feeds turns through observe() and evaluate() like action_respond does."""

    def __init__(self, mode: str = "bot"):
        self.state = SignalState()
        self.replies: list[str] = []
        self.mode = mode

    def say(self, text, intent, confidence=0.9, second=("greet", 0.05)):
        turn = SignalTurn(text, intent, confidence, [(intent, confidence), second], self.replies)
        signals, self.state = observe(self.state, turn, CONFIG)
        signals = signals.copy(update={"mode": self.mode})
        decision = evaluate(signals, POLICY)
        self.replies = []
        return signals, decision

    def bot(self, *replies):
        self.replies = list(replies)


def test_routine_question_with_follow_up_and_thanks_never_escalates():
    chat = Chat()
    for text, intent, replies in [
        ("hi", "greet", ["greet"]),
        ("my card still hasn't arrived", "card_arrival", ["answer:card_arrival", "did_that_help"]),
        ("yes thanks", "affirm", ["glad_it_helped"]),
        (
            "how much is a transfer abroad",
            "transfer_fee_charged",
            ["answer:transfer_fee_charged", "did_that_help"],
        ),
        ("great", "affirm", ["glad_it_helped"]),
        ("bye", "goodbye", ["goodbye"]),
    ]:
        signals, decision = chat.say(text, intent)
        assert decision.action is Verdict.none, (text, decision)
        assert not signals.failed
        chat.bot(*replies)


def test_margin_is_top_confidence_minus_second():
    signals, _ = Chat().say("card", "card_arrival", 0.55, ("card_delivery_estimate", 0.40))
    assert signals.margin == pytest.approx(0.15)
    assert signals.second_intent == "card_delivery_estimate"


def test_second_unclear_message_offers_a_person_not_the_first():
    chat = Chat()
    signals, decision = chat.say("blorp the wibble", "nlu_fallback", 0.2)
    assert signals.unclear and signals.failed_turns == 1
    assert decision.action is Verdict.none
    chat.bot("rephrase")
    signals, decision = chat.say("what's the weather in Paris", "out_of_scope", 0.8)
    assert signals.fallback_streak == 2 and signals.failed_turns == 2
    assert decision.action is Verdict.offer
    assert decision.reasons == ["failed_turns"]


def test_no_to_did_that_help_then_same_question_again_is_two_failed_turns():
    chat = Chat()
    chat.say("where is my card", "card_arrival")
    chat.bot("answer:card_arrival", "did_that_help")
    signals, decision = chat.say("no", "deny")
    assert signals.feedback == "not_helped" and signals.failed_why == ["not_helped"]
    assert decision.action is Verdict.offer and decision.reasons == ["not_helped"]
    chat.bot("rephrase")
    signals, decision = chat.say("my card has still not arrived", "card_arrival")
    assert signals.loop and signals.failed_why == ["loop"]
    assert decision.action is Verdict.offer


def test_asking_again_after_it_helped_is_not_a_loop():
    chat = Chat()
    chat.say("where is my card", "card_arrival")
    chat.bot("answer:card_arrival", "did_that_help")
    chat.say("yes", "affirm")
    chat.bot("glad_it_helped")
    signals, _ = chat.say("and when does it arrive if I am abroad", "card_arrival")
    assert not signals.loop


def test_declined_offer_resets_the_count_and_offers_again_after_two_more_failures():
    chat = Chat()
    chat.say("asdf", "nlu_fallback", 0.1)
    chat.bot("rephrase")
    _, decision = chat.say("qwer", "nlu_fallback", 0.1)
    assert decision.action is Verdict.offer
    chat.bot("offer_human")
    signals, decision = chat.say("/continue_with_bot", "continue_with_bot", 1.0)
    assert signals.failed_turns == 0 and signals.turns_since_offer == 1
    chat.bot("decline_noted")
    signals, decision = chat.say("zzz", "nlu_fallback", 0.1)
    assert signals.failed_turns == 1 and decision.action is Verdict.none
    chat.bot("rephrase")
    signals, decision = chat.say("yyy", "nlu_fallback", 0.1)
    assert decision.action is Verdict.offer and signals.failed_turns == 2


@pytest.mark.parametrize(
    "text",
    [
        "I want to speak to a real person",
        "can I talk to someone please",
        "agent",
        "Human please!",
        "connect me with a customer service representative",
        "my card is blocked, put me through to a member of staff",
        "chat with a live agent",
    ],
)
def test_explicit_request_in_words_hands_off_even_when_nlu_reads_another_intent(text):
    signals, decision = Chat().say(text, "card_not_working", 0.5)
    assert signals.explicit_request
    assert decision.action is Verdict.handoff and "explicit_request" in decision.reasons


@pytest.mark.parametrize(
    "text",
    [
        "what number do i call from overseas",
        "is there a number to ring from abroad",
        "can someone call me back tomorrow",
        "i'd like to request a callback",
        "could somebody look into this for me please",
        "would it be possible to speak with somebody about my account",
        "is there anyone i can actually talk to",
        "how do i get hold of someone at pennant",
        "is there a helpline",
        "customer services number?",
        "number for customer service pls",
        "please escalate this",
        "i want this escalated",
        "get your supervisor",
        "put your manager on",
        "pass me on to someone who knows what they're doing",
        "can we sort this over the phone",
        "need a human",
        "can i have a real person",
        "quiero hablar con una persona",
        "je voudrais parler a quelqu'un",
    ],
)
def test_indirect_and_polite_requests_for_a_person_hand_off(text):
    signals, decision = Chat().say(text, "card_not_working", 0.5)
    assert signals.explicit_request, text
    assert decision.action is Verdict.handoff and "explicit_request" in decision.reasons


@pytest.mark.parametrize(
    "text",
    [
        "how do i change the phone number on my account",
        "can someone else see my transactions",
        "can someone send me money from abroad",
        "how do i contact the merchant about a refund",
        "what number do i use for the sort code",
        "my help desk at work says my salary was sent",
        "i need a new card",
        "hand me the details for a transfer",
        "can i talk to my bank about this first",
    ],
)
def test_everyday_questions_with_a_phone_or_someone_are_not_requests_for_a_person(text):
    signals, _ = Chat().say(text, "edit_personal_details")
    assert not signals.explicit_request, signals.explicit_match


def test_request_human_intent_and_button_hand_off():
    _, decision = Chat().say("/request_human", "request_human", 1.0)
    assert decision.action is Verdict.handoff and decision.reasons == ["explicit_request"]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("are you a real person?", "bot_challenge"),
        ("am I talking to a human?", "card_arrival"),
        ("how do I transfer money to my sister", "transfer_into_account"),
    ],
)
def test_questions_about_the_bot_and_transfers_are_not_requests_for_a_person(text, intent):
    signals, decision = Chat().say(text, intent)
    assert not signals.explicit_request and decision.action is Verdict.none


@pytest.mark.parametrize(
    ("intent", "rule", "priority", "topic"),
    [
        ("lost_or_stolen_card", "lost_or_stolen_card", "urgent", "card_security"),
        ("compromised_card", "compromised_card", "urgent", "card_security"),
        ("card_payment_not_recognised", "unrecognised_payment", "high", "disputes"),
        ("cash_withdrawal_not_recognised", "unrecognised_payment", "high", "disputes"),
        ("direct_debit_payment_not_recognised", "unrecognised_payment", "high", "disputes"),
    ],
)
def test_sensitive_intents_hand_off_with_their_priority_and_topic(intent, rule, priority, topic):
    _, decision = Chat().say("something happened", intent)
    assert decision.action is Verdict.handoff
    assert decision.reasons == [f"sensitive:{rule}"]
    assert decision.priority_name == priority and decision.topic == topic
    assert decision.priority == POLICY.priorities[priority]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("I think this is fraud", "fraud"),
        ("I got scammed by a seller", "fraud"),
        ("I lost my job and can't afford the fees", "hardship"),
        ("I'm struggling with bills, is there any help", "hardship"),
        ("I want to make a formal complaint", "formal_complaint"),
        ("I will take this to the ombudsman", "formal_complaint"),
        ("my husband passed away last month", "bereavement"),
        ("my mum died and I am the executor", "bereavement"),
    ],
)
def test_sensitive_phrases_hand_off_whatever_the_intent(text, rule):
    signals, decision = Chat().say(text, "nlu_fallback", 0.3)
    assert rule in signals.sensitive_phrases
    assert decision.action is Verdict.handoff and f"sensitive:{rule}" in decision.reasons


@pytest.mark.parametrize(
    "text",
    ["my phone died so I could not use apple pay", "my card is dead", "I can't pay with my card"],
)
def test_everyday_phrases_are_not_sensitive(text):
    signals, _ = Chat().say(text, "card_not_working")
    assert signals.sensitive_phrases == []


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("why do you need a selfie, is it for fraud checks?", "fraud"),
        ("theres a charge on my statement, not saying its fraud, just curious", "fraud"),
        ("how do you protect my account against fraud", "fraud"),
        (
            "my card got replaced after it was stolen last year, how do I link the new one",
            "lost_or_stolen_card",
        ),
        (
            "my wallet was nicked two years ago and I still use the replacement card",
            "lost_or_stolen_card",
        ),
    ],
)
def test_a_scary_word_in_a_routine_question_is_cleared_by_the_rules_unless(text, rule):
    signals, decision = Chat().say(text, "why_verify_identity")
    assert rule not in signals.sensitive_phrases
    assert decision.action is Verdict.none


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("i think this payment is fraud", "fraud"),
        ("is this a scam? they want me to pay a fee", "fraud"),
        ("someone committed fraud on my account", "fraud"),
        ("my card was stolen last night", "lost_or_stolen_card"),
        ("my wallet got nicked on the train", "lost_or_stolen_card"),
    ],
)
def test_the_same_rules_still_fire_on_the_real_thing(text, rule):
    signals, decision = Chat().say(text, "nlu_fallback", 0.3)
    assert rule in signals.sensitive_phrases
    assert decision.action is Verdict.handoff


def test_rising_frustration_offers_a_person():
    chat = Chat()
    _, decision = chat.say("how do I top up", "top_up_by_card")
    chat.bot("answer:top_up_by_card", "did_that_help")
    signals, decision = chat.say("my top up failed, so annoying", "top_up_failed")
    assert signals.negative_streak == 1 and decision.action is Verdict.none
    chat.bot("answer:top_up_failed", "did_that_help")
    signals, decision = chat.say(
        "this is ridiculous and useless, I am so frustrated", "top_up_failed"
    )
    assert signals.negative_streak == 2
    assert decision.action is Verdict.offer
    assert {"negative_sentiment", "negative_streak"} <= set(decision.reasons)


def test_a_single_mildly_negative_message_does_not_escalate():
    _, decision = Chat().say("my card payment was declined, annoying", "declined_card_payment")
    assert decision.action is Verdict.none


def test_long_conversation_offers_once_at_the_configured_turn():
    chat = Chat()
    actions = []
    for n in range(POLICY.conversation_length.offer_at_turn + 2):
        _, decision = chat.say(f"question {n}", "exchange_rate")
        chat.bot(f"answer:x{n}")
        actions.append(decision.action)
    assert actions.count(Verdict.offer) == 1
    assert actions.index(Verdict.offer) == POLICY.conversation_length.offer_at_turn - 1


def test_nothing_is_offered_while_waiting_for_or_talking_to_a_person():
    chat = Chat(mode="waiting")
    chat.say("asdf", "nlu_fallback", 0.1)
    _, decision = chat.say("qwer", "nlu_fallback", 0.1)
    assert decision.action is Verdict.none and decision.held_back == "mode:waiting"
    assert decision.reasons == ["failed_turns"]


def test_mood_offer_is_held_back_right_after_a_declined_offer():
    chat = Chat()
    chat.bot("offer_human")
    _, decision = chat.say("this is useless and ridiculous", "card_arrival")
    assert decision.action is Verdict.none and decision.held_back == "recently_offered"


def test_opening_hours_use_the_configured_timezone_and_days():
    hours = OpeningHours(timezone="Europe/London", days=["mon", "tue"], open="09:00", close="17:00")
    monday_noon = datetime(2026, 6, 1, 11, 0, tzinfo=timezone.utc)  # 12:00 in London (BST)
    monday_late = datetime(2026, 6, 1, 16, 30, tzinfo=timezone.utc)  # 17:30 in London
    sunday = datetime(2026, 5, 31, 11, 0, tzinfo=timezone.utc)
    assert hours.is_open(monday_noon)
    assert not hours.is_open(monday_late)
    assert not hours.is_open(sunday)


def test_an_angry_message_the_bot_did_not_understand_offers_a_person_at_once():
    chat = Chat()
    chat.say("I was charged twice", "transaction_charged_twice")
    chat.bot("answer:transaction_charged_twice", "did_that_help")
    signals, decision = chat.say(
        "THIS IS RIDICULOUS!!! GIVE ME MY MONEY BACK!!!", "nlu_fallback", 0.2
    )
    assert signals.failed_turns == 1 and signals.sentiment > POLICY.sentiment.very_negative
    assert decision.action is Verdict.offer and decision.reasons == ["negative_failed_turn"]


def _banking77_examples():
    import yaml

    nlu = yaml.safe_load((PROJECT_ROOT / "data/nlu/banking77.yml").read_text())["nlu"]
    for item in nlu:
        for line in item["examples"].splitlines():
            text = line.strip().removeprefix("- ").strip()
            if text:
                yield item["intent"], text


def test_phrases_almost_never_fire_on_routine_banking_questions():
    """Over the ~10,000 Banking77 training questions, the explicit-request phrases and the
    sensitive phrases (outside the sensitive intents themselves) fire on at most 0.2 %."""
    from bot.signals import human_request, sensitive_phrases

    sensitive_intents = CONFIG.sensitive_intents
    total = explicit = sensitive = 0
    for intent, text in _banking77_examples():
        total += 1
        explicit += human_request(SignalTurn(text, intent), CONFIG) is not None
        if intent not in sensitive_intents:
            sensitive += bool(sensitive_phrases(text, CONFIG))
    assert total > 9000
    assert explicit / total <= 0.002
    assert sensitive / total <= 0.002


def test_a_confirmed_answer_starts_the_failed_count_again():
    chat = Chat()
    chat.say("is there a fee for that", "nlu_fallback", 0.3)
    chat.bot("rephrase")
    chat.say("how do I get a virtual card", "getting_virtual_card")
    chat.bot("answer:getting_virtual_card", "did_that_help")
    signals, _ = chat.say("yes", "affirm")
    assert signals.failed_turns == 0
    signals, decision = chat.say("the thing with the other thing", "nlu_fallback", 0.4)
    assert signals.failed_turns == 1 and decision.action is Verdict.none


def test_problem_words_alone_do_not_read_as_an_upset_customer():
    from bot.sentiment import sentiment

    assert sentiment("my card is dead, it stopped working") > -0.6
    assert sentiment("the transfer failed and was rejected with an error") > -0.6
    assert sentiment("this is ridiculous and useless, I am so frustrated") <= -0.6
