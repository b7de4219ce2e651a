"""bot.runtime.lock_store: Rasa's per-conversation ticket lock in Redis, drawn atomically.

Rasa open source's RedisLockStore reads the lock, adds a ticket in Python and writes it back
(rasa issue #9213); two callers that interleave get the same ticket. The project's store draws
with one Lua script: N concurrent callers (threads, each with its own connection, real Redis) get
N distinct tickets.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from rasa.core.lock_store import LockError, RedisLockStore

from bot import keys
from bot.config import PROJECT_ROOT
from bot.runtime import lock_store
from bot.runtime.lock_store import AtomicRedisLockStore
from bot.runtime.redis_server import RedisServer

CALLERS = 16
TICKETS_EACH = 25


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[RedisServer]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server


_OPEN: list[AtomicRedisLockStore] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Every store a test opens stops its heartbeat thread when the test ends."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _store(
    url: str, owner_ttl: float | None = None, asyncio_client: bool = False
) -> AtomicRedisLockStore:
    """The store on ``url``; with ``asyncio_client`` its ``lock()`` uses redis-py's asyncio
    client (as in Rasa), else it is Rasa's own ``lock()`` on the blocking client."""
    make = (
        (lambda: redis.asyncio.Redis.from_url(url, decode_responses=True))
        if asyncio_client
        else None
    )
    store = AtomicRedisLockStore(
        client=redis.Redis.from_url(url, decode_responses=True),
        async_client=make,
        namespace="locktest",
        owner_ttl=owner_ttl,
    )
    _OPEN.append(store)
    return store


def _draw_concurrently(make_store, conversation: str) -> list[int]:
    """CALLERS threads, each with its own store and connection, draw TICKETS_EACH tickets."""
    barrier = threading.Barrier(CALLERS)
    results: list[list[int]] = [[] for _ in range(CALLERS)]

    def draw(index: int) -> None:
        store = make_store()
        barrier.wait()
        for _ in range(TICKETS_EACH):
            results[index].append(store.issue_ticket(conversation, 60))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [ticket for tickets in results for ticket in tickets]


def test_concurrent_issue_ticket_calls_get_distinct_tickets(server: RedisServer) -> None:
    tickets = _draw_concurrently(lambda: _store(server.url), "c1")
    assert len(tickets) == CALLERS * TICKETS_EACH
    assert len(set(tickets)) == len(tickets)
    lock = _store(server.url).get_lock("c1")
    assert lock is not None and len(lock.tickets) == len(tickets)
    assert lock.now_serving == min(tickets)


def test_rasa_oss_store_hands_out_the_same_ticket_twice_when_calls_interleave(
    server: RedisServer,
) -> None:
    """The race the project's store removes, forced deterministically: two Rasa servers both read
    the lock before either writes it back (Rasa's LockStore.issue_ticket: get, add, save)."""
    host, port = server.host, server.port
    first, second = (RedisLockStore(host=host, port=port, db=0) for _ in range(2))
    lock_a = first.get_or_create_lock("c2")  # server A reads
    lock_b = second.get_or_create_lock("c2")  # server B reads the same state
    ticket_a = lock_a.issue_ticket(60)
    first.save_lock(lock_a)
    ticket_b = lock_b.issue_ticket(60)
    second.save_lock(lock_b)
    assert ticket_a == ticket_b  # both turns of the conversation would run at once
    # the project's store, drawing at the same two moments, cannot: each draw is one script
    store_a, store_b = _store(server.url), _store(server.url)
    assert store_a.issue_ticket("c2", 60) != store_b.issue_ticket("c2", 60)


def test_tickets_are_served_in_order_and_the_lock_goes_when_the_last_is_returned(
    server: RedisServer,
) -> None:
    store = _store(server.url)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    key = keys.RASA_LOCK.format(ns="locktest", conversation="c3")
    one, two = store.issue_ticket("c3", 60), store.issue_ticket("c3", 60)
    lock = store.get_lock("c3")
    assert lock is not None and not lock.is_locked(one) and lock.is_locked(two)
    assert 0 < client.pttl(key) <= 61_000
    store.cleanup("c3", one)
    lock = store.get_lock("c3")
    assert lock is not None and not lock.is_locked(two)
    assert store.is_someone_waiting("c3")
    store.cleanup("c3", two)
    assert store.get_lock("c3") is None
    assert client.exists(key) == 0
    client.close()


@pytest.mark.parametrize("asyncio_client", [False, True])
async def test_rasa_lock_context_serialises_two_turns_of_one_conversation(
    server: RedisServer, asyncio_client: bool
) -> None:
    """`lock()` (issue, wait, clean up), Rasa's own and the store's on the asyncio client: the
    second turn starts only after the first has finished, even from a second store (a second
    Rasa server)."""
    stores = [
        _store(server.url, asyncio_client=asyncio_client),
        _store(server.url, asyncio_client=asyncio_client),
    ]
    order: list[str] = []
    first_inside = asyncio.Event()

    async def turn(name: str, store: AtomicRedisLockStore, hold: asyncio.Event | None) -> None:
        async with store.lock("c4", wait_time_in_seconds=0.05):
            order.append(f"{name} start")
            if hold is not None:
                first_inside.set()
                await asyncio.sleep(0.3)
            order.append(f"{name} end")

    first = asyncio.create_task(turn("a", stores[0], first_inside))
    await first_inside.wait()
    await asyncio.gather(first, turn("b", stores[1], None))
    assert order == ["a start", "a end", "b start", "b end"]
    assert stores[0].get_lock("c4") is None


