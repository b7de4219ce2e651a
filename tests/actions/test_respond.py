"""`action_respond` with real rasa_sdk trackers and dispatchers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml
from rasa.core.actions.action import RemoteAction
from rasa.core.channels import CollectingOutputChannel
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.respond import ActionRespond
from actions.responses import get_responses
from actions.topics import closest_topics
from actions.turn import read_turn
from bot.config import PROJECT_ROOT

RESPONSES = get_responses()
BANKING_INTENTS = yaml.safe_load((PROJECT_ROOT / "domain/faq.yml").read_text())["intents"]


def user_event(text: str, intent: str, confidence: float = 1.0) -> dict[str, Any]:
    return {
        "event": "user",
        "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": confidence}},
    }


def bot_event(reply: str, text: str = "...") -> dict[str, Any]:
    return {"event": "bot", "text": text, "data": {}, "metadata": {"reply": reply}}


def make_tracker(
    intent: str,
    *,
    text: str = "a message",
    confidence: float = 1.0,
    ranking: list[tuple[str, float]] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Tracker:
    ranking = ranking or [(intent, confidence)]
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": name, "confidence": conf} for name, conf in ranking],
    }
    events = [*(history or []), user_event(text, intent, confidence)]
    return Tracker("customer-1", {}, latest, events, False, None, {}, "action_listen")


async def respond(tracker: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What `answer` says to the turn. `run` wraps it in the escalation gate (signals, policy,
    audit, handoff), which tests/escalation covers against a real Redis."""
    dispatcher = CollectingDispatcher()
    events = ActionRespond().answer(read_turn(tracker), dispatcher)
    return dispatcher.messages, events


def payloads(message: dict[str, Any]) -> list[str]:
    return [button["payload"] for button in message["buttons"]]


def after_bot_asked_did_that_help() -> list[dict[str, Any]]:
    return [
        user_event("my card still hasn't arrived", "card_arrival"),
        bot_event("answer:card_arrival"),
        bot_event("did_that_help"),
    ]


def test_action_is_named_action_respond():
    assert ActionRespond().name() == "action_respond"


@pytest.mark.parametrize("intent", BANKING_INTENTS)
async def test_every_banking_intent_gets_its_answer_then_the_did_that_help_check(intent):
    messages, events = await respond(make_tracker(intent))
    assert [m["text"] for m in messages] == [
        RESPONSES.answer(intent).message.text,
        RESPONSES.reply("did_that_help").text,
    ]
    assert messages[0]["reply"] == f"answer:{intent}"
    assert payloads(messages[1]) == ["/affirm", "/deny"]
    assert events == []


async def test_yes_after_did_that_help_is_glad():
    messages, _ = await respond(make_tracker("affirm", history=after_bot_asked_did_that_help()))
    assert [m["reply"] for m in messages] == ["glad_it_helped"]


async def test_no_after_did_that_help_offers_rephrase_or_a_person():
    messages, _ = await respond(make_tracker("deny", history=after_bot_asked_did_that_help()))
    assert [m["reply"] for m in messages] == ["offer_human"]
    assert "/request_human" in payloads(messages[0])


async def test_yes_and_no_without_a_question_are_only_acknowledged():
    history = [user_event("hi", "greet"), bot_event("greet")]
    yes, _ = await respond(make_tracker("affirm", history=history))
    no, _ = await respond(make_tracker("deny", history=history))
    assert [m["reply"] for m in yes + no] == ["acknowledge", "decline_noted"]


async def test_did_that_help_only_counts_for_the_turn_right_after_it():
    history = [
        *after_bot_asked_did_that_help(),
        user_event("hello", "greet"),
        bot_event("greet"),
    ]
    messages, _ = await respond(make_tracker("deny", history=history))
    assert [m["reply"] for m in messages] == ["decline_noted"]


@pytest.mark.parametrize(
    ("intent", "reply"),
    [
        ("greet", "greet"),
        ("goodbye", "goodbye"),
        ("thanks", "thanks"),
        ("bot_challenge", "bot_challenge"),
        ("request_human", "human_requested"),
        ("out_of_scope", "out_of_scope"),
    ],
)
async def test_conversational_intents_get_their_reply(intent, reply):
    messages, _ = await respond(make_tracker(intent))
    assert [(m["reply"], m["text"]) for m in messages] == [(reply, RESPONSES.reply(reply).text)]


async def test_out_of_scope_is_not_answered_with_a_banking_answer():
    messages, _ = await respond(make_tracker("out_of_scope", text="what's the weather in Paris"))
    assert not any(m["reply"].startswith("answer:") for m in messages)
    assert "/request_human" in payloads(messages[0])


