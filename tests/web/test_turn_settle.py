"""A turn that fails because Redis went away still records its outcome once Redis is back
(Conversations._settle): a message that never reached Rasa is released for the customer's retry
instead of leaving a ``pending`` marker that every retry waits on until it reads as unknown.
On a real redis-server, SIGKILLed and restarted with its AOF."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from bot.runtime.redis_server import RedisServer
from bot.web.conversations import Conversations
from bot.web.turns import TurnReservations, TurnState


async def test_an_outcome_redis_could_not_take_is_recorded_when_it_is_back(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path, appendonly=True, appendfsync="always").start()
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        turns = TurnReservations(client, "settle", pending_ttl=120, result_ttl=3600)
        assert await turns.reserve("web-1", "c1")
        assert await turns.state("web-1", "c1") is TurnState.pending
        conversations = Conversations.__new__(Conversations)  # only what _settle uses
        conversations.turns, conversations._running = turns, set()

        server.kill()  # Redis dies while the turn is failing
        await conversations._settle("web-1", "c1", TurnState.absent)
        assert len(conversations._running) == 1  # retried in the background
        await asyncio.to_thread(server.restart)
        (retrying,) = conversations._running
        await asyncio.wait_for(retrying, timeout=30)
        assert await turns.state("web-1", "c1") is TurnState.absent  # a retry runs it
    finally:
        await client.close()
        server.stop()
