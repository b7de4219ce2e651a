"""bot.redis_clients: a Redis from REDIS_URL, or the master a real Redis Sentinel names;
the tracker and lock stores work through Sentinel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from bot.config import Settings
from bot.redis_clients import RedisTarget, parse_sentinels
from bot.runtime.lock_store import AtomicRedisLockStore
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer, find_redis_server
from bot.runtime.tracker_store import RedisTrackerStore, configured_store


def test_sentinel_addresses_are_parsed_or_refused_clearly() -> None:
    assert parse_sentinels("a:26379, b:26380,") == [("a", 26379), ("b", 26380)]
    for bad in ("", "a", "a:port", ":1"):
        with pytest.raises(ValueError, match="REDIS_SENTINELS"):
            parse_sentinels(bad)


def test_sentinel_settings_win_over_the_url() -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0", redis_sentinels="s1:26379", redis_sentinel_master="m"
    )
    target = RedisTarget.from_settings(settings)
    assert target.url is None and target.sentinels == (("s1", 26379),) and target.master == "m"
    assert RedisTarget.from_settings(Settings(redis_url="redis://h:2/0")).url == "redis://h:2/0"
    with pytest.raises(ValueError, match="REDIS_URL or REDIS_SENTINELS"):
        RedisTarget.from_settings(Settings(redis_url=None))


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, RedisServer]]:
    """A master and one real sentinel (redis-server --sentinel) watching it as `support`."""
    with RedisServer(data_dir=tmp_path / "master") as master:
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {tmp_path}\n"
            f"sentinel monitor support 127.0.0.1 {master.port} 1\n"
        )
        process = subprocess.Popen(
            [find_redis_server(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            target = RedisTarget(sentinels=(("127.0.0.1", port),), master="support")
            deadline = time.monotonic() + 20
            while True:  # until the sentinel answers (start-up, not a timing assertion)
                try:
                    target.sync_client().ping()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield port, master
        finally:
            process.kill()
            process.wait()


async def test_the_stores_reach_the_master_through_sentinel(
    sentinel: tuple[int, RedisServer],
) -> None:
    port, master = sentinel
    settings = Settings(redis_url=None, redis_sentinels=f"127.0.0.1:{port}", queue_namespace="sen")
    domain = Domain.from_dict(
        {"slots": {"topic": {"type": "text", "mappings": [{"type": "custom"}]}}}
    )
    store = configured_store(domain, settings=settings)
    assert isinstance(store, RedisTrackerStore) and store.target.sentinels
    tracker = DialogueStateTracker("s-1", domain.slots)
    tracker.update(SlotSet("topic", "card_arrival"))
    await store.save(tracker)
    back = await configured_store(domain, settings=settings).retrieve("s-1")
    assert back is not None and back.get_slot("topic") == "card_arrival"
    direct = RedisTarget(url=master.url).sync_client(decode_responses=True)
    assert direct.exists("sen:rasa:tracker:s-1") == 1  # the data is on the master
    locks = AtomicRedisLockStore(settings=settings)
    assert locks.issue_ticket("s-1", 60) == 1 and locks.issue_ticket("s-1", 60) == 2
    assert direct.hget("sen:rasa:lock:s-1", "seq") == "2"
    assert direct.exists(locks.owner_key) == 1  # its heartbeat, through Sentinel too
    locks.close()
    direct.close()
