"""Conversations written by Rasa's own SQL event broker are read back as the right records."""

from __future__ import annotations

from rasa.core.brokers.sql import SQLEventBroker
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered

from bot.analytics import measures, rasa_events
from bot.analytics.events import HelpAnswer
from bot.analytics.records import build_records


def user(text, intent, confidence=0.9, ranking=None, at=0.0, customer=None, entities=()):
    ranking = ranking or [(intent, confidence)]
    parse = {
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        "entities": [{"entity": e, "value": v} for e, v in entities],
        "text": text,
    }
    metadata = {"customer_id": customer} if customer else {}
    return UserUttered(
        text, parse["intent"], parse["entities"], parse, timestamp=at, metadata=metadata
    )


def bot(text, reply, at):
    return BotUttered(text, {}, metadata={"reply": reply}, timestamp=at)


def publish(broker: SQLEventBroker, sender: str, events) -> None:
    for event in events:
        broker.publish({"sender_id": sender, **event.as_dict()})


def conversation_events():
    return {
        "helped": [
            SessionStarted(timestamp=1000.0),
            ActionExecuted("action_listen", timestamp=1000.1),
            user("my card hasn't arrived", "card_arrival", at=1001.0, customer="c-1"),
            bot("Cards take 3-5 working days ...", "answer:card_arrival", 1001.5),
            bot("Did that answer your question?", "did_that_help", 1001.6),
            user("/affirm", "affirm", 1.0, at=1010.0),
            bot("Great!", "affirm", 1010.5),
        ],
        "unhelped": [
            user("what's your exchange rate", "exchange_rate", at=2000.0),
            bot("We use the Visa rate ...", "answer:exchange_rate", 2000.5),
            bot("Did that answer your question?", "did_that_help", 2000.6),
            user("no, this is useless", "deny", at=2010.0),
            bot("Sorry. Would you like to talk to a person?", "offer_human", 2010.5),
        ],
        "rated": [
            user("how do I change my pin", "change_pin", at=4000.0),
            bot("In the app: Card > Show PIN ...", "answer:change_pin", 4000.5),
            user("bye", "goodbye", at=4005.0),
            bot("Before you go: how would you rate ...", "csat_ask", 4005.5),
            user(
                '/csat_rating{"csat_score": "2"}',
                "csat_rating",
                1.0,
                at=4010.0,
                entities=[("csat_score", "2")],
            ),
            bot("Anything you'd like to tell us?", "csat_comment", 4010.5),
            user("the transfer page is confusing", "nlu_fallback", 0.2, at=4020.0),
            bot("Thank you for your feedback!", "csat_thanks", 4020.5),
        ],
        "fallback": [
            user(
                "blorp my thingy",
                "nlu_fallback",
                0.3,
                [("nlu_fallback", 0.3), ("card_linking", 0.25), ("top_up_failed", 0.2)],
                at=3000.0,
            ),
            bot("Sorry, I did not get that. Did you mean ...", "unclear", 3000.5),
        ],
    }


def test_rasa_sql_broker_rows_become_records_with_help_answers_and_fallbacks(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    broker = SQLEventBroker(db=str(tmp_path / "events.db"))
    for sender, events in conversation_events().items():
        publish(broker, sender, events)

    events = rasa_events.read_events(url)
    records = {r.conversation_id: r for r in build_records(events)}

    helped, unhelped, fallback = records["helped"], records["unhelped"], records["fallback"]
    assert helped.help_answers == [HelpAnswer(1010.0, "helped", True, "card_arrival")]
    assert helped.customer_id == "c-1"
    assert helped.bot_messages == 3
    assert measures.contained(helped) and not measures.falsely_contained(helped)

    assert unhelped.ended_didnt_help and unhelped.left_mid_problem
    assert unhelped.final_sentiment is not None and unhelped.final_sentiment < -0.3

    assert fallback.messages[0].fell_back and fallback.messages[0].candidate == "card_linking"
    assert fallback.topics == ["card_linking"] and fallback.left_mid_problem
    assert measures.containment(list(records.values())).numerator == 2  # helped, rated


def test_reading_an_empty_or_missing_event_database_gives_no_events(tmp_path):
    assert rasa_events.read_events(f"sqlite:///{tmp_path / 'none.db'}") == []


def test_ratings_and_comments_come_from_rasas_record_and_a_comment_is_no_topic(tmp_path):
    broker = SQLEventBroker(db=str(tmp_path / "events.db"))
    publish(broker, "rated", conversation_events()["rated"])
    (record,) = build_records(rasa_events.read_events(f"sqlite:///{tmp_path / 'events.db'}"))
    assert record.survey_offered and record.rating == 2
    assert record.rating_comment == "the transfer page is confusing"
    assert record.topics == ["change_pin"] and record.fallbacks == 0
    assert not record.left_mid_problem
    assert measures.falsely_contained(record)  # rated 2


def test_events_written_after_a_read_are_picked_up_by_the_next_read(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    broker = SQLEventBroker(db=str(tmp_path / "events.db"))
    first, second = list(conversation_events().items())[:2]
    publish(broker, *first)
    assert {r.conversation_id for r in build_records(rasa_events.read_events(url))} == {first[0]}
    publish(broker, *second)
    records = build_records(rasa_events.read_events(url))
    assert {r.conversation_id for r in records} == {first[0], second[0]}
    assert sum(len(r.messages) for r in records) == 4  # nothing read twice
