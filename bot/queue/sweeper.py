"""The sweeper: takes agents whose lease lapsed offline (their tickets back to the front of
their queues and on to free agents) and flags tickets past their first-response SLA
(:class:`QueueSweeper`, mixed into :class:`bot.queue.client.HandoffQueue`).

**Who runs it:** the web gateway runs :meth:`QueueSweeper.run_sweeper` as a background task.
Any number of processes may run it at once: each sweep is one atomic script.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.queue.records import SweepResult
from bot.queue.scripts import ScriptRunner

log = logging.getLogger(__name__)


class QueueSweeper:
    """Upkeep of a :class:`HandoffQueue`: lapsed leases and SLA breaches."""

    sweep_interval: float
    _scripts: ScriptRunner

    # -- sweeper ----------------------------------------------------------------------------

    async def reap_expired(self, limit: int = 1000) -> SweepResult:
        """One sweep: take agents whose lease lapsed offline (their tickets to the front of their
        queues and on to free agents) and flag tickets past their first-response SLA."""
        lapsed, requeued, breached = await self._scripts.run("sweep", int(limit))
        return SweepResult(tuple(lapsed), tuple(requeued), tuple(breached))

    async def run_sweeper(
        self, interval: float | None = None, stop: asyncio.Event | None = None
    ) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set or the task is cancelled. Errors
        (e.g. Redis restarting) are logged and retried. The gateway runs this as a background
        task; running it in several processes at once is safe."""
        period = interval if interval is not None else self.sweep_interval
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                result = await self.reap_expired()
                if result.lapsed_agents or result.sla_breached:
                    log.info(
                        "queue sweep: offline %s, requeued %s, SLA breached %s",
                        result.lapsed_agents, result.requeued, result.sla_breached,
                    )  # fmt: skip
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("queue sweep failed (will retry): %s", error)
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except asyncio.TimeoutError:
                pass
