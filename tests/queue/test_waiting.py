"""Waiting customers: position and ETA (polled and pushed), and the first-response SLA."""

from __future__ import annotations

import asyncio

import pytest

from bot.queue import HandoffQueue, QueuePosition

from .helpers import enqueue


async def test_position_and_eta(redis_client) -> None:
    q = HandoffQueue(redis_client, namespace="eta", default_handle_seconds=240)
    t = [await enqueue(q, f"c{i}") for i in range(5)]
    # nobody online: a position but no ETA
    assert await q.position(t[0].id) == QueuePosition(1, None)
    await q.agent_online("ann", ["cards"], 1)
    await q.agent_online("bob", ["cards"], 1)
    assert await q.position(t[0].id) == QueuePosition(0, 0.0)  # assigned
    # 2 slots, 240 s assumed per ticket: n-th in line waits about n * 120 s
    assert await q.position(t[2].id) == QueuePosition(1, 120.0)
    assert await q.position(t[4].id) == QueuePosition(3, 360.0)
    everyone = await q.positions()
    assert everyone == {
        t[2].id: QueuePosition(1, 120.0),
        t[3].id: QueuePosition(2, 240.0),
        t[4].id: QueuePosition(3, 360.0),
    }
    # recent handling times replace the default: quick resolutions bring the ETA down
    await asyncio.sleep(0.2)
    await q.resolve(t[0].id, "ann")
    await q.resolve(t[1].id, "bob")
    pos, eta = await q.position(t[4].id)
    assert pos == 1 and 0.05 <= eta < 1.0
    await q.resolve(t[2].id, (await q.get(t[2].id)).agent_id)
    closed = await q.position(t[2].id)
    assert closed == QueuePosition(None, None)


async def test_positions_are_pushed_when_they_change(queue: HandoffQueue) -> None:
    t = [await enqueue(queue, f"c{i}") for i in range(3)]
    updates = queue.watch_positions(block_ms=200)
    snapshot = await anext(updates)
    assert {k: v.position for k, v in snapshot.items()} == {t[0].id: 1, t[1].id: 2, t[2].id: 3}

    await queue.agent_online("ann", ["cards"], 1)  # takes t0: everyone moves up
    change = await asyncio.wait_for(anext(updates), 3)
    assert change[t[0].id] == QueuePosition(0, 0.0)
    assert change[t[1].id].position == 1 and change[t[2].id].position == 2

    await queue.abandon(t[1].id)  # the customer ahead leaves
    change = await asyncio.wait_for(anext(updates), 3)
    assert change[t[1].id] == QueuePosition(None, None)
    assert change[t[2].id].position == 1
    await updates.aclose()


async def test_sla_breach_is_flagged_and_can_be_rerouted(redis_client) -> None:
    q = HandoffQueue(redis_client, namespace="sla", sla_first_response_seconds=0.3)
    await q.agent_online("ann", ["cards"], 2)
    answered = await enqueue(q, "c1")
    silent = await enqueue(q, "c2")
    waiting = await enqueue(q, "c3")
    await q.send_message(answered.id, "agent", "ann", "hi", "1")
    assert (await q.reap_expired()).sla_breached == ()
    await asyncio.sleep(0.4)
    result = await q.reap_expired()
    assert sorted(result.sla_breached) == sorted([silent.id, waiting.id])
    assert (await q.reap_expired()).sla_breached == ()  # flagged once
    flagged = await q.get(silent.id)
    assert flagged.sla_breached and "sla_breached" in flagged.timestamps
    assert not (await q.get(answered.id)).sla_breached
    assert (await q.audit(waiting.id))[-1].event == "sla_breached"
    inbox = [(e.type, e.ticket_id) for e in await q.read_agent_events("ann", "0-0")]
    assert ("sla_breached", silent.id) in inbox
    # re-route: take it from ann; bob comes online and gets it first (front of the queue)
    await q.requeue(silent.id, reason="sla_breached")
    await q.agent_online("bob", ["cards"], 1)
    rerouted = await q.get(silent.id)
    assert rerouted.agent_id == "bob" and rerouted.sla_breached


@pytest.mark.parametrize("state", ["queued", "assigned"])
async def test_position_polling_is_one_call(queue: HandoffQueue, redis_client, state) -> None:
    if state == "assigned":
        await queue.agent_online("ann", ["cards"], 1)
    t = await enqueue(queue, "c1")
    info = await redis_client.info("commandstats")
    before = info.get("cmdstat_evalsha", {}).get("calls", 0)
    await queue.position(t.id)
    info = await redis_client.info("commandstats")
    assert info["cmdstat_evalsha"]["calls"] - before == 1
