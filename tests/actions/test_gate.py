"""`action_respond` with the escalation gate, through real rasa_sdk trackers, a real Redis server
and the real queue: audit trail, offers, handoffs with tickets, waiting, cancel, agent, handback,
contact details and satisfaction."""

from __future__ import annotations

import json

from rasa_sdk.executor import CollectingDispatcher

from actions.connections import use_redis
from actions.context import POLICY
from actions.escalation import EscalationGate
from actions.handoff import ActionWaitCheck
from actions.respond import ActionRespond
from bot.handoff import ModeStore
from tests.actions.conversation import ALWAYS_OPEN, NEVER_OPEN, Conversation, replies


async def test_every_turn_is_audited_in_the_slot_and_in_redis(redis):
    chat = Conversation("c-routine")
    messages = await chat.say("my card has not arrived", "card_arrival")
    assert replies(messages) == ["answer:card_arrival", "did_that_help"]
    await chat.say("yes thanks", "affirm")
    audit = chat.slots["escalation_audit"]
    assert [entry["turn"] for entry in audit] == [1, 2]
    assert audit[0]["decision"]["action"] == "none"
    assert audit[1]["signals"]["feedback"] == "helped"
    assert "no rule fired" in audit[0]["why"]
    stream = await redis.xrange("support:audit:c-routine")
    assert [json.loads(f["entry"])["turn"] for _, f in stream] == [1, 2]
    assert 0 < await redis.ttl("support:audit:c-routine") <= 90 * 24 * 3600
    assert await redis.xlen("support:escalation:decisions") == 2


async def test_signal_state_lives_in_the_slot_so_a_new_action_server_carries_on(redis):
    chat = Conversation("c-restart")
    await chat.say("asdf", "nlu_fallback", 0.2)
    chat.action = ActionRespond(gate=EscalationGate(ALWAYS_OPEN))  # a fresh process's objects
    messages = await chat.say("qwer", "nlu_fallback", 0.2)
    assert replies(messages)[-1] == "offer_human"
    assert chat.slots["escalation_audit"][-1]["signals"]["failed_turns"] == 2


async def test_second_unclear_turn_offers_a_person_with_both_buttons(redis):
    chat = Conversation("c-unclear")
    first = await chat.say("blorp", "nlu_fallback", 0.2)
    assert "offer_human" not in replies(first)
    second = await chat.say("what's the weather", "out_of_scope", 0.9)
    offer = second[-1]
    assert offer["reply"] == "offer_human"
    assert [b["payload"] for b in offer["buttons"]] == ["/request_human", "/continue_with_bot"]
    assert "rephrase" not in replies(second)


async def test_explicit_request_opens_a_ticket_with_reasons_priority_and_summary(redis, queue):
    chat = Conversation("c-explicit")
    await chat.say("my top up failed", "top_up_failed")
    messages = await chat.say("I want to speak to a real person", "request_human")
    assert replies(messages) == ["handoff_requested", "handoff_no_agents"]
    ticket = await queue.open_ticket_for("c-explicit")
    assert ticket is not None and str(ticket.state) == "queued"
    assert ticket.reasons == ("explicit_request",)
    assert ticket.priority == POLICY.priorities["normal"] and ticket.topic == "general"
    customer_lines = [t for t in ticket.summary.transcript if t.role == "customer"]
    assert [t.intent for t in customer_lines] == ["top_up_failed", "request_human"]
    assert all(t.sentiment is not None for t in customer_lines)
    assert any(t.role == "bot" for t in ticket.summary.transcript)
    assert [i.name for i in ticket.summary.intents] == ["top_up_failed", "request_human"]
    assert chat.slots["handoff_mode"] == "waiting" and chat.slots["handoff_ticket"] == ticket.id


async def test_position_and_wait_are_told_when_an_agent_is_online(redis, queue):
    await queue.agent_online("agent-1", skills=["general"], capacity=1, auto_assign=False)
    chat = Conversation("c-position")
    messages = await chat.say("agent", "request_human")
    assert replies(messages) == ["handoff_requested", "handoff_queued"]
    assert "number 1" in messages[-1]["text"]


async def test_free_auto_assign_agent_takes_the_conversation_at_once(redis, queue):
    await queue.agent_online("agent-2", skills=["*"], capacity=2)
    chat = Conversation("c-assigned")
    messages = await chat.say("human please", "request_human")
    assert replies(messages) == ["handoff_requested", "handoff_assigned"]
    assert chat.slots["handoff_mode"] == "agent"


async def test_sensitive_topic_answers_first_then_hands_off_urgently(redis, queue):
    chat = Conversation("c-stolen")
    messages = await chat.say("my card was stolen", "lost_or_stolen_card")
    assert replies(messages)[:2] == ["answer:lost_or_stolen_card", "handoff_sensitive"]
    assert "did_that_help" not in replies(messages)
    ticket = await queue.open_ticket_for("c-stolen")
    assert ticket.reasons == ("sensitive:lost_or_stolen_card",)
    assert ticket.priority == 9 and ticket.topic == "card_security"


