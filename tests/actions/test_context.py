"""Context in `action_respond`: typed follow-ups, never the same answer twice (and its
exceptions), unfamiliar messages and indirect requests for a person. Messages carry real
all-MiniLM-L6-v2 embeddings, as the NLU pipeline adds them to the parse result."""

from __future__ import annotations

from typing import Any

import pytest

from actions.context import POLICY
from bot.nlu.familiarity import pack
from bot.nlu.sentence_encoder import shared_encoder
from tests.actions.conversation import Conversation, replies

FAMILIAR = 0.8


def nlu(text: str, intent: str, familiarity: float = FAMILIAR) -> dict[str, Any]:
    """The parse-result keys the NLU adds: the familiarity of `intent` and the embedding."""
    vector = shared_encoder().encode([text])[0]
    return {
        "embedding": pack(vector),
        "familiarity": {"intent": intent, "score": familiarity},
    }


async def say(chat: Conversation, text: str, intent: str, **kw: Any) -> list[dict[str, Any]]:
    familiarity = kw.pop("familiarity", FAMILIAR)
    return await chat.say(text, intent, **kw, **nlu(text, intent, familiarity))


def audit(chat: Conversation) -> dict[str, Any]:
    return chat.slots["escalation_audit"][-1]["signals"]


async def test_typed_follow_ups_get_no_unrelated_answer_and_a_person_is_offered(redis):
    chat = Conversation("c-ctx-typed")
    first = await say(chat, "my card payment failed", "declined_card_payment")
    assert "answer:declined_card_payment" in replies(first)
    second = await say(chat, "tried again, same thing", "failed_transfer", confidence=0.9)
    assert "answer:failed_transfer" not in replies(second)
    assert replies(second) == ["offer_human"]
    assert "didn't sort this out" in second[0]["text"]
    signals = audit(chat)
    assert signals["restated"] and signals["loop"] and signals["topic"] == "declined_card_payment"


async def test_restated_need_in_other_words_is_a_loop(redis):
    chat = Conversation("c-ctx-restated")
    await say(
        chat, "shop said they refunded me last week but i can't see it", "refund_not_showing_up"
    )
    second = await say(chat, "the refund still isn't there", "pending_transfer", confidence=0.7)
    assert "answer:pending_transfer" not in replies(second)
    assert audit(chat)["loop"] and audit(chat)["similarity_to_answered"] > 0.35


async def test_the_same_answer_is_never_given_twice(redis):
    chat = Conversation("c-ctx-twice")
    first = await say(chat, "how do I activate my card", "activate_my_card")
    assert "answer:activate_my_card" in replies(first)
    await chat.say("/continue_with_bot", "continue_with_bot")
    again = await say(chat, "how do i activate the card?", "activate_my_card")
    assert "answer:activate_my_card" not in replies(again)
    assert "offer_human" in replies(again)


async def test_exception_the_customer_asks_to_repeat_the_answer(redis):
    chat = Conversation("c-ctx-repeat")
    await say(chat, "how do I activate my card", "activate_my_card")
    again = await say(chat, "can you repeat that", "nlu_fallback", confidence=0.2)
    assert "answer:activate_my_card" in replies(again)
    assert not audit(chat)["failed"]


@pytest.mark.parametrize("text", ["show me that again", "sorry, what did you say?"])
async def test_exception_other_words_for_show_it_again(redis, text):
    chat = Conversation(f"c-ctx-repeat-{len(text)}")
    await say(chat, "how do I activate my card", "activate_my_card")
    again = await say(chat, text, "activate_my_card", confidence=0.6)
    assert "answer:activate_my_card" in replies(again)


async def test_exception_the_topic_button_asks_for_the_answer_again(redis):
    chat = Conversation("c-ctx-button")
    await say(chat, "how do I activate my card", "activate_my_card")
    await chat.say("yes", "affirm")
    again = await chat.say("/activate_my_card", "activate_my_card", 1.0)
    assert "answer:activate_my_card" in replies(again)


