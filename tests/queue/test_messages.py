"""The per-ticket message log: order, idempotent sends, resume from an offset, blocking reads."""

from __future__ import annotations

import asyncio

from bot.queue import HandoffQueue

from .helpers import enqueue


async def test_messages_in_order_and_idempotent(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    t = await enqueue(queue, "c1")
    cust = t.customer.id
    m1 = await queue.send_message(t.id, "customer", cust, "my card was declined", "c-1")
    m2 = await queue.send_message(t.id, "agent", "ann", "Let me check", "a-1")
    # retries (same client id) return the first message, never a second copy
    r1 = await queue.send_message(t.id, "customer", cust, "my card was declined", "c-1")
    assert r1.duplicate and r1.id == m1.id and r1.text == m1.text and not m1.duplicate
    # concurrent retries of one send: one message
    sends = await asyncio.gather(
        *(queue.send_message(t.id, "customer", cust, "still there?", "c-2") for _ in range(10))
    )
    assert len({m.id for m in sends}) == 1 and sum(not m.duplicate for m in sends) == 1
    # the same client id from another sender is another message
    m4 = await queue.send_message(t.id, "agent", "ann", "yes", "c-2")
    log = await queue.read_messages(t.id)
    assert [(m.role, m.text) for m in log] == [
        ("customer", "my card was declined"),
        ("agent", "Let me check"),
        ("customer", "still there?"),
        ("agent", "yes"),
    ]
    assert [m.id for m in log] == sorted(m.id for m in log)
    assert log[0] == m1 and log[1] == m2 and log[3] == m4
    # a retry after the ticket closed still answers with the original
    await queue.resolve(t.id, "ann")
    late = await queue.send_message(t.id, "agent", "ann", "Let me check", "a-1")
    assert late.duplicate and late.id == m2.id


async def test_reader_resumes_from_offset(queue: HandoffQueue) -> None:
    t = await enqueue(queue, "c1")
    for i in range(5):
        await queue.send_message(t.id, "customer", "cust-c1", f"m{i}", f"id{i}")
    first = await queue.read_messages(t.id, count=2)
    assert [m.text for m in first] == ["m0", "m1"]
    # "reconnect": resume after the last id seen
    rest = await queue.read_messages(t.id, after=first[-1].id)
    assert [m.text for m in rest] == ["m2", "m3", "m4"]
    assert await queue.read_messages(t.id, after=rest[-1].id) == []


async def test_blocking_read_wakes_on_new_message(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    t = await enqueue(queue, "c1")
    seen = await queue.read_messages(t.id)
    assert seen == []
    reader = asyncio.create_task(queue.read_messages(t.id, after="0-0", block_ms=5000))
    await asyncio.sleep(0.1)
    assert not reader.done()
    sent = await queue.send_message(t.id, "agent", "ann", "hello", "a-1")
    got = await asyncio.wait_for(reader, 2)
    assert [m.id for m in got] == [sent.id]
    # nothing new: the blocking read times out empty
    assert await queue.read_messages(t.id, after=sent.id, block_ms=100) == []


async def test_read_many_tickets_at_once(queue: HandoffQueue) -> None:
    a = await enqueue(queue, "c1")
    b = await enqueue(queue, "c2")
    await queue.send_message(a.id, "customer", "x", "hi from a", "1")
    await queue.send_message(b.id, "customer", "y", "hi from b", "1")
    got = await queue.read_many({a.id: "0-0", b.id: "0-0"}, block_ms=100)
    assert {tid: [m.text for m in msgs] for tid, msgs in got.items()} == {
        a.id: ["hi from a"],
        b.id: ["hi from b"],
    }


async def test_first_agent_message_stops_the_sla_clock(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    t = await enqueue(queue, "c1")
    await queue.send_message(t.id, "customer", "cust-c1", "hello", "1")
    assert (await queue.get(t.id)).first_response_at is None
    await queue.send_message(t.id, "agent", "ann", "hi", "2")
    await queue.send_message(t.id, "agent", "ann", "more", "3")
    ticket = await queue.get(t.id)
    assert ticket.first_response_at is not None
    assert [e.event for e in await queue.audit(t.id)].count("first_response") == 1
