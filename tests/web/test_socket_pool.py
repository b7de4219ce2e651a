"""Many open sockets on one real gateway share a fixed, small set of Redis connections (the
notice subscriber and stream fetcher of :mod:`bot.web.fanout`), and each socket still gets its
own conversation's events, in order, and what it missed after a reconnect.

Events are appended with :class:`ConversationEvents`, the writer the gateway itself uses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.web.events import ConversationEvents
from tests.web.conftest import Gateway, _run, gateway_service

SOCKETS = 200
MAX_CONNECTIONS = 16


@pytest.fixture(scope="module")
def pool_gateway(web_redis: RedisServer) -> Iterator[Gateway]:
    nobody = f"http://127.0.0.1:{free_port()}"
    yield from _run(gateway_service("gateway-pool", web_redis.url, nobody, "pooltest"))


async def gateway_connections(redis: Redis, gateway: Gateway) -> int:
    """The gateway's connections in CLIENT LIST (its pool names them ``gateway-<pid>``)."""
    name = f"gateway-{gateway.service.process.pid}"
    count = sum(1 for client in await redis.client_list() if client.get("name") == name)
    assert count >= 1, "the gateway's connections carry its name"
    return count


async def open_socket(
    http: aiohttp.ClientSession, gateway: Gateway, conversation_id: str, token: str, after: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(gateway.ws_url(f"/api/conversations/{conversation_id}/ws"))
    await ws.send_json({"type": "hello", "token": token, "after": after})
    ready = await ws.receive_json(timeout=30)
    assert ready["type"] == "ready", ready
    return ws


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next relayed event (state updates skipped)."""
    while True:
        frame = await ws.receive_json(timeout=30)
        if frame["type"] == "event":
            return frame


@pytest.fixture
async def customers(
    pool_gateway: Gateway,
) -> AsyncIterator[tuple[aiohttp.ClientSession, list[tuple[str, str]]]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def create() -> tuple[str, str]:
            async with http.post(f"{pool_gateway.url}/api/conversations") as response:
                assert response.status in (200, 201), await response.text()
                body = await response.json()
            return body["conversation_id"], body["token"]

        yield http, await asyncio.gather(*(create() for _ in range(SOCKETS)))


async def test_many_sockets_share_a_bounded_pool_and_each_gets_only_its_own_events(
    pool_gateway: Gateway, redis: Redis, customers
) -> None:
    http, conversations = customers
    events = ConversationEvents(redis, pool_gateway.namespace)
    offsets = [await events.last_id(c) for c, _token in conversations]
    sockets = await asyncio.gather(
        *(
            open_socket(http, pool_gateway, c, token, after)
            for (c, token), after in zip(conversations, offsets, strict=True)
        )
    )
    try:
        assert await gateway_connections(redis, pool_gateway) <= MAX_CONNECTIONS
        texts = {c: f"for {c} {uuid.uuid4().hex}" for c, _ in conversations}
        for conversation_id, text in texts.items():
            await events.append(
                conversation_id, [{"type": "notice", "from": "system", "text": text}]
            )

        received = await asyncio.gather(*(next_event(ws) for ws in sockets))
        for (conversation_id, _token), frame in zip(conversations, received, strict=True):
            assert frame["conversation_id"] == conversation_id
            assert frame["event"]["text"] == texts[conversation_id]
        assert await gateway_connections(redis, pool_gateway) <= MAX_CONNECTIONS

        # Nothing else arrives: a second round brings each socket exactly its own next event.
        for conversation_id, _token in conversations:
            await events.append(
                conversation_id, [{"type": "notice", "text": f"2 {conversation_id}"}]
            )
        second = await asyncio.gather(*(next_event(ws) for ws in sockets))
        for (conversation_id, _token), frame in zip(conversations, second, strict=True):
            assert frame["event"]["text"] == f"2 {conversation_id}"
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_a_reconnecting_socket_gets_what_it_missed_in_order(
    pool_gateway: Gateway, redis: Redis, customers
) -> None:
    http, conversations = customers
    conversation_id, token = conversations[0]
    events = ConversationEvents(redis, pool_gateway.namespace)
    others = await asyncio.gather(
        *(open_socket(http, pool_gateway, c, t, "0-0") for c, t in conversations[1:50])
    )
    try:
        after = await events.last_id(conversation_id)
        ws = await open_socket(http, pool_gateway, conversation_id, token, after)
        await events.append(conversation_id, [{"type": "notice", "text": "before"}])
        seen = await next_event(ws)
        assert seen["event"]["text"] == "before"
        await ws.close()

        await events.append(
            conversation_id, [{"type": "notice", "text": f"missed {i}"} for i in range(3)]
        )
        ws = await open_socket(http, pool_gateway, conversation_id, token, seen["event"]["id"])
        replayed = [(await next_event(ws))["event"]["text"] for _ in range(3)]
        assert replayed == ["missed 0", "missed 1", "missed 2"]

        await events.append(conversation_id, [{"type": "notice", "text": "live"}])
        assert (await next_event(ws))["event"]["text"] == "live"
        await ws.close()
    finally:
        await asyncio.gather(*(other.close() for other in others))
