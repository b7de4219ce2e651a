"""Issue 12, finding 7: rate limits and caps, kept in Redis, against real gateways and Redis.

Every limit answers 429 with ``Retry-After`` (a WebSocket over its conversation's cap is closed
with 4429). Limits are set low per test through the gateway's settings; bursts are sent in
parallel, so a limit that is checked and charged in two steps would let more through.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.web.auth import Agent, AgentAccounts
from tests.security.gateways import PASSWORD, gateway, new_conversation


def assert_429(status: int, headers: dict, body: dict) -> None:
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "too_many_requests"


async def post(http: aiohttp.ClientSession, url: str, **kwargs) -> tuple[int, dict, dict]:
    async with http.post(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.json()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def test_conversations_per_ip_a_burst_of_60_creates_only_the_limit(redis_server, http):
    with gateway(redis_server.url, {"RATE_LIMIT_CONVERSATIONS_PER_IP": "5/h"}) as gw:
        results = await asyncio.gather(
            *(post(http, f"{gw.url}/api/conversations") for _ in range(60))
        )
    created = [r for r in results if r[0] == 201]
    refused = [r for r in results if r[0] != 201]
    assert len(created) == 5
    for status, headers, body in refused:
        assert_429(status, headers, body)


async def test_two_gateways_share_one_limit(redis_server, http):
    env = {"RATE_LIMIT_CONVERSATIONS_PER_IP": "6/h"}
    with gateway(redis_server.url, env) as first:
        with gateway(redis_server.url, env, namespace=first.namespace) as second:
            results = await asyncio.gather(
                *(post(http, f"{gw.url}/api/conversations") for gw in [first, second] * 10)
            )
    assert sorted(r[0] for r in results) == [201] * 6 + [429] * 14


async def test_messages_per_conversation_are_limited_before_rasa(redis_server, http):
    env = {"RATE_LIMIT_MESSAGES_PER_CONVERSATION": "3/h"}
    with gateway(redis_server.url, env) as gw:
        conversation, token = await new_conversation(http, gw)
        url = f"{gw.url}/api/conversations/{conversation}/messages"
        headers = {"Authorization": f"Bearer {token}"}
        results = await asyncio.gather(
            *(post(http, url, json={"text": f"hello {i}"}, headers=headers) for i in range(12))
        )
        other, other_token = await new_conversation(http, gw)
        other_status, _, _ = await post(
            http,
            f"{gw.url}/api/conversations/{other}/messages",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {other_token}"},
        )
    # Rasa is unreachable here (the gateway stores the message and says so: 200): the limit is
    # charged before the bot is asked
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 3 + [429] * 9
    for result in results:
        if result[0] == 429:
            assert_429(*result)
    assert other_status == 200  # another conversation has its own budget


async def test_messages_per_ip_are_limited_across_conversations(redis_server, http):
    env = {"RATE_LIMIT_MESSAGES_PER_IP": "4/h"}
    with gateway(redis_server.url, env) as gw:
        sends = []
        for _ in range(3):
            conversation, token = await new_conversation(http, gw)
            url = f"{gw.url}/api/conversations/{conversation}/messages"
            headers = {"Authorization": f"Bearer {token}"}
            sends += [post(http, url, json={"text": "hi"}, headers=headers) for _ in range(3)]
        results = await asyncio.gather(*sends)
    assert sorted(r[0] for r in results) == [200] * 4 + [429] * 5


async def test_a_typing_flood_never_touches_the_message_stream_and_is_cut_to_the_limit(
    redis_server, http
):
    env = {"RATE_LIMIT_TYPING_PER_CONVERSATION": "5/h"}
    with gateway(redis_server.url, env) as gw:
        conversation, token = await new_conversation(http, gw)
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        stream = f"{gw.namespace}:web:conv:{conversation}:events"
        await redis.xadd(stream, {"e": json.dumps({"type": "message", "from": "bot", "text": "x"})})
        ws_url = gw.ws_url(f"/api/conversations/{conversation}/ws")
        async with http.ws_connect(ws_url) as watcher, http.ws_connect(ws_url) as flooder:
            for ws in (watcher, flooder):
                await ws.send_json({"type": "hello", "token": token})
                assert (await ws.receive_json(timeout=10))["type"] == "ready"
            for i in range(2600):
                await flooder.send_json({"type": "typing", "typing": i % 2 == 0})
            typing_seen = 0
            while typing_seen < 5:  # the five within the limit are relayed
                frame = await watcher.receive_json(timeout=30)
                typing_seen += frame.get("event", {}).get("type") == "typing"
            # the budget is used up: the HTTP route, which shares it, is refused
            status, headers, body = await post(
                http,
                f"{gw.url}/api/conversations/{conversation}/typing",
                json={"typing": True},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert_429(status, headers, body)
            with pytest.raises(asyncio.TimeoutError):
                while True:  # and nothing more of the flood is relayed
                    frame = await watcher.receive_json(timeout=3)
                    typing_seen += frame.get("event", {}).get("type") == "typing"
        entries = await redis.xrange(stream)
        await redis.close()
    assert typing_seen == 5
    assert len(entries) == 1  # only the message: typing is never stored in the stream
    assert all(json.loads(e[1]["e"])["type"] != "typing" for e in entries)


async def test_sockets_per_conversation_are_capped_and_freed_on_close(redis_server, http):
    with gateway(redis_server.url, {"MAX_SOCKETS_PER_CONVERSATION": "2"}) as gw:
        conversation, token = await new_conversation(http, gw)
        url = gw.ws_url(f"/api/conversations/{conversation}/ws")

        async def open_socket():
            ws = await http.ws_connect(url)
            await ws.send_json({"type": "hello", "token": token})
            return ws, await ws.receive_json(timeout=10)

        first, first_frame = await open_socket()
        second, second_frame = await open_socket()
        third, third_frame = await open_socket()
        assert first_frame["type"] == second_frame["type"] == "ready"
        assert third_frame["type"] == "error"
        await third.receive(timeout=10)  # the close frame
        assert third.close_code == 4429
        await first.close()
        for _ in range(50):  # the slot is freed when the gateway has seen the close
            fourth, fourth_frame = await open_socket()
            if fourth_frame["type"] == "ready":
                break
            await fourth.close()
            await asyncio.sleep(0.1)
        assert fourth_frame["type"] == "ready"
        for ws in (second, third, fourth):
            await ws.close()


async def test_sockets_per_ip_are_capped_at_the_upgrade_with_429(redis_server, http):
    with gateway(redis_server.url, {"MAX_SOCKETS_PER_IP": "3"}) as gw:
        opened = []
        for _ in range(3):
            conversation, _token = await new_conversation(http, gw)
            opened.append(await http.ws_connect(gw.ws_url(f"/api/conversations/{conversation}/ws")))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(gw.ws_url("/api/agent/ws"))
        assert refused.value.status == 429
        assert int(refused.value.headers["Retry-After"]) >= 1
        for ws in opened:
            await ws.close()


async def test_parallel_login_guesses_cannot_pass_the_per_account_limit(redis_server, http):
    env = {"RATE_LIMIT_LOGINS_PER_ACCOUNT": "5/h"}
    with gateway(redis_server.url, env) as gw:
        redis = Redis.from_url(redis_server.url, decode_responses=True)
        await AgentAccounts(redis, gw.namespace).create(
            Agent(login="ann@x.example", name="A"), PASSWORD
        )
        await redis.close()
        url = f"{gw.url}/api/agent/login"
        guesses = [{"login": "ann@x.example", "password": f"guess-{i:04d}"} for i in range(40)]
        results = await asyncio.gather(*(post(http, url, json=g) for g in guesses))
        right = await post(http, url, json={"login": "ANN@x.example", "password": PASSWORD})
    assert sorted(r[0] for r in results) == [401] * 5 + [429] * 35
    for result in results:
        if result[0] == 429:
            assert_429(*result)
    assert_429(*right)  # counted before the password is checked: the right one waits too


async def test_login_attempts_per_ip_are_limited_across_accounts(redis_server, http):
    env = {"RATE_LIMIT_LOGINS_PER_IP": "6/h"}
    with gateway(redis_server.url, env) as gw:
        url = f"{gw.url}/api/agent/login"
        guesses = [{"login": f"user{i}@x.example", "password": "guess-guess"} for i in range(20)]
        results = await asyncio.gather(*(post(http, url, json=g) for g in guesses))
    assert sorted(r[0] for r in results) == [401] * 6 + [429] * 14


async def _scripts_naming(redis_url: str, needle: str, send) -> list[str]:
    """The script calls (EVAL/EVALSHA) Redis received naming `needle` while `send` ran."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    seen: list[str] = []
    async with redis.monitor() as monitor:
        listening = asyncio.ensure_future(_collect(monitor, seen))
        await asyncio.sleep(0.2)
        await send()
        await post_marker(redis)
        await asyncio.wait_for(listening, 30)
    await redis.close()
    return [c for c in seen if needle in c and c.split(" ")[0].upper().startswith("EVAL")]


