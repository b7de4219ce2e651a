"""Tickets, escalation decisions and labels written to a real Redis come back joined per
conversation with Rasa's record."""

from __future__ import annotations

import json
import uuid

from rasa.core.brokers.sql import SQLEventBroker
from rasa.shared.core.events import BotUttered, UserUttered

from bot.analytics import labels as label_store
from bot.analytics import measures
from bot.analytics.collect import collect_records
from bot.queue import Customer, HandoffQueue


def rasa_conversation(db, cid, t0):
    broker = SQLEventBroker(db=str(db))
    parse = {
        "intent": {"name": "compromised_card", "confidence": 0.95},
        "intent_ranking": [{"name": "compromised_card", "confidence": 0.95}],
        "entities": [],
        "text": "someone used my card",
    }
    for event in (
        UserUttered("someone used my card", parse["intent"], [], parse, timestamp=t0),
        BotUttered(
            "Connecting you now.", {}, metadata={"reply": "handoff_sensitive"}, timestamp=t0 + 0.5
        ),
    ):
        broker.publish({"sender_id": cid, **event.as_dict()})


async def test_ticket_history_decisions_and_labels_join_the_conversation(redis, tmp_path):
    namespace = f"an{uuid.uuid4().hex[:8]}"
    cid = "conv-sensitive"
    db = tmp_path / "events.db"
    queue = HandoffQueue(redis, namespace=namespace)
    ticket = await queue.enqueue(
        cid, Customer("cust-1"), ["sensitive:compromised_card"], 8, "card_security"
    )
    rasa_conversation(db, cid, ticket.created_at - 1)
    entry = {
        "turn": 1,
        "at": ticket.created_at - 0.9,
        "signals": {"turn": 1, "intent": "compromised_card"},
        "decision": {"action": "handoff", "reasons": ["sensitive:compromised_card"]},
        "why": "handoff",
    }
    await redis.xadd(
        f"{namespace}:escalation:decisions", {"conversation_id": cid, "entry": json.dumps(entry)}
    )
    await queue.agent_online("ann", ["card_security"], 2)  # auto-assigned at once
    await queue.send_message(ticket.id, "agent", "ann", "Hi, I have blocked the card.", "m1")
    await queue.resolve(ticket.id, "ann", disposition="solved")
    await label_store.record_label(
        redis, namespace, ticket_id=ticket.id, conversation_id=cid, label="correct", agent_id="ann"
    )

    records = await collect_records(redis, namespace, f"sqlite:///{db}")

    (record,) = records
    assert record.conversation_id == cid and record.handoff_requested
    assert record.reason_codes == ("sensitive:compromised_card",)
    assert record.decisions[0].signals["intent"] == "compromised_card"
    (held,) = record.tickets
    assert held.state == "resolved" and held.disposition == "solved"
    assert held.topic == "card_security" and held.agent_id == "ann"
    assert held.label == "correct"
    assert held.first_reply_seconds is not None and 0 <= held.first_reply_seconds < 5
    assert held.handle_seconds is not None and held.handle_seconds >= 0
    assert measures.escalation_labels(records)["correct"].numerator == 1
    assert record.agent_handled and not record.bot_only


async def test_an_unknown_label_is_refused_and_nothing_is_stored(redis):
    namespace = f"an{uuid.uuid4().hex[:8]}"
    try:
        await label_store.record_label(
            redis, namespace, ticket_id="T1", conversation_id="c", label="great", agent_id="a"
        )
    except label_store.LabelError as error:
        assert "unknown label" in str(error)
    else:
        raise AssertionError("an unknown label was accepted")
    assert await label_store.read_labels(redis, namespace) == []