def test_expired_tickets_stop_blocking_the_queue(server: RedisServer) -> None:
    store = _store(server.url)
    stale = store.issue_ticket("c5", -1)  # already expired: a Rasa that died holding it
    fresh = store.issue_ticket("c5", 60)  # drawing drops expired tickets
    lock = store.get_lock("c5")
    assert lock is not None and [t.number for t in lock.tickets] == [fresh] and stale < fresh


def test_rasas_lock_is_the_one_the_asyncio_lock_mirrors() -> None:
    """Fails when a Rasa upgrade changes `LockStore.lock` or `_acquire_lock`: review
    `AtomicRedisLockStore.lock`, then update the hash."""
    assert lock_store.rasa_lock_source_sha256() == lock_store.RASA_LOCK_SOURCE_SHA256


@pytest.mark.parametrize("asyncio_client", [False, True])
async def test_a_turn_waits_for_an_expired_holder_and_gives_its_ticket_back_on_error(
    server: RedisServer, asyncio_client: bool
) -> None:
    store = _store(server.url, asyncio_client=asyncio_client)
    stale = store.issue_ticket("c9", 0.2)  # a Rasa that died holding the lock
    with pytest.raises(RuntimeError):
        async with store.lock("c9", wait_time_in_seconds=0.05) as lock:
            assert not lock.is_locked(stale + 1)  # served once the stale ticket expired
            raise RuntimeError("the turn failed")
    assert store.get_lock("c9") is None  # the ticket was given back, the lock deleted


@pytest.mark.parametrize("asyncio_client", [False, True])
async def test_a_lock_deleted_while_waiting_is_a_lock_error(
    server: RedisServer, asyncio_client: bool
) -> None:
    store = _store(server.url, asyncio_client=asyncio_client)
    store.issue_ticket("c10", 60)  # someone holds it

    async def delete_soon() -> None:
        await asyncio.sleep(0.1)
        store.delete_lock("c10")

    deleting = asyncio.create_task(delete_soon())
    with pytest.raises(LockError):
        async with store.lock("c10", wait_time_in_seconds=0.05):
            pass
    await deleting


def test_a_ticket_of_a_live_owner_holds_until_it_is_given_back(server: RedisServer) -> None:
    holder = _store(server.url, owner_ttl=1.0)
    waiter = _store(server.url)
    held = holder.issue_ticket("c6", 60)
    queued = waiter.issue_ticket("c6", 60)
    time.sleep(1.5)  # longer than the TTL: only the heartbeat thread keeps the owner alive
    waiter.update_lock("c6")
    lock = waiter.get_lock("c6")
    assert lock is not None and lock.is_locked(queued)
    holder.cleanup("c6", held)
    lock = waiter.get_lock("c6")
    assert lock is not None and not lock.is_locked(queued)


def test_a_ticket_whose_owner_stopped_beating_is_dropped_on_the_next_update(
    server: RedisServer,
) -> None:
    holder = _store(server.url)
    waiter = _store(server.url)
    held = holder.issue_ticket("c7", 60)
    queued = waiter.issue_ticket("c7", 60)
    holder.close()  # as if its process had died: the heartbeat key is gone
    lock = waiter.get_lock("c7")
    assert lock is not None and lock.is_locked(queued)  # until the waiting loop updates it
    waiter.update_lock("c7")
    lock = waiter.get_lock("c7")
    assert lock is not None and [t.number for t in lock.tickets] == [queued] and held < queued
    client = redis.Redis.from_url(server.url, decode_responses=True)
    fields = client.hgetall(keys.RASA_LOCK.format(ns="locktest", conversation="c7"))
    client.close()
    assert fields.pop(f"t:{queued}")
    assert fields == {"seq": str(queued), f"o:{queued}": waiter.owner}


HOLDER = """
import sys, time, redis
from bot.runtime.lock_store import AtomicRedisLockStore
store = AtomicRedisLockStore(
    client=redis.Redis.from_url(sys.argv[1], decode_responses=True), namespace="locktest",
    owner_ttl=float(sys.argv[2]),
)
print(store.issue_ticket("c8", 60), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("asyncio_client", [False, True])
def test_a_sigkilled_rasa_releases_its_conversations_within_the_heartbeat_ttl(
    server: RedisServer, asyncio_client: bool
) -> None:
    """A real process draws a ticket (a Rasa in the middle of a turn) and is killed with SIGKILL:
    `lock()` from another store (Rasa's own, and the store's on the asyncio client) gets the lock
    about one TTL later, not after the ticket's 60 s lifetime."""
    ttl = 2.0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, server.url, str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        assert holder.stdout is not None
        assert int(holder.stdout.readline()) == 1
        waiter = _store(server.url, asyncio_client=asyncio_client)
        started = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        holder.wait()

        async def next_turn() -> float:
            async with waiter.lock("c8", wait_time_in_seconds=0.1):
                return time.monotonic() - started

        waited = asyncio.run(next_turn())
        assert waited < ttl + 3.0, waited  # the dead ticket would have held it for 60 s
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
