"""Fixtures of the handoff-queue tests (helpers are in ``helpers.py``)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bot.queue import HandoffQueue


@pytest.fixture
async def queue(redis_client: Redis) -> HandoffQueue:
    """A queue with a long lease (tests that need lapses build their own)."""
    return HandoffQueue(redis_client, namespace="test", lease_seconds=30.0)
