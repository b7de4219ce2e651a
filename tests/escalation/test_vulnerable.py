"""Vulnerable customers and scams (FCA FG21/1) in the shipped escalation policy: every intent of
`domain/vulnerable.yml` is claimed by a sensitive rule, decisive phrases fire whatever the NLU read,
the urgent cases hand off and the others offer a person, and every rule's advice is in the
catalogue with the figures docs/policies.md gives."""

from __future__ import annotations

import pytest
import yaml

from actions.advice import sensitive_advice
from actions.responses import get_responses
from bot.config import PROJECT_ROOT
from bot.escalation import Verdict, evaluate, load_policy
from bot.signals import SignalState, SignalTurn, observe

POLICY = load_policy(PROJECT_ROOT / "escalation_policy.yml")
CONFIG = POLICY.signal_config()
RESPONSES = get_responses()
VULNERABLE_INTENTS = yaml.safe_load((PROJECT_ROOT / "domain/vulnerable.yml").read_text())["intents"]
POLICIES = (PROJECT_ROOT / "docs/policies.md").read_text(encoding="utf-8")

URGENT_HANDOFF = {
    "vulnerable_crisis": "crisis",
    "scam_impersonation": "safe_account_scam",
    "scam_app_fraud": "push_payment_scam",
    "scam_romance": "push_payment_scam",
    "scam_investment": "push_payment_scam",
    "phishing_smishing": "phishing",
}
HANDOFF = {"financial_hardship": "hardship", "bereavement": "bereavement"}
OFFER = {
    "gambling_block": "gambling_block",
    "third_party_access": "third_party_access",
    "economic_control": "economic_control",
    "vulnerable_health": "health",
    "life_event": "life_event",
}


def decide(text: str, intent: str, confidence: float = 0.9):
    turn = SignalTurn(text, intent, confidence, [(intent, confidence), ("greet", 0.01)], [])
    signals, _ = observe(SignalState(), turn, CONFIG)
    return signals, evaluate(signals, POLICY)


def test_every_vulnerable_intent_is_claimed_by_a_sensitive_rule():
    assert sorted(VULNERABLE_INTENTS) == sorted({**URGENT_HANDOFF, **HANDOFF, **OFFER})
    for intent in VULNERABLE_INTENTS:
        assert POLICY.rule_for_intent(intent) is not None, intent


@pytest.mark.parametrize(("intent", "rule"), sorted(URGENT_HANDOFF.items()))
def test_crisis_and_scams_hand_off_at_once_with_the_highest_priority(intent, rule):
    _, decision = decide("something happened", intent)
    assert decision.action is Verdict.handoff
    assert decision.reasons == [f"sensitive:{rule}"]
    assert decision.priority_name == "urgent"


@pytest.mark.parametrize(("intent", "rule"), sorted(HANDOFF.items()))
def test_hardship_and_bereavement_intents_hand_off(intent, rule):
    _, decision = decide("something happened", intent)
    assert decision.action is Verdict.handoff and decision.reasons == [f"sensitive:{rule}"]
    assert decision.priority_name == "high"


@pytest.mark.parametrize(("intent", "rule"), sorted(OFFER.items()))
def test_gambling_third_party_control_health_and_life_events_offer_a_person(intent, rule):
    _, decision = decide("something happened", intent)
    assert decision.action is Verdict.offer and decision.reasons == [f"sensitive:{rule}"]
    assert decision.topic == "vulnerable_customers"


