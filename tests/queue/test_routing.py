"""Routing: priority, FIFO, skills, capacity, backlog pull, pull agents, returning customers."""

from __future__ import annotations

import asyncio

import pytest

from bot.queue import AgentAtCapacity, HandoffQueue, TicketState

from .helpers import enqueue


async def test_priority_then_fifo(queue: HandoffQueue) -> None:
    ids = {}
    for conv, prio in [("a", 3), ("b", 7), ("c", 3), ("d", 9), ("e", 7), ("f", 0)]:
        ids[conv] = (await enqueue(queue, conv, priority=prio)).id
    expected = [ids[c] for c in ("d", "b", "e", "a", "c", "f")]
    assert await queue.queued("cards") == expected
    await queue.agent_online("puller", ["cards"], 10, auto_assign=False)
    claimed = [(await queue.claim_next("puller")).id for _ in range(6)]
    assert claimed == expected
    assert await queue.claim_next("puller") is None


async def test_backlog_pull_in_order_when_agent_comes_online(queue: HandoffQueue) -> None:
    low = await enqueue(queue, "low", priority=1)
    high_old = await enqueue(queue, "high-old", priority=8)
    high_new = await enqueue(queue, "high-new", priority=8)
    await queue.agent_online("ann", ["cards"], 2)
    info = await queue.agent("ann")
    assert info.tickets == (high_old.id, high_new.id)
    inbox = await queue.read_agent_events("ann", "0-0")
    assert [(e.type, e.ticket_id, e.fields["how"]) for e in inbox] == [
        ("assigned", high_old.id, "backlog"),
        ("assigned", high_new.id, "backlog"),
    ]
    assert await queue.queued() == [low.id]
    # freeing capacity pulls the next one at once
    await queue.resolve(high_old.id, "ann")
    assert (await queue.get(low.id)).agent_id == "ann"
    assert await queue.queued() == []


async def test_skills_route_only_fitting_tickets(queue: HandoffQueue) -> None:
    await queue.agent_online("cards-only", ["cards"], 5)
    await queue.agent_online("loans-only", ["loans"], 5)
    card = await enqueue(queue, "c1", topic="cards")
    loan = await enqueue(queue, "c2", topic="loans")
    fraud = await enqueue(queue, "c3", topic="fraud")
    assert (await queue.get(card.id)).agent_id == "cards-only"
    assert (await queue.get(loan.id)).agent_id == "loans-only"
    assert (await queue.get(fraud.id)).state == TicketState.QUEUED  # nobody takes fraud
    await queue.agent_online("generalist", ["*"], 1)
    assert (await queue.get(fraud.id)).agent_id == "generalist"
    # updating skills re-routes the backlog too
    await queue.agent_online("cards-only", ["cards", "disputes"], 5)
    dispute = await enqueue(queue, "c4", topic="disputes")
    assert (await queue.get(dispute.id)).agent_id == "cards-only"


async def test_capacity_is_respected_and_least_loaded_agent_wins(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 2)
    await queue.agent_online("bob", ["cards"], 1)
    tickets = [await enqueue(queue, f"c{i}") for i in range(5)]
    owners = [(await queue.get(t.id)).agent_id for t in tickets]
    # least loaded first: ann (0/2) then bob (0/1) then ann (1/2); then everyone is full
    assert owners[:3] == ["ann", "bob", "ann"]
    assert owners[3:] == [None, None]
    assert (await queue.agent("ann")).load == 2 and (await queue.agent("bob")).load == 1
    await queue.agent_online("pull", ["cards"], 1, auto_assign=False)
    got = await queue.claim_next("pull")
    assert got.id == tickets[3].id
    with pytest.raises(AgentAtCapacity):
        await queue.claim_next("pull")
    # raising capacity pulls the rest
    await queue.agent_online("bob", ["cards"], 2)
    assert (await queue.get(tickets[4].id)).agent_id == "bob"


