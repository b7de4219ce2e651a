"""bot.tickets: the ticket record round-trips through its Redis hash and its JSON form."""

from __future__ import annotations

import json

from bot.tickets import AuditEvent, Customer, Message, Ticket, TicketState

from .helpers import summary


def make_ticket(**overrides) -> Ticket:
    base = dict(
        id="T7",
        conversation_id="conv-7",
        customer=Customer("cust-7", "Grace Hopper", verified=True),
        reasons=("low_confidence", "negative_sentiment"),
        priority=6,
        topic="cards",
        summary=summary(),
        state=TicketState.ASSIGNED,
        created_at=1_700_000_000.123,
        timestamps={"created": 1_700_000_000.123, "assigned": 1_700_000_005.5},
        agent_id="ann",
        sla_deadline=1_700_000_120.123,
        assignments=1,
    )
    base.update(overrides)
    return Ticket(**base)


def test_redis_hash_round_trip() -> None:
    ticket = make_ticket()
    stored = ticket.to_redis()
    assert all(isinstance(v, str) for v in stored.values())
    assert stored["state"] == "assigned" and stored["ts_assigned"] == "1700000005500"
    assert Ticket.from_redis(stored) == ticket


def test_json_round_trip_and_closed_at() -> None:
    ticket = make_ticket(
        state=TicketState.RESOLVED,
        timestamps={"created": 1.0, "resolved": 9.5},
        disposition="refunded",
        sla_breached=True,
        previous_ticket_id="T3",
    )
    text = ticket.to_json()
    assert json.loads(text)["summary"]["transcript"][0]["sentiment"] == -0.4
    assert Ticket.from_json(text) == ticket
    assert ticket.closed_at == 9.5 and not ticket.is_open
    assert make_ticket().closed_at is None


def test_states() -> None:
    assert {s.value for s in TicketState if s.is_open} == {"queued", "assigned"}
    assert str(TicketState.RETURNED_TO_BOT) == "returned_to_bot"


def test_stream_entries() -> None:
    m = Message.from_stream(
        "T1", "1700000000123-0", {"role": "agent", "sender": "ann", "text": "hi", "cmid": "c1"}
    )
    assert m.timestamp == 1_700_000_000.123 and m.sender_id == "ann" and m.client_message_id == "c1"
    e = AuditEvent.from_stream(
        "1700000000123-1", {"event": "assigned", "ticket": "T1", "agent": "ann"}
    )
    assert e.event == "assigned" and e.ticket_id == "T1" and e.fields["agent"] == "ann"
