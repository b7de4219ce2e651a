"""Vulnerable customers and scams through `action_respond`, a real Redis server and the real queue:
the rule's advice comes first, in place of any routine answer, then the handoff or the offer."""

from __future__ import annotations

from tests.actions.conversation import Conversation, replies


async def test_crisis_gets_the_helplines_and_an_urgent_handoff_at_once(redis, queue):
    chat = Conversation("c-crisis")
    messages = await chat.say("i dont want to be alive anymore", "vulnerable_crisis")
    assert replies(messages)[:2] == ["advice:crisis", "handoff_sensitive"]
    assert "116 123" in messages[0]["text"] and "999" in messages[0]["text"]
    ticket = await queue.open_ticket_for("c-crisis")
    assert ticket.reasons == ("sensitive:crisis",)
    assert ticket.priority == 9 and ticket.topic == "vulnerable_customers"


async def test_smishing_read_as_card_linking_gets_freeze_advice_not_the_card_linking_answer(
    redis, queue
):
    chat = Conversation("c-smish")
    messages = await chat.say(
        "I typed my card details into a link from a text message", "card_linking"
    )
    assert replies(messages)[:2] == ["advice:phishing", "handoff_sensitive"]
    assert "answer:card_linking" not in replies(messages)
    assert "Card > Freeze" in messages[0]["text"]
    assert (await queue.open_ticket_for("c-smish")).priority == 9


async def test_a_crisis_with_a_request_for_a_person_still_gets_the_helplines(redis, queue):
    chat = Conversation("c-crisis-human")
    messages = await chat.say("i want to kill myself, let me talk to a person", "request_human")
    assert replies(messages)[0] == "advice:crisis"
    assert "handoff_requested" in replies(messages) or "handoff_sensitive" in replies(messages)


async def test_gambling_block_gets_a_kind_answer_and_an_offer_of_a_person(redis, queue):
    chat = Conversation("c-gamble")
    messages = await chat.say("can you block gambling payments on my card", "gambling_block")
    assert replies(messages) == ["advice:gambling_block", "offer_human"]
    assert "/request_human" in [b["payload"] for b in messages[-1]["buttons"]]
    assert await queue.open_ticket_for("c-gamble") is None
    accepted = await chat.say("/request_human", "request_human")
    assert "handoff_requested" in replies(accepted)
    ticket = await queue.open_ticket_for("c-gamble")
    assert "sensitive:gambling_block" in ticket.reasons


async def test_power_of_attorney_read_as_a_routine_intent_is_offered_a_person(redis, queue):
    chat = Conversation("c-poa")
    messages = await chat.say(
        "i have power of attorney for my mum, can i manage her card", "edit_personal_details"
    )
    assert replies(messages) == ["advice:third_party_access", "offer_human"]


async def test_while_waiting_a_crisis_message_gets_the_helplines_not_a_rephrase(redis, queue):
    chat = Conversation("c-wait-crisis")
    await chat.say("agent", "request_human")
    messages = await chat.say("i can't go on, i want to end it all", "vulnerable_crisis")
    assert replies(messages)[0] == "advice:crisis"
    assert "rephrase" not in replies(messages)
