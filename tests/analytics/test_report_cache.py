"""bot.analytics.report_cache: dashboard reports are computed in a worker thread, once per burst,
while the gateway's event loop goes on serving (ordering checks, no timing assertions)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from redis.asyncio import ConnectionPool, Redis

from bot.analytics.report_cache import ReportCache, thread_collector
from bot.queue import Customer, HandoffQueue


class BlockedReport:
    """A report computation that waits, in its thread, until the test releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.threads: list[int] = []
        self.fail = False

    def __call__(self) -> list:
        self.calls += 1
        self.threads.append(threading.get_ident())
        self.started.set()
        if not self.release.wait(timeout=60):  # never on the loop: the test would hang here
            raise AssertionError("the report was never released")
        if self.fail:
            raise RuntimeError("the event database is unreachable")
        return [f"record-{self.calls}"]


async def test_the_event_loop_serves_redis_while_a_report_is_computing(redis_client: Redis) -> None:
    report = BlockedReport()
    cache = ReportCache(report, ttl_seconds=60)
    order: list[str] = []
    try:
        loading = asyncio.ensure_future(cache.records())
        loading.add_done_callback(lambda _: order.append("report"))
        assert await asyncio.to_thread(report.started.wait, 60)
        # the report is mid-computation: a Redis round trip on this loop still completes
        await redis_client.set("report-cache:probe", "1")
        assert await redis_client.get("report-cache:probe") == "1"
        order.append("redis round trip")
        assert not loading.done()
        report.release.set()
        assert await loading == ["record-1"]
    finally:
        report.release.set()
        cache.close()
    assert order == ["redis round trip", "report"]
    assert report.threads != [threading.get_ident()]


async def test_a_burst_of_dashboard_loads_computes_once_and_a_label_invalidates_it() -> None:
    report = BlockedReport()
    cache = ReportCache(report, ttl_seconds=3600)
    try:
        burst = [asyncio.ensure_future(cache.records()) for _ in range(5)]
        assert await asyncio.to_thread(report.started.wait, 60)
        report.release.set()
        assert await asyncio.gather(*burst) == [["record-1"]] * 5
        assert await cache.records() == ["record-1"]  # fresh: reused
        assert report.calls == 1
        cache.invalidate()
        assert await cache.records() == ["record-2"]
    finally:
        report.release.set()
        cache.close()


async def test_stale_or_failed_reports_are_computed_again() -> None:
    report = BlockedReport()
    report.release.set()
    cache = ReportCache(report, ttl_seconds=0)
    try:
        assert await cache.records() == ["record-1"]
        assert await cache.records() == ["record-2"]  # older than the cache time
        report.fail = True
        with pytest.raises(RuntimeError, match="unreachable"):
            await cache.records()
        report.fail = False
        assert await cache.records() == ["record-4"]
    finally:
        cache.close()


async def test_other_report_work_runs_in_the_report_threads() -> None:
    cache = ReportCache(list, ttl_seconds=1, workers=1)
    try:
        ident = await cache.run(threading.get_ident)
        assert ident != threading.get_ident()
    finally:
        cache.close()


class SentinelLikePool(ConnectionPool):
    """A pool the collector cannot copy (as a Sentinel pool): it must use the caller's client."""


@pytest.mark.parametrize("copyable", [True, False], ids=["own client", "caller's client"])
async def test_the_collector_reads_the_real_stores_from_its_thread(
    redis_client: Redis, tmp_path, copyable: bool
) -> None:
    namespace = f"reports-{copyable}"
    queue = HandoffQueue(redis_client, namespace=namespace)
    ticket = await queue.enqueue("conv-rc", Customer("c1"), ["explicit_request"], 5, "cards")
    await queue.abandon(ticket.id, "customer_cancelled")
    client = redis_client
    if not copyable:
        pool = redis_client.connection_pool
        client = Redis(
            connection_pool=SentinelLikePool(
                connection_class=pool.connection_class, **pool.connection_kwargs
            )
        )
    cache = ReportCache(
        thread_collector(client, namespace, f"sqlite:///{tmp_path / 'events.db'}"),
        ttl_seconds=60,
    )
    try:
        records = await cache.records()
    finally:
        cache.close()
        if client is not redis_client:
            await client.close()
    assert [r.conversation_id for r in records] == ["conv-rc"]
    assert [t.ticket_id for t in records[0].tickets] == [ticket.id]
