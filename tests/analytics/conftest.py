"""Fixtures of the analytics tests: a real redis-server of their own (bot.redis_server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from bot.redis_server import RedisServer


@pytest.fixture(scope="session")
def analytics_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("analytics-redis"), appendonly=True)
    with server:
        yield server


@pytest.fixture
async def redis(analytics_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(analytics_redis.url, decode_responses=True)
    yield client
    await client.close()
