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

**Retry-After follows the backlog.** A refused customer is told to come back when the turns
queued ahead of it have been answered: ``(waiting + 1) / throughput`` seconds, rounded up and
bounded to :data:`RETRY_MIN_SECONDS`-:data:`RETRY_MAX_SECONDS`, where ``throughput`` is the turns
this gateway saw answered (slots released) per second over the last :data:`THROUGHPUT_WINDOW`
seconds of busy time (time with a turn in flight: an idle gateway's quiet minutes neither lower
it nor push its measurements out of the window). With no turn answered in that busy time (Rasa
stalled, or the first burst) at most one turn per busy second is assumed, so a stalled Rasa gets
customers back late, not often.
A fixed 5 s made every turn answered under heavy overload cost about 11 refused attempts
(docs/performance.md).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable

from bot.web.turns import RetryLater

RETRY_MIN_SECONDS = 1
RETRY_MAX_SECONDS = 30
THROUGHPUT_WINDOW = 10.0  # seconds of busy time the answered turns are counted over


def busy(retry_after: int) -> RetryLater:
    return RetryLater(
        503,
        "busy",
        "the assistant is answering many customers right now; this message was not sent, "
        "retry shortly",
        retry_after,
    )


class TurnSlot:
    """A held place among the turns in flight; :meth:`release` it once Rasa has answered.
    ``waited``: the turn waited in the queue for it (did not get it at once)."""

    def __init__(self, gate: TurnGate, waited: bool = False) -> None:
        self._gate: TurnGate | None = gate
        self.waited = waited

    def release(self) -> None:
        if self._gate is not None:
            gate, self._gate = self._gate, None
            gate._release()


class TurnGate:
    """At most ``limit`` slots held at once; up to ``queue_max`` callers wait up to
    ``queue_wait`` seconds each (FIFO); the rest get :func:`busy` with a ``Retry-After`` from the
    backlog and the measured throughput (:meth:`retry_after`; ``limit`` 0: no bound)."""

    def __init__(
        self,
        limit: int,
        queue_max: int,
        queue_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.queue_max = queue_max
        self.queue_wait = queue_wait
        self.in_flight = 0
        self.refused = 0
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._clock = clock
        # time runs on a busy clock: seconds with a turn in flight (idle minutes do not count)
        self._busy_total = 0.0  # busy seconds before the current busy period
        self._busy_since: float | None = None  # start of the current busy period
        self._answered: collections.deque[float] = collections.deque()  # busy-clock times

    def _busy_clock(self) -> float:
        since = self._busy_since
        return self._busy_total + (0.0 if since is None else self._clock() - since)

    def _window(self) -> tuple[float, float]:
        """(busy clock now, busy seconds the throughput is measured over)."""
        busy = self._busy_clock()
        return busy, max(1.0, min(THROUGHPUT_WINDOW, busy))

    def throughput(self) -> float | None:
        """Turns answered per second over the last :data:`THROUGHPUT_WINDOW` seconds of busy
        time (None: none answered in it)."""
        busy, span = self._window()
        while self._answered and self._answered[0] < busy - span:
            self._answered.popleft()
        return len(self._answered) / span if self._answered else None

    def retry_after(self) -> int:
        """Seconds until the turns waiting now (and one more) are likely answered, bounded."""
        rate = self.throughput()
        if rate is None:  # nothing answered in the busy time: at most one turn per busy second
            rate = 1.0 / self._window()[1]
        seconds = math.ceil((len(self._waiters) + 1) / rate)
        return min(RETRY_MAX_SECONDS, max(RETRY_MIN_SECONDS, seconds))

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> TurnSlot:
        """A slot, at once or after a short wait; else raises :func:`busy` (503 Retry-After)."""
        if self.limit <= 0 or (self.in_flight < self.limit and not self._waiters):
            if self.in_flight == 0:
                self._busy_since = self._clock()
            self.in_flight += 1
            return TurnSlot(self)
        if len(self._waiters) >= self.queue_max or self.queue_wait <= 0:
            self.refused += 1
            raise busy(self.retry_after())
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
                self._release(answered=False)
            raise
        timer.cancel()
        if not granted:
            self.refused += 1
            raise busy(self.retry_after())
        return TurnSlot(self, waited=True)  # handed over: in_flight already counts it

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(False)

    def _release(self, answered: bool = True) -> None:
        if answered:
            self._answered.append(self._busy_clock())
            if len(self._answered) > 4096:  # bounded whatever the rate; throughput() trims by age
                self._answered.popleft()
        while self._waiters:  # hand the slot to the longest waiting caller still there
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.in_flight -= 1
        if self.in_flight == 0 and self._busy_since is not None:  # idle: the busy clock stops
            self._busy_total += self._clock() - self._busy_since
            self._busy_since = None
