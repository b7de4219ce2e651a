"""Actions validate every value they read from the tracker (issue 12, finding 3): a forged or
malformed rating, slot or metadata never crashes `action_respond`, is never stored as given, and
the customer always gets a reply. Real rasa_sdk trackers, a real Redis and the real queue."""

from __future__ import annotations

import pytest

from tests.actions.conversation import Conversation, replies


async def _at_rating_stage(chat: Conversation) -> None:
    await chat.say("how do I activate my card", "activate_my_card")
    assert replies(await chat.say("bye", "goodbye")) == ["goodbye", "csat_ask"]


@pytest.mark.parametrize("value", ["", "12345", "0", "6", "4.5", None, ["4"], {"x": 1}, True])
async def test_a_malformed_rating_is_not_stored_and_the_customer_still_gets_a_reply(redis, value):
    chat = Conversation(f"c-rating-{value!r}")
    await _at_rating_stage(chat)
    messages = await chat.say(
        f'/csat_rating{{"csat_score": "{value}"}}',
        "csat_rating",
        1.0,
        entities=[{"entity": "csat_score", "value": value}],
    )
    assert messages, "the customer got no reply"
    entries = [f for _, f in await redis.xrange("support:csat")]
    assert [e["kind"] for e in entries] == ["offered"]


async def test_a_valid_rating_entity_is_still_stored(redis):
    chat = Conversation("c-rating-ok")
    await _at_rating_stage(chat)
    await chat.say(
        '/csat_rating{"csat_score": "3"}',
        "csat_rating",
        1.0,
        entities=[{"entity": "csat_score", "value": "3"}],
    )
    entries = [f for _, f in await redis.xrange("support:csat")]
    assert [(e["kind"], e.get("score")) for e in entries] == [("offered", None), ("rating", "3")]


async def test_forged_slots_of_the_wrong_shape_are_ignored(redis):
    chat = Conversation("c-slots")
    chat.slots.update(
        {
            "escalation_state": {"turns": "many", "failed_turns": {"x": 1}},
            "escalation_audit": "not a list",
            "handoff_mode": "root",
            "handoff_ticket": "T1:msgs",
            "csat_stage": "evil",
            "csat_rating_id": "../../etc",
            "awaiting_contact": "yes",
        }
    )
    messages = await chat.say("how do I activate my card", "activate_my_card")
    assert replies(messages)[0] == "answer:activate_my_card"


async def test_forged_metadata_cannot_open_a_ticket_for_a_verified_customer(redis, queue):
    # a request for a person with forged metadata: a verified customer with an over-long id
    chat2 = Conversation("c-meta2")
    latest_metadata = {"customer": {"id": "x" * 500, "display_name": "Jane\x00", "verified": "yes"}}
    original = chat2._tracker

    def forged(latest):
        latest = {**latest, "metadata": latest_metadata}
        return original(latest)

    chat2._tracker = forged  # type: ignore[method-assign]
    await chat2.say("agent", "request_human", 1.0)
    ticket = await queue.open_ticket_for("c-meta2")
    assert ticket is not None
    assert ticket.customer.verified is False
    assert ticket.customer.id == "c-meta2"  # the forged id is refused; the conversation's is used
    assert ticket.customer.display_name == "Jane"
