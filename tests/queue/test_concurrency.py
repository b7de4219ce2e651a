"""Races: many agents and customers at once; every ticket assigned exactly once, none skipped."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from bot.queue import Customer, HandoffQueue, TicketState

N_TICKETS = 1000
N_AGENTS = 20


async def test_20_pull_agents_race_for_1000_tickets(queue: HandoffQueue) -> None:
    tickets = await asyncio.gather(
        *(
            queue.enqueue(f"conv-{i}", Customer(f"c{i}"), ["r"], i % 10, "cards")
            for i in range(N_TICKETS)
        )
    )
    assert len({t.id for t in tickets}) == N_TICKETS
    for a in range(N_AGENTS):
        await queue.agent_online(f"agent-{a}", ["cards"], 3, auto_assign=False)

    claimed: dict[str, list[str]] = {f"agent-{a}": [] for a in range(N_AGENTS)}

    async def work(agent: str) -> None:
        rng = random.Random(agent)
        mine: list[str] = []
        while True:
            ticket = await queue.claim_next(agent)
            if ticket is None and not mine:
                return
            if ticket is not None:
                assert ticket.agent_id == agent and ticket.state == TicketState.ASSIGNED
                claimed[agent].append(ticket.id)
                mine.append(ticket.id)
            # hold up to 3 at once, resolve one when full or at the end
            if len(mine) == 3 or ticket is None:
                done = mine.pop(rng.randrange(len(mine)))
                await queue.resolve(done, agent)

    await asyncio.gather(*(work(a) for a in claimed))
    all_claims = [tid for ids in claimed.values() for tid in ids]
    counts = Counter(all_claims)
    assert len(all_claims) == N_TICKETS
    assert set(counts) == {t.id for t in tickets}  # none skipped
    assert max(counts.values()) == 1  # none assigned twice
    assert sum(1 for ids in claimed.values() if ids) > 1  # really concurrent
    # the audit agrees: exactly one assignment per ticket
    for t in random.Random(1).sample(tickets, 50):
        events = [e.event for e in await queue.audit(t.id)]
        assert events == ["queued", "assigned", "resolved"]
    assert await queue.queued() == []
    assert (await queue.stats())["open"] == 0


async def test_push_routing_under_concurrent_enqueue_and_churn(queue: HandoffQueue) -> None:
    """Customers enqueue while auto-assign agents come, resolve and go: each ticket ends with
    exactly one final owner, capacity is never exceeded, nothing is lost."""
    for a in range(N_AGENTS):
        await queue.agent_online(f"agent-{a}", ["cards", "loans"], 2)
    seen_over_capacity = []

    async def customer(i: int) -> None:
        await queue.enqueue(f"conv-{i}", Customer(f"c{i}"), ["r"], i % 3, ("cards", "loans")[i % 2])

    async def agent_loop(a: int) -> None:
        agent = f"agent-{a}"
        rng = random.Random(a)
        for _ in range(40):
            info = await queue.agent(agent)
            if info.load > info.capacity:
                seen_over_capacity.append(info)
            if info.tickets:
                await queue.resolve(rng.choice(info.tickets), agent)
            if rng.random() < 0.05:
                await queue.agent_offline(agent)
                await queue.agent_online(agent, ["cards", "loans"], 2)
            await asyncio.sleep(0)

    await asyncio.gather(
        *(customer(i) for i in range(300)), *(agent_loop(a) for a in range(N_AGENTS))
    )
    assert not seen_over_capacity
    tickets = await queue.list_tickets() + await queue.list_tickets(
        TicketState.RESOLVED, limit=1000
    )
    assert len({t.id for t in tickets}) == 300
    for t in tickets:
        assigned = [e for e in await queue.audit(t.id) if e.event == "assigned"]
        unassigned = [e for e in await queue.audit(t.id) if e.event == "requeued"]
        assert len(assigned) - len(unassigned) == (0 if t.state == TicketState.QUEUED else 1)
    # whatever is still queued fits nobody with room
    agents = await queue.agents(online_only=True)
    if await queue.list_tickets(TicketState.QUEUED):
        assert all(a.load >= a.capacity for a in agents)


async def test_a_pipelined_batch_gives_each_caller_its_own_result_or_error(
    queue: HandoffQueue,
) -> None:
    await queue.agent_online("ann", ["cards"], 10)
    tickets = [
        await queue.enqueue(f"c{i}", Customer(f"c{i}"), ["r"], 5, "cards") for i in range(10)
    ]
    # started together: one pipeline; every other call is refused
    calls = [queue.resolve(t.id, "ann" if i % 2 == 0 else "bob") for i, t in enumerate(tickets)] + [
        queue.get("T999"),
        queue.position(tickets[1].id),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, result in enumerate(results[:10]):
        if i % 2 == 0:
            assert result.state == TicketState.RESOLVED
        else:
            assert type(result).__name__ == "NotAssignee"
    assert type(results[10]).__name__ == "TicketNotFound"
    assert results[11].position == 0


async def test_without_autobatch(redis_client) -> None:
    q = HandoffQueue(redis_client, namespace="plain", autobatch=False)
    await q.agent_online("ann", ["cards"], 2)
    t = await q.enqueue("c1", Customer("c1"), ["r"], 5, "cards")
    assert (await q.get(t.id)).agent_id == "ann"
    await q.send_message(t.id, "agent", "ann", "hi", "m1")
    assert (await q.resolve(t.id, "ann")).state == TicketState.RESOLVED
    results = await asyncio.gather(
        *(q.enqueue(f"d{i}", Customer("x"), ["r"], 5, "cards") for i in range(50))
    )
    assert len({r.id for r in results}) == 50