async def test_outside_opening_hours_the_customer_is_told_and_the_ticket_kept(redis, queue):
    chat = Conversation("c-closed", policy=NEVER_OPEN)
    messages = await chat.say("my husband passed away", "nlu_fallback", 0.3)
    assert replies(messages) == ["advice:bereavement", "handoff_sensitive", "handoff_closed"]
    assert "/leave_contact" in [b["payload"] for b in messages[-1]["buttons"]]
    assert (await queue.open_ticket_for("c-closed")).reasons == ("sensitive:bereavement",)


async def test_while_waiting_routine_questions_are_answered_and_the_place_kept(redis, queue):
    chat = Conversation("c-waiting")
    await chat.say("agent", "request_human")
    ticket = await queue.open_ticket_for("c-waiting")
    messages = await chat.say("how long does a transfer take", "transfer_timing")
    assert replies(messages)[0] == "answer:transfer_timing"
    again = await chat.say("where is my agent? I want a person", "request_human")
    assert replies(again) == ["already_waiting"]
    assert (await queue.open_ticket_for("c-waiting")).id == ticket.id


async def test_cancel_abandons_the_ticket_and_the_bot_carries_on(redis, queue):
    chat = Conversation("c-cancel")
    await chat.say("agent", "request_human")
    ticket = await queue.open_ticket_for("c-cancel")
    messages = await chat.say("/cancel_handoff", "cancel_handoff", 1.0)
    assert replies(messages) == ["cancelled"]
    assert str((await queue.get(ticket.id)).state) == "abandoned"
    assert chat.slots["handoff_mode"] == "bot"
    assert replies(await chat.say("/cancel_handoff", "cancel_handoff", 1.0)) == [
        "nothing_to_cancel"
    ]


async def test_the_bot_is_silent_while_an_agent_holds_the_conversation(redis, queue):
    chat = Conversation("c-agent")
    await chat.say("agent", "request_human")
    await queue.agent_online("agent-3", skills=["general"], capacity=1, auto_assign=False)
    await queue.claim_next("agent-3")
    assert await chat.say("hello? how do I top up", "topping_up_by_card") == []
    assert chat.slots["handoff_mode"] == "agent"
    assert chat.slots["escalation_audit"][-1]["decision"]["held_back"] == "mode:agent"


async def test_handback_greets_back_asks_a_rating_and_stores_it_with_the_path(redis, queue):
    chat = Conversation("c-handback")
    await chat.say("agent", "request_human")
    ticket = await queue.open_ticket_for("c-handback")
    await queue.agent_online("agent-4", skills=["general"], capacity=1, auto_assign=False)
    await queue.claim_next("agent-4")
    await queue.return_to_bot(ticket.id, "agent-4")
    store = ModeStore(redis, None, "support")  # type: ignore[arg-type]
    await store.hand_back("c-handback")
    messages = await chat.handback()
    assert replies(messages) == ["handback", "csat_ask"]
    assert chat.slots["handoff_mode"] == "bot"
    rate = await chat.say(
        '/csat_rating{"csat_score": "4"}',
        "csat_rating",
        1.0,
        entities=[{"entity": "csat_score", "value": "4"}],
    )
    assert replies(rate) == ["csat_comment"]
    thanks = await chat.say("the agent was quick, thanks", "thanks")
    assert replies(thanks) == ["csat_thanks"]
    entries = [f for _, f in await redis.xrange("support:csat")]
    assert [e["kind"] for e in entries] == ["offered", "rating", "comment"]
    rating, comment = entries[1], entries[2]
    assert rating["score"] == "4" and rating["path"] == "escalated"
    assert json.loads(rating["reasons"]) == ["explicit_request"]
    assert rating["ticket_id"] == ticket.id
    assert comment["rating_id"] == rating["rating_id"]
    assert comment["comment"] == "the agent was quick, thanks"
    after = await chat.say("how do I top up by card", "topping_up_by_card")
    assert replies(after)[0] == "answer:topping_up_by_card"


async def test_a_new_question_instead_of_a_comment_is_answered_not_stored(redis):
    chat = Conversation("c-question")
    await chat.say("bye", "goodbye")
    await chat.say("4", "csat_rating")
    messages = await chat.say("how do I change my pin?", "change_pin")
    assert replies(messages) == ["answer:change_pin", "did_that_help"]
    assert chat.slots["csat_stage"] is None
    kinds = [f["kind"] for _, f in await redis.xrange("support:csat")]
    assert kinds == ["offered", "rating"]


