"""Presence by lease: heartbeats keep an agent's tickets; a lapse returns them to the front of
their queue within the lease plus one second (the sweeper runs as the gateway would run it)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from bot.queue import AgentOffline, HandoffQueue, TicketState

from .helpers import enqueue

LEASE = 1.0


@pytest.fixture
async def short_lease(redis_client) -> HandoffQueue:
    return HandoffQueue(redis_client, namespace="lease", lease_seconds=LEASE)


async def test_lapsed_agent_tickets_return_to_front_in_time(short_lease: HandoffQueue) -> None:
    q = short_lease
    await q.agent_online("lazy", ["cards"], 2)
    t1 = await enqueue(q, "c1", priority=5)
    t2 = await enqueue(q, "c2", priority=2)
    assert (await q.agent("lazy")).tickets == (t1.id, t2.id)
    t3 = await enqueue(q, "c3", priority=5)
    t4 = await enqueue(q, "c4", priority=2)
    t5 = await enqueue(q, "c5", priority=9)
    await q.send_message(t1.id, "agent", "lazy", "Looking into it", "m1")  # mid-chat
    await q.send_message(t1.id, "customer", "cust-c1", "thanks", "m2")

    stop = asyncio.Event()
    sweeper = asyncio.create_task(q.run_sweeper(stop=stop))
    try:
        last_beat = time.monotonic()
        await q.heartbeat("lazy")  # ... and then no more
        while (await q.get(t1.id)).state == TicketState.ASSIGNED or (
            await q.get(t2.id)
        ).state == TicketState.ASSIGNED:
            assert time.monotonic() - last_beat < LEASE + 1.0, "tickets not returned in time"
            await asyncio.sleep(0.02)
        returned_after = time.monotonic() - last_beat
    finally:
        stop.set()
        await sweeper
    assert LEASE * 0.9 <= returned_after <= LEASE + 1.0
    # front of their priority: ahead of newer tickets of the same priority, behind higher ones
    assert await q.queued("cards") == [t5.id, t1.id, t3.id, t2.id, t4.id]
    back = await q.get(t1.id)
    assert back.last_agent_id == "lazy" and back.agent_id is None and back.requeues == 1
    events = [(e.event, e.fields.get("reason")) for e in await q.audit(t1.id)]
    assert events[-1] == ("requeued", "lease_expired")
    # the conversation so far is kept for the next agent
    assert [m.text for m in await q.read_messages(t1.id)] == ["Looking into it", "thanks"]
    assert not (await q.agent("lazy")).online
    inbox = [(e.type, e.ticket_id) for e in await q.read_agent_events("lazy", "0-0")]
    assert ("unassigned", t1.id) in inbox and ("offline", None) in inbox
    with pytest.raises(AgentOffline, match="offline"):
        await q.heartbeat("lazy")
    # the next agent gets them in order
    await q.agent_online("next", ["cards"], 2)
    assert (await q.agent("next")).tickets == (t1.id, t5.id)


async def test_heartbeats_keep_tickets(short_lease: HandoffQueue) -> None:
    q = short_lease
    await q.agent_online("ann", ["cards"], 1)
    t = await enqueue(q, "c1")
    stop = asyncio.Event()
    sweeper = asyncio.create_task(q.run_sweeper(stop=stop))
    try:
        for _ in range(8):  # 2.4 s, well past the 1 s lease
            await asyncio.sleep(0.3)
            await q.heartbeat("ann")
    finally:
        stop.set()
        await sweeper
    assert (await q.get(t.id)).agent_id == "ann"
    assert (await q.agent("ann")).online


async def test_late_heartbeat_takes_agent_offline_at_once(short_lease: HandoffQueue) -> None:
    q = short_lease
    await q.agent_online("ann", ["cards"], 1)
    await q.agent_online("bob", ["cards"], 1)
    t = await enqueue(q, "c1")
    holder = (await q.get(t.id)).agent_id
    other = "bob" if holder == "ann" else "ann"

    async def keep_alive() -> None:
        while True:
            await q.heartbeat(other)
            await asyncio.sleep(0.1)

    beats = asyncio.create_task(keep_alive())
    try:
        await asyncio.sleep(LEASE + 0.2)  # holder lapsed; no sweeper running
        with pytest.raises(AgentOffline, match="lease expired"):
            await q.heartbeat(holder)
    finally:
        beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beats
    # its ticket went straight on to the other (still online) agent
    assert (await q.get(t.id)).agent_id == other
    with pytest.raises(AgentOffline):
        await q.claim_next(holder)
    # coming back online works and gets a fresh lease
    info = await q.agent_online(holder, ["cards"], 1)
    assert info.online and info.load == 0


async def test_agent_offline_requeues_and_reroutes(redis_client) -> None:
    q = HandoffQueue(redis_client, namespace="off", lease_seconds=30)
    await q.agent_online("ann", ["cards"], 2)
    a = await enqueue(q, "c1")
    b = await enqueue(q, "c2")
    await q.agent_online("bob", ["cards"], 1)
    requeued = await q.agent_offline("ann")
    assert sorted(requeued) == sorted([a.id, b.id])
    # bob takes the oldest; the other waits at the front
    assert (await q.get(a.id)).agent_id == "bob"
    assert await q.queued() == [b.id]
    assert await q.agent_offline("ann") == []  # idempotent
