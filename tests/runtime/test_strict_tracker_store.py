"""bot.runtime.strict_tracker_store: a tracker store that cannot be reached fails the turn, after
retrying through a Redis restart; it never answers "no such conversation" as Rasa's FailSafe
wrapper does (which started the conversation afresh and later saved the blank over it).
On a real redis-server, stopped and restarted."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest
from rasa.core.agent import Agent
from rasa.core.tracker_store import FailSafeTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from bot.config import Settings
from bot.runtime import strict_tracker_store
from bot.runtime.redis_server import RedisServer
from bot.runtime.strict_tracker_store import StrictTrackerStore
from bot.runtime.tracker_store import configured_store

DOMAIN = Domain.from_dict({"slots": {"topic": {"type": "text", "mappings": [{"type": "custom"}]}}})


def _tracker(sender: str, topic: str) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    tracker.update(SlotSet("topic", topic))
    return tracker


def test_rasas_method_is_the_one_this_patch_was_written_for() -> None:
    assert strict_tracker_store.rasa_source_sha256() == strict_tracker_store.RASA_SOURCE_SHA256


def test_once_applied_an_agent_wraps_its_store_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Agent, "_create_tracker_store", Agent.__dict__["_create_tracker_store"])
    assert isinstance(Agent(domain=DOMAIN).tracker_store, FailSafeTrackerStore)  # Rasa's own
    assert strict_tracker_store.apply() and strict_tracker_store.apply()  # idempotent
    assert isinstance(Agent(domain=DOMAIN).tracker_store, StrictTrackerStore)


@pytest.fixture
def redis_dir(tmp_path: Path) -> Path:
    return tmp_path / "redis"


async def test_an_unreachable_store_raises_where_rasas_wrapper_answers_a_blank_conversation(
    redis_dir: Path,
) -> None:
    server = RedisServer(data_dir=redis_dir, appendonly=True, appendfsync="always").start()
    settings = Settings(redis_url=server.url, queue_namespace=f"strict{uuid.uuid4().hex[:6]}")
    try:
        store = configured_store(DOMAIN, settings=settings)
        await store.save(_tracker("c1", "card_arrival"))
        strict = StrictTrackerStore(store, retry_seconds=0.5)
        failsafe = FailSafeTrackerStore(store)
        server.stop_keep_data()
        assert await failsafe.retrieve("c1") is None  # Rasa's: a blank conversation
        with pytest.raises(Exception, match="(?i)connect"):
            await strict.retrieve("c1")
        with pytest.raises(Exception, match="(?i)connect"):
            await strict.save(_tracker("c1", "overwritten"))
    finally:
        server.restart()
        back = configured_store(DOMAIN, settings=settings)
        kept = await back.retrieve("c1")
        server.stop()
    assert kept is not None and kept.get_slot("topic") == "card_arrival"


async def test_a_redis_restart_within_the_retry_window_is_invisible_to_the_turn(
    redis_dir: Path,
) -> None:
    server = RedisServer(data_dir=redis_dir, appendonly=True, appendfsync="always").start()
    settings = Settings(redis_url=server.url, queue_namespace=f"strict{uuid.uuid4().hex[:6]}")
    try:
        strict = StrictTrackerStore(configured_store(DOMAIN, settings=settings), retry_seconds=8)
        await strict.save(_tracker("c2", "card_arrival"))
        server.kill()  # a crash, restarted 1 s later (as the supervisor does)
        restarter = threading.Timer(1.0, server.restart)
        restarter.start()
        tracker = await strict.retrieve("c2")
        assert tracker is not None and tracker.get_slot("topic") == "card_arrival"
        await strict.save(_tracker("c2", "pin_change"))
        restarter.join()
        again = await strict.retrieve("c2")
        assert again is not None and again.get_slot("topic") == "pin_change"
    finally:
        await asyncio.sleep(0)
        server.stop()
