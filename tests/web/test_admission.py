"""The gateway's bound on bot turns in flight (bot/web/admission.py), on a real event loop."""

from __future__ import annotations

import asyncio

import pytest

from bot.web.admission import TurnGate
from bot.web.turns import RetryLater


async def test_turns_beyond_the_limit_and_the_queue_are_refused_with_retry_after_at_once():
    gate = TurnGate(limit=2, queue_max=0, queue_wait=5)
    held = [await gate.enter(), await gate.enter()]
    with pytest.raises(RetryLater) as refused:
        await gate.enter()
    assert refused.value.status == 503 and refused.value.code == "busy"
    assert refused.value.response().headers["Retry-After"] == "5"
    held[0].release()
    third = await gate.enter()  # a released place is free again
    assert gate.in_flight == 2
    third.release()
    held[1].release()
    assert gate.in_flight == 0


async def test_a_waiting_turn_gets_the_next_released_place_first_come_first_served():
    gate = TurnGate(limit=1, queue_max=5, queue_wait=60)
    first = await gate.enter()
    order: list[str] = []

    async def wait(name: str) -> None:
        slot = await gate.enter()
        order.append(name)
        slot.release()

    waiters = [asyncio.create_task(wait(name)) for name in ("a", "b", "c")]
    await asyncio.sleep(0)  # one pass of the loop: each waiter runs until it waits
    assert gate.waiting == 3
    assert gate.in_flight == 1 and order == []
    first.release()
    await asyncio.gather(*waiters)
    assert order == ["a", "b", "c"]
    assert gate.in_flight == 0 and gate.waiting == 0


async def test_a_turn_that_waited_its_time_gets_busy_and_leaves_the_queue():
    gate = TurnGate(limit=1, queue_max=5, queue_wait=0.05)
    held = await gate.enter()
    with pytest.raises(RetryLater) as refused:
        await gate.enter()
    assert refused.value.code == "busy" and int(refused.value.retry_after) >= 1
    assert gate.waiting == 0 and gate.refused == 1
    held.release()
    assert gate.in_flight == 0


async def test_a_cancelled_waiter_does_not_leak_a_place():
    gate = TurnGate(limit=1, queue_max=5, queue_wait=60)
    held = await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    held.release()  # handed to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs: the place comes back
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.in_flight == 0 and gate.waiting == 0
    again = await gate.enter()
    again.release()
    assert gate.in_flight == 0


async def test_releasing_twice_counts_once_and_limit_zero_means_no_bound():
    gate = TurnGate(limit=0, queue_max=0, queue_wait=0)
    slots = [await gate.enter() for _ in range(100)]
    for slot in slots:
        slot.release()
        slot.release()
    assert gate.in_flight == 0
