"""Fixtures of the action tests: the action code's Redis is the test's real Redis."""

from __future__ import annotations

import pytest

from actions.connections import use_redis
from bot.queue import HandoffQueue


@pytest.fixture
async def redis(redis_server, redis_client):
    use_redis(redis_server.url)  # the action code's connections go to the test's Redis
    yield redis_client
    use_redis(None)


@pytest.fixture
def queue(redis):
    return HandoffQueue(redis, namespace="support")