@pytest.mark.parametrize(
    ("text", "intent", "rule"),
    [
        # the misses: a routine intent read, the phrase decides
        (
            "should i send money to a guy i met online? he needs it for a flight",
            "transfer_fee_charged",
            "push_payment_scam",
        ),
        (
            "I typed my card details into a link from a text about a parcel",
            "card_linking",
            "phishing",
        ),
        (
            "i clicked the link in the sms and put in my card number and cvv",
            "card_linking",
            "phishing",
        ),
        (
            "I have power of attorney for my dad, can I use his account",
            "edit_personal_details",
            "third_party_access",
        ),
        (
            "my phone got stolen and the app was still signed in",
            "lost_or_stolen_phone",
            "device_stolen",
        ),
        (
            "someone snatched my phone out of my hand, the banking app is open",
            "lost_or_stolen_phone",
            "device_stolen",
        ),
        (
            "the bank's fraud team told me to move everything into a safe account",
            "transfer_into_account",
            "safe_account_scam",
        ),
        (
            "a man saying he was from the police asked me to withdraw cash",
            "atm_support",
            "safe_account_scam",
        ),
        ("I gave them my one time code on the phone", "verify_top_up", "safe_account_scam"),
        ("hi mum text from a new number, I sent them 500", "transfer_timing", "push_payment_scam"),
        (
            "cant withdraw my crypto profits, they want a release fee",
            "exchange_via_app",
            "push_payment_scam",
        ),
        ("i think i want to end my life", "nlu_fallback", "crisis"),
        ("honestly everyone would be better off without me", "out_of_scope", "crisis"),
        ("I've been self-harming since the debt started", "nlu_fallback", "crisis"),
        (
            "please block gambling on my card, I have a problem",
            "card_not_working",
            "gambling_block",
        ),
        (
            "my mum has dementia and keeps buying things",
            "card_payment_not_recognised",
            "third_party_access",
        ),
        ("my husband controls all my money", "nlu_fallback", "economic_control"),
        ("I'm being financially abused by my partner", "nlu_fallback", "economic_control"),
        ("we're getting divorced, how do I split the account", "terminate_account", "life_event"),
        # told in other words (issue 13): the phrase still decides
        (
            "i was mugged, they took my phone and the banking app was open on it",
            "lost_or_stolen_phone",
            "device_stolen",
        ),
        (
            "someone grabbed my phone while it was unlocked, can they get into my money",
            "lost_or_stolen_phone",
            "device_stolen",
        ),
        (
            "a courier is coming to collect my card, the bank said",
            "card_arrival",
            "safe_account_scam",
        ),
        (
            "a man from the bank rang and told me to move my savings",
            "transfer_into_account",
            "safe_account_scam",
        ),
        (
            "someone texted pretending to be my son and i paid his bill",
            "transfer_timing",
            "safe_account_scam",
        ),
        (
            "i let them take control of my laptop to fix the wifi",
            "nlu_fallback",
            "safe_account_scam",
        ),
        ("they had me install anydesk on my pc", "nlu_fallback", "safe_account_scam"),
        (
            "my boyfriend overseas needs money for his flight, we've never met",
            "transfer_fee_charged",
            "push_payment_scam",
        ),
        (
            "the trading site wants a fee before i can withdraw my profits",
            "exchange_via_app",
            "push_payment_scam",
        ),
        (
            "an email said my account was locked so i logged in through the link",
            "passcode_forgotten",
            "phishing",
        ),
        ("i put my card number into a fake website", "card_linking", "phishing"),
        ("i dont see a way out, i'm thinking of ending things", "nlu_fallback", "crisis"),
        ("got laid off and can't cover my rent", "top_up_failed", "hardship"),
        ("my partner won't let me have my own card", "getting_spare_card", "economic_control"),
        (
            "i look after my nan's money, can i get access",
            "edit_personal_details",
            "third_party_access",
        ),
        (
            "i'm in hospital and my direct debits are failing",
            "direct_debit_payment_not_recognised",
            "health",
        ),
        ("just diagnosed with cancer and can't cope with my account", "nlu_fallback", "health"),
    ],
)
def test_a_decisive_phrase_brings_in_a_person_whatever_the_nlu_read(text, intent, rule):
    signals, decision = decide(text, intent)
    assert rule in signals.sensitive_phrases, signals.sensitive_phrases
    assert f"sensitive:{rule}" in decision.reasons
    assert decision.action in (Verdict.handoff, Verdict.offer)
    found = sensitive_advice(decision, POLICY, RESPONSES)
    assert found is not None  # the advice, not the routine answer of `intent`
    assert found[0] == rule or POLICY.rule_named(found[0]).priority == "urgent"


@pytest.mark.parametrize(
    "text",
    [
        "how do I download my statement? I lost the receipt",
        "I clicked the link in your email to verify my email address",
        "can I use my card at a casino abroad",
        "I entered the code from the top-up charge, what next",
        "my phone died, can I still pay contactless",
        "how do I log in to the app on my new phone",
        "is there a fee to send money to my friend",
        "my card is dead, I need a new one",
        "I'm dying to know when my card arrives",
        "my phone was stolen, how do I get into the app on my new one",
        "the hospital car park machine charged me twice",
        "can my partner have a card on my account",
        "how do I manage my account on the website",
        "the courier hasn't delivered my card yet",
    ],
)
def test_routine_questions_with_scary_words_are_not_vulnerable(text):
    signals, _ = decide(text, "card_arrival")
    assert signals.sensitive_phrases == []


def test_every_advice_belongs_to_a_sensitive_rule_and_every_new_rule_has_one():
    names = {rule.name for rule in POLICY.sensitive}
    assert set(RESPONSES.advice) <= names
    for rule in {*URGENT_HANDOFF.values(), *HANDOFF.values(), *OFFER.values(), "device_stolen"}:
        assert RESPONSES.advice_for(rule) is not None, rule


def test_crisis_advice_gives_the_uk_helplines_and_the_fastest_route_to_a_person():
    text = RESPONSES.advice_for("crisis").text
    assert "Samaritans" in text and "116 123" in text and "999" in text
    assert "person" in text and "straight away" in text
    assert "116 123" in POLICIES and "999" in POLICIES


@pytest.mark.parametrize("rule", ["safe_account_scam", "push_payment_scam", "phishing", "fraud"])
def test_scam_advice_says_freeze_the_card_send_no_more_and_share_no_codes(rule):
    text = RESPONSES.advice_for(rule).text.lower()
    assert "card > freeze" in text
    assert "code" in text
    if rule != "phishing":
        assert "don't send any more money" in text


def test_the_most_urgent_rule_with_advice_speaks_when_several_fire():
    _, decision = decide(
        "my partner controls my money and made me send it to a safe account", "nlu_fallback", 0.3
    )
    assert {"sensitive:economic_control", "sensitive:safe_account_scam"} <= set(decision.reasons)
    assert decision.action is Verdict.handoff and decision.priority_name == "urgent"
    assert sensitive_advice(decision, POLICY, RESPONSES)[0] == "safe_account_scam"


def test_a_lost_card_keeps_its_routine_answer_with_the_freeze_advice():
    _, decision = decide("my card was stolen", "lost_or_stolen_card")
    assert sensitive_advice(decision, POLICY, RESPONSES) is None