async def post_marker(redis: Redis) -> None:
    await redis.echo("end-of-monitor")


async def _collect(monitor, seen: list[str]) -> None:
    async for command in monitor.listen():
        if command["command"] == "ECHO end-of-monitor":
            return
        seen.append(command["command"])


async def test_a_flood_is_refused_from_memory_without_redis_and_a_forged_token_is_not(
    redis_server, http
):
    env = {"RATE_LIMIT_MESSAGES_PER_CONVERSATION": "2/h", "RATE_LIMIT_REPEAT_DELAY_SECONDS": "0"}
    with gateway(redis_server.url, env) as gw:
        conversation, token = await new_conversation(http, gw)
        url = f"{gw.url}/api/conversations/{conversation}/messages"
        headers = {"Authorization": f"Bearer {token}"}
        results = [await post(http, url, json={"text": "hi"}, headers=headers) for _ in range(3)]
        assert [r[0] for r in results] == [200, 200, 429]  # Redis refused the third

        repeats: list[tuple[int, dict, dict]] = []

        async def flood() -> None:
            for _ in range(20):
                repeats.append(await post(http, url, json={"text": "hi"}, headers=headers))

        assert await _scripts_naming(redis_server.url, conversation, flood) == []
        for result in repeats:  # the same 429 as Redis's, with the time still to wait
            assert_429(*result)
            assert int(result[1]["Retry-After"]) <= int(results[2][1]["Retry-After"])
        # a forged token is not refused from memory: it gets Redis's answer, 403, as before
        forged = {"Authorization": "Bearer not-the-token"}
        assert (await post(http, url, json={"text": "hi"}, headers=forged))[0] == 403
        # nor is another conversation of the same address
        other, other_token = await new_conversation(http, gw)
        status, _, _ = await post(
            http,
            f"{gw.url}/api/conversations/{other}/messages",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {other_token}"},
        )
        assert status == 200
