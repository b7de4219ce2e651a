"""Admission of bot turns: one gateway has at most ``MAX_TURNS_IN_FLIGHT`` customer turns at
Rasa at once.

A turn beyond that waits in a short FIFO queue (at most ``TURN_QUEUE_MAX`` turns, each at most
``TURN_QUEUE_WAIT_SECONDS``); when the queue is full or the wait is over, the customer gets a
503 ``busy`` with ``Retry-After`` at once instead of piling more work onto a saturated Rasa, so
overload is answered and nothing hangs. The turn was not sent (its client id is released, see
:mod:`bot.web.turns`): a retry runs it. Turns of conversations an agent has taken are not bounded
here; they never reach Rasa.

The bound is per gateway process (in memory, no Redis round trip), like the connection pool it
protects; several gateways each have their own.
"""

from __future__ import annotations

import asyncio
import collections
import math

from bot.web.turns import RetryLater


def busy(retry_after: int) -> RetryLater:
    return RetryLater(
        503,
        "busy",
        "the assistant is answering many customers right now; this message was not sent, "
        "retry shortly",
        retry_after,
    )


class TurnSlot:
    """A held place among the turns in flight; :meth:`release` it once Rasa has answered."""

    def __init__(self, gate: TurnGate) -> None:
        self._gate: TurnGate | None = gate

    def release(self) -> None:
        if self._gate is not None:
            gate, self._gate = self._gate, None
            gate._release()


class TurnGate:
    """At most ``limit`` slots held at once; up to ``queue_max`` callers wait up to
    ``queue_wait`` seconds each (FIFO); the rest get :func:`busy` (``limit`` 0: no bound)."""

    def __init__(self, limit: int, queue_max: int, queue_wait: float) -> None:
        self.limit = limit
        self.queue_max = queue_max
        self.queue_wait = queue_wait
        self.in_flight = 0
        self.refused = 0
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.retry_after = max(1, math.ceil(queue_wait))

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> TurnSlot:
        """A slot, at once or after a short wait; else raises :func:`busy` (503 Retry-After)."""
        if self.limit <= 0 or (self.in_flight < self.limit and not self._waiters):
            self.in_flight += 1
            return TurnSlot(self)
        if len(self._waiters) >= self.queue_max or self.queue_wait <= 0:
            self.refused += 1
            raise busy(self.retry_after)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.queue_wait, self._expire, waiter)
        try:
            granted = await waiter
        except BaseException:  # cancelled while waiting: give back a slot handed over meanwhile
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.result():
                self._release()
            raise
        timer.cancel()
        if not granted:
            self.refused += 1
            raise busy(self.retry_after)
        return TurnSlot(self)  # the slot was handed over: in_flight already counts it

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(False)

    def _release(self) -> None:
        while self._waiters:  # hand the slot to the longest waiting caller still there
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.in_flight -= 1