async def test_unfamiliar_message_gets_no_routine_answer_but_topics_and_a_person(redis):
    chat = Conversation("c-ctx-unfamiliar")
    low = POLICY.context.unfamiliar_below - 0.1
    messages = await say(
        chat,
        "is there a way to make the app icon purple",  # unfamiliar, and no sensitive phrase
        "transfer_fee_charged",
        confidence=0.97,
        familiarity=low,
    )
    assert "answer:transfer_fee_charged" not in replies(messages)
    assert replies(messages) == ["unfamiliar"]
    payloads = [b["payload"] for b in messages[0]["buttons"]]
    assert "/transfer_fee_charged" in payloads and payloads[-1] == "/request_human"
    assert audit(chat)["unfamiliar"] and audit(chat)["failed_why"] == ["unclear"]


async def test_familiar_message_is_answered(redis):
    chat = Conversation("c-ctx-familiar")
    messages = await say(
        chat,
        "what's the fee for a transfer",
        "transfer_fee_charged",
        familiarity=POLICY.context.unfamiliar_below + 0.05,
    )
    assert "answer:transfer_fee_charged" in replies(messages)


async def test_short_follow_up_keeps_the_topic_and_offers_it_first(redis):
    chat = Conversation("c-ctx-short")
    await say(chat, "my card payment failed", "declined_card_payment")
    messages = await say(chat, "at the supermarket", "card_acceptance", confidence=0.5)
    assert "answer:card_acceptance" not in replies(messages)
    assert replies(messages) == ["unfamiliar"]
    assert messages[0]["buttons"][0]["payload"] == "/declined_card_payment"


@pytest.mark.parametrize(
    "text",
    [
        "whats your phone number",
        "can I call you",
        "is there a number i can call",
        "can someone call me back",
        "I want a supervisor",
        "let me speak to your manager",
    ],
)
async def test_indirect_request_for_a_person_hands_off_on_the_same_turn(redis, queue, text):
    sender = f"c-ctx-indirect-{abs(hash(text))}"
    chat = Conversation(sender)
    await say(chat, "my card got declined", "declined_card_payment")
    messages = await say(chat, text, "contactless_not_working", confidence=0.3)
    assert replies(messages)[0] == "handoff_requested"
    ticket = await queue.open_ticket_for(sender)
    assert ticket is not None and "explicit_request" in ticket.reasons


async def test_exception_a_new_question_on_a_topic_whose_answer_helped(redis):
    chat = Conversation("c-ctx-helped")
    await say(chat, "how long does a transfer from the UK take?", "transfer_timing")
    await chat.say("/affirm", "affirm", 1.0)
    again = await say(chat, "and how long does it take to send money to Europe?", "transfer_timing")
    assert "answer:transfer_timing" in replies(again)
    assert "offer_human" not in replies(again)


async def test_a_misread_acknowledgement_gets_a_yes_reply_not_a_rephrase(redis):
    chat = Conversation("c-ctx-ack")
    first = await say(chat, "charged twice for one coffee", "transaction_charged_twice")
    assert "did_that_help" in replies(first)
    second = await say(chat, "ok fair enough", "deny", confidence=0.18)
    assert replies(second) == ["glad_it_helped"]
    third = await say(chat, "ok ill wait for it to drop off", "nlu_fallback", confidence=0.15)
    assert replies(third) == ["acknowledge"]
    assert audit(chat)["acknowledged"] and not audit(chat)["failed"]


async def test_that_didnt_help_in_words_gets_sorry_and_a_person(redis):
    chat = Conversation("c-ctx-not-helped")
    await say(chat, "charged twice for one coffee", "transaction_charged_twice")
    second = await say(chat, "that's not what I asked", "thanks", confidence=0.5)
    assert "offer_human" in replies(second)
    assert "thanks" not in replies(second)
    assert audit(chat)["said_not_helped"]


async def test_i_did_that_already_is_not_taken_as_yes(redis):
    chat = Conversation("c-ctx-did-already")
    await say(chat, "contactless not working", "contactless_not_working")
    second = await say(chat, "i did that already", "affirm", confidence=0.16)
    assert "glad_it_helped" not in replies(second)
    assert audit(chat)["loop"]


async def test_small_talk_misread_in_another_language_gets_a_rephrase(redis):
    chat = Conversation("c-ctx-misread")
    reply = await say(
        chat, "hola, mi tarjeta no funciona en el cajero", "deny", confidence=0.19, familiarity=0.16
    )
    assert replies(reply) == ["rephrase_no_topics"] or replies(reply)[0].startswith("rephrase")
    assert audit(chat)["unclear"]
