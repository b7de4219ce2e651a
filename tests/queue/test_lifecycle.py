"""Ticket lifecycle: enqueue (idempotent), assign, resolve / return / abandon / close, transfer,
requeue; every change in the audit stream; bad input refused with a clear error and no change."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.queue import (
    AgentAtCapacity,
    AgentLacksSkill,
    AgentNotFound,
    AgentOffline,
    Customer,
    HandoffQueue,
    InvalidInput,
    InvalidTransition,
    MessageTooLarge,
    NotAssignee,
    QueueError,
    Summary,
    TicketNotFound,
    TicketState,
)

from .helpers import customer, enqueue, snapshot, summary


async def test_enqueue_stores_the_whole_ticket(queue: HandoffQueue) -> None:
    ticket = await enqueue(queue, "conv-1", priority=7, topic="cards")
    assert ticket.state == TicketState.QUEUED
    assert ticket.conversation_id == "conv-1"
    assert ticket.customer == customer("conv-1")
    assert ticket.reasons == ("low_confidence",)
    assert ticket.priority == 7 and ticket.topic == "cards"
    assert ticket.summary == summary()
    assert ticket.summary.sentiments == [-0.4, -0.8]
    assert ticket.timestamps["created"] == ticket.timestamps["queued"] == ticket.created_at
    assert ticket.sla_deadline == pytest.approx(ticket.created_at + 120, abs=0.01)
    again = await queue.get(ticket.id)
    assert again == ticket
    assert (await queue.open_ticket_for("conv-1")) == ticket
    assert await queue.open_ticket_for("conv-other") is None


async def test_duplicate_enqueue_returns_the_open_ticket(queue: HandoffQueue, redis_client) -> None:
    first = await enqueue(queue, "conv-1")
    before = await snapshot(redis_client)
    second = await queue.enqueue(
        "conv-1", Customer("someone-else"), ["other"], 9, "loans", Summary()
    )
    assert second.id == first.id and second.duplicate and not first.duplicate
    assert second.priority == first.priority and second.topic == "cards"
    assert await snapshot(redis_client) == before  # nothing written
    # concurrent duplicates: still one ticket
    results = await asyncio.gather(*(enqueue(queue, "conv-2") for _ in range(20)))
    assert len({t.id for t in results}) == 1
    assert sum(not t.duplicate for t in results) == 1
    assert len(await queue.list_tickets()) == 2


async def test_full_lifecycle_with_audit(queue: HandoffQueue) -> None:
    ticket = await enqueue(queue, "conv-1")
    await queue.agent_online("ann", ["cards"], 2)
    ticket = await queue.get(ticket.id)
    assert ticket.state == TicketState.ASSIGNED and ticket.agent_id == "ann"
    await queue.send_message(ticket.id, "customer", ticket.customer.id, "hello?", "c-1")
    await queue.send_message(ticket.id, "agent", "ann", "Hi, I'm Ann", "a-1")
    done = await queue.resolve(ticket.id, "ann", disposition="card unblocked")
    assert done.state == TicketState.RESOLVED and done.disposition == "card unblocked"
    assert done.closed_at is not None and done.first_response_at is not None
    assert done.created_at <= done.assigned_at <= done.first_response_at <= done.closed_at
    events = [e.event for e in await queue.audit(ticket.id)]
    assert events == ["queued", "assigned", "first_response", "resolved"]
    assert await queue.open_ticket_for("conv-1") is None
    assert (await queue.last_ticket_for("conv-1")).id == ticket.id
    assert (await queue.agent("ann")).load == 0
    # the conversation can be handed over again: a new ticket that remembers the previous one
    again = await enqueue(queue, "conv-1")
    assert again.id != ticket.id and again.previous_ticket_id == ticket.id


async def test_return_to_bot_abandon_and_close(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 3)
    a = await enqueue(queue, "conv-a")
    b = await enqueue(queue, "conv-b")
    c = await enqueue(queue, "conv-c")
    returned = await queue.return_to_bot(a.id, "ann")
    assert returned.state == TicketState.RETURNED_TO_BOT
    left = await queue.abandon(b.id)
    assert left.state == TicketState.ABANDONED and left.disposition == "customer left"
    closed = await queue.close(c.id)
    assert closed.state == TicketState.RESOLVED and closed.disposition == "closed by operator"
    assert [e.event for e in await queue.audit(c.id)][-1] == "resolved"
    inbox = [(e.type, e.ticket_id) for e in await queue.read_agent_events("ann", "0-0")]
    assert ("returned_to_bot", a.id) in inbox and ("abandoned", b.id) in inbox
    assert ("resolved", c.id) in inbox
    # a queued ticket can be abandoned too
    d = await enqueue(queue, "conv-d", topic="loans")
    assert (await queue.abandon(d.id)).state == TicketState.ABANDONED
    assert await queue.queued("loans") == []
    assert {t.id for t in await queue.list_tickets(TicketState.ABANDONED)} == {b.id, d.id}
    assert await queue.list_tickets() == []


async def test_transfer_to_topic_and_to_agent(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    await queue.agent_online("bob", ["loans"], 1, auto_assign=False)
    t = await enqueue(queue, "conv-1", topic="cards")
    assert (await queue.get(t.id)).agent_id == "ann"
    waiting = await enqueue(queue, "conv-2", topic="cards")
    assert (await queue.get(waiting.id)).state == TicketState.QUEUED

    moved = await queue.transfer(t.id, topic="loans")
    # bob pulls work, so the ticket waits at the front of loans; ann is free and takes conv-2
    assert moved.state == TicketState.QUEUED and moved.topic == "loans" and moved.transfers == 1
    assert moved.last_agent_id == "ann"
    assert (await queue.get(waiting.id)).agent_id == "ann"
    assert await queue.queued("loans") == [t.id]

    direct = await queue.transfer(t.id, agent_id="bob")
    assert direct.state == TicketState.ASSIGNED and direct.agent_id == "bob"
    events = [e.event for e in await queue.audit(t.id)]
    assert events == ["queued", "assigned", "transferred", "transferred", "assigned"]
    with pytest.raises(InvalidTransition, match="already assigned to bob"):
        await queue.transfer(t.id, agent_id="bob")
    with pytest.raises(AgentAtCapacity):
        await queue.transfer(t.id, agent_id="ann")
    with pytest.raises(InvalidInput, match="needs a topic"):
        await queue.transfer(t.id)
    bumped = await queue.transfer(waiting.id, priority=9)
    assert bumped.priority == 9 and bumped.state == TicketState.QUEUED  # ann excluded once


async def test_requeue_puts_ticket_in_front_and_to_another_agent(queue: HandoffQueue) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    t1 = await enqueue(queue, "conv-1")
    t2 = await enqueue(queue, "conv-2")
    assert (await queue.get(t1.id)).agent_id == "ann"
    requeued = await queue.requeue(t1.id, reason="agent asked")
    # not straight back to ann: ann pulls the next one instead; t1 waits at the front
    assert requeued.state == TicketState.QUEUED and requeued.requeues == 1
    assert (await queue.get(t2.id)).agent_id == "ann"
    assert await queue.queued("cards") == [t1.id]
    await queue.agent_online("bob", ["cards"], 1)
    assert (await queue.get(t1.id)).agent_id == "bob"
    inbox = await queue.read_agent_events("ann", "0-0")
    assert [(e.type, e.ticket_id) for e in inbox][:3] == [
        ("assigned", t1.id),
        ("unassigned", t1.id),
        ("assigned", t2.id),
    ]


async def test_refused_calls_raise_clear_errors_and_change_nothing(
    queue: HandoffQueue, redis_client
) -> None:
    await queue.agent_online("ann", ["cards"], 1)
    await queue.agent_online("pete", ["loans"], 1, auto_assign=False)
    assigned = await enqueue(queue, "conv-1")
    queued = await enqueue(queue, "conv-2")
    closed = await enqueue(queue, "conv-3", topic="loans")
    await queue.abandon(closed.id)
    await queue.agent_online("zed", ["cards"], 1)
    await queue.agent_offline("zed")
    before = await snapshot(redis_client)

    cases = [
        (lambda: queue.get("T999"), TicketNotFound, "T999 does not exist"),
        (lambda: queue.resolve("T999", "ann"), TicketNotFound, "T999 does not exist"),
        (
            lambda: queue.send_message("T999", "customer", "c", "hi", "m"),
            TicketNotFound,
            "does not exist",
        ),
        (lambda: queue.position("T999"), TicketNotFound, "does not exist"),
        (lambda: queue.audit("T999"), TicketNotFound, "does not exist"),
        (
            lambda: queue.resolve(queued.id, "ann"),
            InvalidTransition,
            "is queued; cannot move it to resolved",
        ),
        (lambda: queue.resolve(closed.id, "ann"), InvalidTransition, "is abandoned"),
        (lambda: queue.return_to_bot(queued.id, "ann"), InvalidTransition, "is queued"),
        (lambda: queue.abandon(closed.id), InvalidTransition, "is abandoned"),
        (lambda: queue.close(closed.id), InvalidTransition, "is abandoned"),
        (
            lambda: queue.requeue(queued.id),
            InvalidTransition,
            "only an assigned ticket can be requeued",
        ),
        (
            lambda: queue.transfer(closed.id, topic="cards"),
            InvalidTransition,
            "only an open ticket",
        ),
        (lambda: queue.claim("pete", assigned.id), InvalidTransition, "is assigned (to ann)"),
        (lambda: queue.claim("pete", queued.id), AgentLacksSkill, "does not take topic cards"),
        (lambda: queue.claim("ann", queued.id), AgentAtCapacity, "at capacity (1 of 1)"),
        (lambda: queue.claim("nobody", queued.id), AgentNotFound, "not registered"),
        (lambda: queue.claim_next("zed"), AgentOffline, "offline"),
        (lambda: queue.heartbeat("zed"), AgentOffline, "offline"),
        (lambda: queue.transfer(queued.id, agent_id="zed"), AgentOffline, "offline"),
        (lambda: queue.agent_offline("nobody"), AgentNotFound, "not registered"),
        (lambda: queue.resolve(assigned.id, "pete"), NotAssignee, "assigned to ann, not to pete"),
        (
            lambda: queue.send_message(assigned.id, "agent", "pete", "hi", "m1"),
            NotAssignee,
            "not assigned to agent pete",
        ),
        (
            lambda: queue.send_message(queued.id, "agent", "ann", "hi", "m1"),
            NotAssignee,
            "not assigned",
        ),
        (
            lambda: queue.send_message(closed.id, "customer", "c", "hi", "m1"),
            InvalidTransition,
            "messages need an open ticket",
        ),
        (
            lambda: queue.send_message(assigned.id, "customer", "c", "x" * 5000, "m1"),
            MessageTooLarge,
            "5000 characters; the limit is 2000 characters",
        ),
        (
            lambda: queue.send_message(assigned.id, "customer", "c", "   ", "m1"),
            InvalidInput,
            "non-empty",
        ),
        (
            lambda: queue.send_message(assigned.id, "robot", "c", "hi", "m1"),
            InvalidInput,
            "sender_role must be one of",
        ),
        (
            lambda: queue.send_message(assigned.id, "customer", "c", "hi", ""),
            InvalidInput,
            "client_message_id",
        ),
        (
            lambda: queue.enqueue("c9", customer(9), ["r"], 10, "cards"),
            InvalidInput,
            "priority must be an integer from 0 to 9",
        ),
        (lambda: queue.enqueue("c9", customer(9), ["r"], True, "cards"), InvalidInput, "priority"),
        (
            lambda: queue.enqueue("c9", customer(9), ["r"], 5, "Cards!"),
            InvalidInput,
            "topic must be",
        ),
        (
            lambda: queue.enqueue("", customer(9), ["r"], 5, "cards"),
            InvalidInput,
            "conversation_id",
        ),
        (
            lambda: queue.enqueue("c9", customer(9), "low_confidence", 5, "cards"),
            InvalidInput,
            "list of reason codes",
        ),
        (
            lambda: queue.enqueue("c9", {"name": "x"}, ["r"], 5, "cards"),
            InvalidInput,
            "customer must have an id",
        ),
        (lambda: queue.agent_online("x", [], 1), InvalidInput, "at least one skill"),
        (lambda: queue.agent_online("x", ["cards"], 0), InvalidInput, "capacity"),
        (
            lambda: queue.read_messages(assigned.id, after="yesterday"),
            InvalidInput,
            "offset must be a stream id",
        ),
        (lambda: queue.transfer(queued.id, topic="NOPE"), InvalidInput, "topic must be"),
    ]
    for call, error, text in cases:
        with pytest.raises(error, match=re.escape(text)) as caught:
            await call()
        assert isinstance(caught.value, QueueError)
        assert await snapshot(redis_client) == before, (
            f"{error.__name__}: {caught.value} changed data"
        )