async def test_goodbye_on_the_bot_alone_asks_a_rating_stored_as_bot_only(redis):
    chat = Conversation("c-bye")
    await chat.say("how do I activate my card", "activate_my_card")
    messages = await chat.say("bye", "goodbye")
    assert replies(messages) == ["goodbye", "csat_ask"]
    await chat.say("5", "csat_rating")
    await chat.say("/deny", "deny", 1.0)
    entries = [f for _, f in await redis.xrange("support:csat")]
    assert [(e["kind"], e.get("score"), e.get("path")) for e in entries] == [
        ("offered", None, None),
        ("rating", "5", "bot_only"),
    ]


async def test_past_the_wait_limit_contact_details_are_offered_and_kept_on_the_ticket(redis, queue):
    quick = ALWAYS_OPEN.copy(
        update={"handoff": ALWAYS_OPEN.handoff.copy(update={"wait_limit_seconds": 0.001})}
    )
    chat = Conversation("c-wait", policy=quick)
    await chat.say("agent", "request_human")
    ticket = await queue.open_ticket_for("c-wait")
    messages = await chat.say("what's the exchange rate", "exchange_rate")
    assert replies(messages)[-1] == "wait_limit"
    assert replies(await chat.say("what about fees", "exchange_charge"))[-1] != "wait_limit"
    assert replies(await chat.say("/leave_contact", "leave_contact", 1.0)) == ["ask_email"]
    saved = await chat.say("it's ada@example.com", "nlu_fallback", 0.2)
    assert replies(saved) == ["email_saved"]
    log = await queue.read_messages(ticket.id, after="0-0")
    assert any("ada@example.com" in m.text for m in log)
    assert str((await queue.get(ticket.id)).state) == "queued"


async def test_a_declined_offer_is_followed_by_the_bot_carrying_on(redis):
    chat = Conversation("c-decline")
    await chat.say("asdf", "nlu_fallback", 0.1)
    await chat.say("qwer", "nlu_fallback", 0.1)
    messages = await chat.say("/continue_with_bot", "continue_with_bot", 1.0)
    assert replies(messages) == ["continue_with_bot"]
    answered = await chat.say("how do I change my pin", "change_pin")
    assert replies(answered) == ["answer:change_pin", "did_that_help"]


async def test_without_redis_the_customer_is_told_honestly_and_nothing_crashes():
    use_redis("redis://127.0.0.1:1/0")
    try:
        chat = Conversation("c-down")
        messages = await chat.say("agent", "request_human")
    finally:
        use_redis(None)
    assert replies(messages) == ["handoff_unavailable"]
    assert chat.slots["escalation_audit"][-1]["decision"]["action"] == "handoff"


async def test_accepting_an_offer_carries_why_the_person_was_offered_to_the_ticket(redis, queue):
    chat = Conversation("c-accept")
    await chat.say("asdf", "nlu_fallback", 0.1)
    await chat.say("qwer", "nlu_fallback", 0.1)
    await chat.say("/request_human", "request_human", 1.0)
    ticket = await queue.open_ticket_for("c-accept")
    assert ticket.reasons == ("explicit_request", "offer_accepted", "failed_turns")


async def test_a_person_asked_for_after_no_to_did_that_help_carries_not_helped(redis, queue):
    chat = Conversation("c-nothelped")
    await chat.say("my card has not arrived", "card_arrival")
    offered = await chat.say("no", "deny")
    assert replies(offered) == ["offer_human"]
    await chat.say("/request_human", "request_human", 1.0)
    ticket = await queue.open_ticket_for("c-nothelped")
    assert ticket.reasons == ("explicit_request", "offer_accepted", "not_helped")
    assert chat.slots["escalation_audit"][1]["decision"]["action"] == "offer"


async def test_asking_for_a_person_instead_of_a_comment_hands_off(redis, queue):
    chat = Conversation("c-comment-human")
    await chat.say("bye", "goodbye")
    await chat.say("2", "csat_rating")
    messages = await chat.say("actually I want to speak to a real person", "request_human")
    assert replies(messages)[0] == "handoff_requested"
    assert await queue.open_ticket_for("c-comment-human") is not None
    kinds = [f["kind"] for _, f in await redis.xrange("support:csat")]
    assert kinds == ["offered", "rating"]


async def test_a_silent_waiting_customer_is_offered_contact_details_once_past_the_limit(redis):
    quick = ALWAYS_OPEN.copy(
        update={"handoff": ALWAYS_OPEN.handoff.copy(update={"wait_limit_seconds": 0.001})}
    )
    chat = Conversation("c-silent")
    await chat.say("agent", "request_human")

    async def check(policy):
        dispatcher = CollectingDispatcher()
        await ActionWaitCheck(policy).run(dispatcher, chat._tracker({}), {})
        return replies(dispatcher.messages)

    assert await check(ALWAYS_OPEN) == []  # 300 s not yet passed
    assert await check(quick) == ["wait_limit"]
    assert await check(quick) == []  # once only