async def test_nothing_waits_while_a_fitting_agent_is_free(queue: HandoffQueue) -> None:
    """After any sequence of operations, no queued ticket fits an online auto agent with room."""
    await queue.agent_online("ann", ["cards", "loans"], 2)
    await queue.agent_online("bob", ["loans"], 1)
    tickets = [await enqueue(queue, f"c{i}", topic=("cards", "loans")[i % 2]) for i in range(8)]
    for t in tickets[:3]:
        current = await queue.get(t.id)
        if current.agent_id:
            await queue.resolve(t.id, current.agent_id)
    await queue.transfer(tickets[5].id, topic="cards")
    await invariant_holds(queue)
    await queue.agent_offline("bob")
    await invariant_holds(queue)


async def invariant_holds(queue: HandoffQueue) -> None:
    agents = await queue.agents(online_only=True)
    for ticket in await queue.list_tickets(TicketState.QUEUED):
        for a in agents:
            fits = "*" in a.skills or ticket.topic in a.skills
            assert not (a.auto_assign and fits and a.load < a.capacity), (ticket.id, a)


async def test_claim_specific_ticket_out_of_order(queue: HandoffQueue) -> None:
    first = await enqueue(queue, "c1")
    second = await enqueue(queue, "c2")
    await queue.agent_online("pull", ["cards"], 2, auto_assign=False)
    got = await queue.claim("pull", second.id)
    assert got.agent_id == "pull" and got.state == TicketState.ASSIGNED
    assert await queue.queued() == [first.id]
    events = await queue.audit(second.id)
    assert events[-1].event == "assigned" and events[-1].fields["how"] == "claim"


async def test_returning_customer_goes_to_last_agent_only_if_online(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 3)
    await queue.agent_online("bob", ["cards"], 3)
    first = await enqueue(queue, "conv-r")
    handler = (await queue.get(first.id)).agent_id
    other = "bob" if handler == "ann" else "ann"
    await queue.resolve(first.id, handler)
    # make the other agent the "least loaded" choice, then return: still the last agent
    await enqueue(queue, "filler")  # goes to someone
    back = await enqueue(queue, "conv-r")
    assert back.previous_ticket_id == first.id
    back = await queue.get(back.id)
    assert back.agent_id == handler
    assert (await queue.audit(back.id))[-1].fields["how"] == "returning"
    await queue.resolve(back.id, handler)
    # the last agent goes offline: the returning customer is never routed to it
    await queue.agent_offline(handler)
    third = await queue.get((await enqueue(queue, "conv-r")).id)
    assert third.agent_id == other
    await queue.resolve(third.id, other)
    # nobody online at all: it waits in the queue
    await queue.agent_offline(other)
    fourth = await queue.get((await enqueue(queue, "conv-r")).id)
    assert fourth.state == TicketState.QUEUED and fourth.agent_id is None


async def test_returning_customer_not_routed_to_agent_whose_lease_lapsed(redis_client) -> None:
    queue = HandoffQueue(redis_client, namespace="lapse", lease_seconds=0.3)
    await queue.agent_online("ann", ["cards"], 2)
    first = await enqueue(queue, "conv-r")
    await queue.resolve(first.id, "ann")
    await asyncio.sleep(0.5)  # ann's lease lapsed; no sweeper has run yet
    back = await queue.get((await enqueue(queue, "conv-r")).id)
    assert back.state == TicketState.QUEUED and back.agent_id is None


async def test_preferred_agent(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 3)
    await queue.agent_online("bob", ["loans"], 3)
    t = await enqueue(queue, "c1", topic="cards", prefer_agent="bob")
    assert (await queue.get(t.id)).agent_id == "bob"
    assert (await queue.audit(t.id))[-1].fields["how"] == "preferred"
    t2 = await enqueue(queue, "c2", topic="cards", prefer_agent="nobody")
    assert (await queue.get(t2.id)).agent_id == "ann"


async def test_last_agent_is_kept_when_a_requeued_ticket_is_abandoned(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    t = await enqueue(queue, "conv-r")
    await queue.requeue(t.id)  # nobody else: it waits; ann is not handed it straight back
    left = await queue.abandon(t.id)
    assert left.last_agent_id == "ann" and left.agent_id is None
    back = await queue.get((await enqueue(queue, "conv-r")).id)
    assert back.agent_id == "ann"
