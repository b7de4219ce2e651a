"""The gateway's bound on bot turns in flight (bot/web/admission.py), on a real event loop."""

from __future__ import annotations

import asyncio

import pytest

from bot.web.admission import RETRY_MAX_SECONDS, THROUGHPUT_WINDOW, TurnGate
from bot.web.turns import RetryLater


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_turns_beyond_the_limit_and_the_queue_are_refused_with_retry_after_at_once():
    gate = TurnGate(limit=2, queue_max=0, queue_wait=5)
    held = [await gate.enter(), await gate.enter()]
    with pytest.raises(RetryLater) as refused:
        await gate.enter()
    assert refused.value.status == 503 and refused.value.code == "busy"
    assert 1 <= int(refused.value.response().headers["Retry-After"]) <= RETRY_MAX_SECONDS
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


async def _queued(gate: TurnGate, count: int) -> list[asyncio.Task]:
    """`count` callers waiting in the gate's queue."""
    waiters = [asyncio.create_task(gate.enter()) for _ in range(count)]
    await asyncio.sleep(0)
    assert gate.waiting == count
    return waiters


async def _refused_retry_after(gate: TurnGate) -> int:
    with pytest.raises(RetryLater) as refused:
        await gate.enter()
    assert refused.value.code == "busy"
    header = refused.value.response().headers["Retry-After"]
    assert int(header) == refused.value.retry_after
    return int(header)


async def test_retry_after_is_the_time_the_measured_throughput_needs_for_the_queue_ahead():
    clock = Clock()
    gate = TurnGate(limit=1, queue_max=3, queue_wait=600, clock=clock)
    for _ in range(5):  # five turns answered over the last 10 s of busy time: 0.5 turns/s
        slot = await gate.enter()
        clock.now += 2
        slot.release()
    held = await gate.enter()
    waiters = await _queued(gate, 3)
    assert gate.throughput() == pytest.approx(0.5)
    # three waiting ahead and this one: 4 turns at 0.5/s
    assert await _refused_retry_after(gate) == 8
    held.release()
    for waiter in waiters:
        (await waiter).release()
    assert gate.in_flight == 0 and gate.waiting == 0


async def test_a_faster_rasa_gets_customers_back_sooner():
    clock = Clock()
    gate = TurnGate(limit=1, queue_max=3, queue_wait=600, clock=clock)
    slot = await gate.enter()
    for _ in range(40):  # 40 turns in 10 s: 4 per second
        clock.now += 0.25
        slot.release()
        slot = await gate.enter()
    waiters = await _queued(gate, 3)
    assert await _refused_retry_after(gate) == 1  # 4 turns at 4/s
    slot.release()
    for waiter in waiters:
        (await waiter).release()


async def test_with_nothing_answered_at_most_one_turn_per_busy_second_is_assumed_up_to_the_cap():
    clock = Clock()
    gate = TurnGate(limit=1, queue_max=2, queue_wait=600, clock=clock)
    held = await gate.enter()
    waiters = await _queued(gate, 2)
    clock.now += 3  # Rasa answered nothing for 3 s: 3 waiting-and-new turns take >= 9 s
    assert gate.throughput() is None
    assert await _refused_retry_after(gate) == 9
    clock.now += 60  # a stalled Rasa: the busy span is capped at the window, the answer at 30 s
    assert await _refused_retry_after(gate) == min(RETRY_MAX_SECONDS, 3 * int(THROUGHPUT_WINDOW))
    held.release()
    for waiter in waiters:
        (await waiter).release()


async def test_idle_time_does_not_count_and_answers_older_than_the_window_drop_out():
    clock = Clock()
    gate = TurnGate(limit=1, queue_max=0, queue_wait=600, clock=clock)
    for _ in range(20):  # 20 turns answered in 2 s of busy time ...
        slot = await gate.enter()
        clock.now += 0.1
        slot.release()
    clock.now += 3600  # ... then an hour idle: not busy time, so it dilutes nothing
    held = await gate.enter()
    clock.now += 0.5
    assert gate.throughput() == pytest.approx(20 / 2.5)
    assert await _refused_retry_after(gate) == 1
    clock.now += THROUGHPUT_WINDOW + 5  # a turn in flight and nothing answered for > the window
    assert gate.throughput() is None
    assert await _refused_retry_after(gate) == int(THROUGHPUT_WINDOW)
    held.release()
    assert gate.in_flight == 0