async def test_fallback_asks_to_rephrase_offering_closest_topics_and_a_person():
    ranking = [
        ("nlu_fallback", 0.4),
        ("card_arrival", 0.35),
        ("greet", 0.2),
        ("card_delivery_estimate", 0.3),
        ("order_physical_card", 0.1),
        ("get_physical_card", 0.08),
    ]
    tracker = make_tracker("nlu_fallback", confidence=0.4, ranking=ranking)
    messages, _ = await respond(tracker)
    assert len(messages) == 1
    assert messages[0]["reply"] == "rephrase"
    assert payloads(messages[0]) == [
        "/card_arrival",
        "/card_delivery_estimate",
        "/order_physical_card",
        "/request_human",
    ]
    titles = [button["title"] for button in messages[0]["buttons"][:3]]
    assert titles == [
        RESPONSES.topic(i)
        for i in ("card_arrival", "card_delivery_estimate", "order_physical_card")
    ]


async def test_fallback_without_plausible_topics_still_offers_a_person():
    ranking = [("nlu_fallback", 0.3), ("out_of_scope", 0.25), ("card_arrival", 0.01)]
    messages, _ = await respond(make_tracker("nlu_fallback", confidence=0.3, ranking=ranking))
    assert messages[0]["reply"] == "rephrase_no_topics"
    assert payloads(messages[0]) == ["/request_human"]


async def test_unknown_intent_is_treated_as_unclear_not_guessed():
    messages, _ = await respond(make_tracker("something_new", ranking=[("something_new", 0.9)]))
    assert messages[0]["reply"] == "rephrase_no_topics"


async def test_reply_tags_survive_rasa_and_drive_the_next_turn():
    """Messages go through Rasa's own handling of action-server responses into bot events."""
    first_turn = make_tracker("card_arrival", text="my card still hasn't arrived")
    messages, _ = await respond(first_turn)
    bot_events = await RemoteAction._utter_responses(
        [dict(m) for m in messages], CollectingOutputChannel(), None, None
    )
    history = [*first_turn.events, *(event.as_dict() for event in bot_events)]
    reply, _ = await respond(make_tracker("deny", text="no", history=history))
    assert [m["reply"] for m in reply] == ["offer_human"]


def test_closest_topics_respects_limit_and_confidence_floor():
    ranking = [
        ("pin_blocked", 0.5),
        ("change_pin", 0.3),
        ("card_arrival", 0.2),
        ("age_limit", 0.01),
    ]
    assert [b.payload for b in closest_topics(ranking, RESPONSES, limit=2)] == [
        "/pin_blocked",
        "/change_pin",
    ]
    assert [b.payload for b in closest_topics(ranking, RESPONSES, min_confidence=0.25)] == [
        "/pin_blocked",
        "/change_pin",
    ]


async def test_close_topics_get_did_you_mean_a_or_b_instead_of_an_answer():
    ranking = [("card_arrival", 0.31), ("card_delivery_estimate", 0.29), ("greet", 0.1)]
    tracker = make_tracker("card_arrival", confidence=0.31, ranking=ranking)
    turn = replace(read_turn(tracker), ambiguous=True)
    dispatcher = CollectingDispatcher()
    ActionRespond().answer(turn, dispatcher)
    [message] = dispatcher.messages
    assert message["reply"] == "clarify"
    assert payloads(message) == [
        "/card_arrival",
        "/card_delivery_estimate",
        "/nlu_fallback",
        "/request_human",
    ]
    for intent in ("card_arrival", "card_delivery_estimate"):
        assert RESPONSES.topic(intent) in message["text"]


async def test_did_you_mean_needs_two_answerable_topics_else_it_answers():
    ranking = [("card_arrival", 0.31), ("out_of_scope", 0.29)]
    tracker = make_tracker("card_arrival", confidence=0.31, ranking=ranking)
    turn = replace(read_turn(tracker), ambiguous=True)
    dispatcher = CollectingDispatcher()
    ActionRespond().answer(turn, dispatcher)
    assert [m["reply"] for m in dispatcher.messages] == ["answer:card_arrival", "did_that_help"]


async def test_a_picked_topic_is_answered():
    history = [user_event("how long for my card", "card_arrival", 0.31), bot_event("clarify")]
    tracker = make_tracker(
        "card_delivery_estimate", text="/card_delivery_estimate", history=history
    )
    messages, _ = await respond(tracker)
    assert messages[0]["reply"] == "answer:card_delivery_estimate"


async def test_no_to_did_you_mean_asks_again_and_offers_a_person():
    history = [user_event("card declined", "declined_card_payment", 0.4), bot_event("clarify")]
    ranking = [("deny", 0.9), ("declined_card_payment", 0.05)]
    messages, _ = await respond(make_tracker("deny", text="no", ranking=ranking, history=history))
    assert [m["reply"] for m in messages] == ["unfamiliar"] or messages[0]["reply"].startswith(
        "rephrase"
    )
    assert payloads(messages[0])[-1] == "/request_human"
