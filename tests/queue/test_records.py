"""bot.queue.records: the ticket hash holds exactly the fields of TICKET_FIELDS (what the scripts
write, what Ticket reads) and the ticket round-trips through its JSON form."""

from __future__ import annotations

import json
import re
from pathlib import Path

from redis.asyncio import Redis

import bot.queue
from bot import keys
from bot.queue import (
    TICKET_FIELDS,
    AuditEvent,
    Customer,
    HandoffQueue,
    Message,
    Ticket,
    TicketState,
)

from .helpers import enqueue, summary

FIELD_NAMES = {f.name for f in TICKET_FIELDS}
LUA = Path(bot.queue.__file__).parent / "lua"


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


async def test_the_scripts_write_exactly_the_ticket_fields_and_ticket_reads_them_back(
    queue: HandoffQueue, redis_client: Redis
) -> None:
    # walk tickets through every kind of change, so that every field gets written
    await queue.agent_online("ann", ["cards", "loans"], 1)
    first = await enqueue(queue, "conv-1")  # assigned to ann at once
    await queue.send_message(first.id, "agent", "ann", "hello", "m1")
    await queue.transfer(first.id, topic="loans", priority=7)
    await queue.resolve((await queue.claim("ann", first.id)).id, "ann", "refunded")
    second = await enqueue(queue, "conv-1")  # returning: prev, straight back to ann
    await queue.requeue(second.id)
    await queue.close(second.id)
    stored = {}
    for ticket in (first, second):
        stored[ticket.id] = await redis_client.hgetall(
            keys.QUEUE_TICKET.format(ns="test", ticket=ticket.id)
        )
    written = {name for data in stored.values() for name in data if not name.startswith("ts_")}
    assert written == FIELD_NAMES  # nothing outside the tuple, and no field of it unused
    for tid, data in stored.items():
        assert Ticket.from_redis(data) == await queue.get(tid)
    again = Ticket.from_redis(stored[second.id])
    assert again.previous_ticket_id == first.id and again.last_agent_id == "ann"
    assert again.state == TicketState.RESOLVED and again.requeues == 1
    assert again.timestamps["requeued"] >= again.timestamps["assigned"]


def test_every_ticket_field_a_script_reads_is_in_the_tuple() -> None:
    read = re.compile(r"'(?:HMGET|HGET)', k_ticket\([^)]*\), ([^)]*)\)")
    names = set()
    for script in LUA.glob("*.lua"):
        for args in read.findall(script.read_text()):
            names |= set(re.findall(r"'(\w+)'", args))
    assert names and {n for n in names if not n.startswith("ts_")} <= FIELD_NAMES


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
