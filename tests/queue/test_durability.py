"""Redis SIGKILLed mid-load and restarted with AOF (appendfsync always): every acknowledged
ticket, state change and message is there; retries of the calls that failed do not duplicate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.queue import Customer, HandoffQueue, TicketState
from bot.runtime.redis_server import RedisServer

WRITERS = 8
KILL_AFTER = 300  # acknowledged tickets


async def test_sigkill_and_restart_with_aof_always_loses_nothing(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    try:
        await _crash_and_check(server)
    finally:
        server.stop()


async def _crash_and_check(server: RedisServer) -> None:
    q = HandoffQueue.from_url(server.url, namespace="crash")
    await q.agent_online("ann", ["cards"], 1000)
    tickets: dict[str, str] = {}  # conversation -> ticket id (acknowledged)
    messages: dict[tuple[str, str], tuple[str, str]] = {}  # (ticket, cmid) -> (stream id, text)
    resolved: set[str] = set()
    failed: list[tuple[str, int]] = []  # (writer's conversation, step) that got no answer
    enough = asyncio.Event()

    async def writer(w: int) -> None:
        k = 0
        while True:
            conv = f"w{w}-{k}"
            step = 0
            try:
                t = await q.enqueue(conv, Customer(f"c-{conv}"), ["r"], k % 10, "cards")
                tickets[conv] = t.id
                step = 1
                text = f"message {k} from writer {w}"
                m = await q.send_message(t.id, "customer", f"c-{conv}", text, f"cm-{conv}")
                messages[(t.id, f"cm-{conv}")] = (m.id, text)
                step = 2
                if k % 3 == 0:
                    await q.resolve(t.id, "ann", "done")
                    resolved.add(t.id)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                failed.append((conv, step))
                return
            if len(tickets) >= KILL_AFTER:
                enough.set()
            k += 1

    writers = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
    await asyncio.wait_for(enough.wait(), 60)
    await asyncio.to_thread(server.kill)  # while the writers keep writing
    await asyncio.wait_for(asyncio.gather(*writers), 30)
    assert len(failed) == WRITERS
    await q.aclose()

    server.restart()
    q = HandoffQueue.from_url(server.url, namespace="crash")
    try:
        # every acknowledged ticket is there, in (at least) its acknowledged state
        assert len(tickets) >= KILL_AFTER
        stored = {t.id: t for t in await q.get_many(tickets.values())}
        assert set(stored) == set(tickets.values())
        for conv, tid in tickets.items():
            assert stored[tid].conversation_id == conv
        for tid in resolved:
            assert stored[tid].state == TicketState.RESOLVED
        # every acknowledged message, with its id and text
        for (tid, _cmid), (mid, text) in messages.items():
            log = await q.read_messages(tid)
            assert [(m.id, m.text) for m in log] == [(mid, text)]
        # the agent's set agrees with the tickets
        ann = await q.agent("ann")
        assigned = {tid for tid, t in stored.items() if t.state == TicketState.ASSIGNED}
        assert assigned <= set(ann.tickets)
        # retrying what failed (same conversation / client message id) never duplicates
        for conv, step in failed:
            t = await q.enqueue(conv, Customer(f"c-{conv}"), ["r"], 1, "cards")
            if conv in tickets:
                first = await q.get(tickets[conv])
                if first.state == TicketState.RESOLVED:  # the resolve in flight did happen
                    assert step == 2 and t.previous_ticket_id == first.id and not t.duplicate
                    continue
                assert t.id == tickets[conv] and t.duplicate
            for _ in range(2):
                await q.send_message(t.id, "customer", f"c-{conv}", "retry", f"cm-{conv}")
            assert len(await q.read_messages(t.id)) == 1
        convs = [t.conversation_id for t in await q.list_tickets()]
        assert len(convs) == len(set(convs))
    finally:
        await q.aclose()
