"""Overload is answered, never a hang (issue 11): with at most 2 bot turns in flight and Rasa
holding its answers (a relay in front of the real Rasa), further turns get 503 ``busy`` with
``Retry-After`` while the first two are still unanswered, were never sent to Rasa, and run when
retried with the same client id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest

from bot.web.limits import GENEROUS_ENV
from tests.security.slow_rasa import slow_rasa
from tests.web.conftest import LOGS, Gateway, free_port, services

pytestmark = pytest.mark.model

HANG_GUARD = aiohttp.ClientTimeout(total=120)  # no request may hang: fail, do not wait forever


@contextmanager
def bounded_gateway(stack: Gateway, rasa_url: str, **env: str) -> Iterator[str]:
    """Another gateway on the stack's Redis, in front of ``rasa_url``, with these settings."""
    port = free_port()
    environment = {
        "REDIS_URL": stack.redis_url,
        "RASA_URL": rasa_url,
        "RASA_AUTH_TOKEN": stack.rasa_token or "",
        "SUPPORT_QUEUE_NAMESPACE": stack.namespace,
        "GATEWAY_PORT": str(port),
        **GENEROUS_ENV,
        **env,
    }
    service = services.gateway_service("127.0.0.1", port, LOGS, environment, name="gateway-bound")
    with services.running([service], timeout=60):
        yield f"http://127.0.0.1:{port}"


async def start(http: aiohttp.ClientSession, url: str) -> tuple[str, dict[str, str]]:
    async with http.post(f"{url}/api/conversations") as response:
        assert response.status == 201
        body = await response.json()
    headers = {"Authorization": f"Bearer {body['token']}"}
    return f"{url}/api/conversations/{body['conversation_id']}/messages", headers


async def send(http, target: tuple[str, dict[str, str]], body: dict) -> tuple[int, dict, dict]:
    url, headers = target
    async with http.post(url, json=body, headers=headers, timeout=HANG_GUARD) as response:
        return response.status, dict(response.headers), await response.json()


async def test_turns_beyond_the_bound_get_503_busy_with_retry_after_while_rasa_is_slow(stack):
    env = {
        "MAX_TURNS_IN_FLIGHT": "2",
        "TURN_QUEUE_MAX": "8",
        "TURN_QUEUE_WAIT_SECONDS": "0.2",
        "TURN_WAIT_SECONDS": "120",  # the two held turns wait for Rasa, not for this
        "RASA_TURN_TIMEOUT_SECONDS": "120",
    }
    async with aiohttp.ClientSession() as http:
        with slow_rasa(stack.rasa_url) as relay, bounded_gateway(stack, relay.url, **env) as url:
            customers = [await start(http, url) for _ in range(6)]
            bodies = [
                {"text": "what are your fees?", "client_id": uuid.uuid4().hex} for _ in customers
            ]
            turns = [
                asyncio.create_task(send(http, target, body))
                for target, body in zip(customers, bodies, strict=True)
            ]
            done, pending = await asyncio.wait(
                turns, timeout=60, return_when=asyncio.FIRST_COMPLETED
            )
            while len(done) < 4 and pending:
                more, pending = await asyncio.wait(
                    pending, timeout=60, return_when=asyncio.FIRST_COMPLETED
                )
                assert more, "a turn beyond the bound was not answered while Rasa held the others"
                done |= more
            # four answered while Rasa still holds two: refused, not queued behind Rasa
            assert len(done) == 4 and len(pending) == 2
            assert relay.turns_forwarded <= 2  # Rasa has (at most) the two in flight
            for status, headers, body in (turn.result() for turn in done):
                assert status == 503, body
                assert body["error"]["code"] == "busy"
                assert int(headers["Retry-After"]) >= 1
            relay.release()
            for status, _, body in await asyncio.gather(*pending):
                assert status == 200 and any(m["from"] == "bot" for m in body["messages"])
            # a refused turn was not sent: a retry with the same client id runs it, once
            refused = [i for i, turn in enumerate(turns) if turn in done]
            for i in refused:
                status, _, body = await send(http, customers[i], bodies[i])
                assert status == 200, body
                assert [m["from"] for m in body["messages"]][:2] == ["customer", "bot"]
    assert relay.turns_forwarded == 6


async def until(condition, timeout: float = 60.0) -> None:
    """Wait (polling) until the async ``condition()`` holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def turns_waiting(http: aiohttp.ClientSession, url: str) -> float:
    """The gateway's ``support_gateway_turns_waiting`` gauge (its admission queue)."""
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    line = next(
        line for line in text.splitlines() if line.startswith("support_gateway_turns_waiting ")
    )
    return float(line.split()[1])


async def test_busy_retry_after_grows_with_the_queue_ahead_and_a_stalled_rasa_up_to_30_s(stack):
    """Retry-After of 503 ``busy`` comes from the queue and the measured throughput
    (bot/web/admission.py): with Rasa answering nothing, at most one turn per busy second is
    assumed, so the customer is told to come back after the turns queued ahead, never sooner;
    a stall longer than the queue needs gets the 30 s cap."""
    env = {
        "MAX_TURNS_IN_FLIGHT": "1",
        "TURN_QUEUE_MAX": "3",
        "TURN_QUEUE_WAIT_SECONDS": "600",  # the queued turns wait for Rasa, not for this
        "TURN_WAIT_SECONDS": "120",
        "RASA_TURN_TIMEOUT_SECONDS": "120",
    }
    async with aiohttp.ClientSession() as http:
        with slow_rasa(stack.rasa_url) as relay, bounded_gateway(stack, relay.url, **env) as url:
            customers = [await start(http, url) for _ in range(6)]
            bodies = [
                {"text": "what are your fees?", "client_id": uuid.uuid4().hex} for _ in customers
            ]
            # one at Rasa (held), then three in the queue, in that order
            held = [asyncio.create_task(send(http, customers[0], bodies[0]))]

            async def forwarded() -> bool:
                return relay.turns_forwarded == 1

            async def queued() -> bool:
                return await turns_waiting(http, url) == 3

            await until(forwarded)
            held += [asyncio.create_task(send(http, customers[i], bodies[i])) for i in (1, 2, 3)]
            await until(queued)
            await asyncio.sleep(1)  # at least a second of busy time: the bound below holds
            status, headers, body = await send(http, customers[4], bodies[4])
            assert status == 503 and body["error"]["code"] == "busy", body
            # three queued ahead and this one, at most one per busy second: >= 4 s
            assert 4 <= int(headers["Retry-After"]) <= 30
            assert body["error"]["details"]["retry_after"] == int(headers["Retry-After"])
            await asyncio.sleep(8)  # Rasa answers nothing for 8 s more: 4 turns need >= 32 s
            status, headers, body = await send(http, customers[5], bodies[5])
            assert status == 503 and body["error"]["code"] == "busy", body
            assert headers["Retry-After"] == "30"
            assert all(not turn.done() for turn in held) and relay.turns_forwarded == 1
            relay.release()
            for status, _, body in await asyncio.gather(*held):
                assert status == 200 and any(m["from"] == "bot" for m in body["messages"])
            for i in (4, 5):  # refused, so never sent: the retry runs it
                status, _, body = await send(http, customers[i], bodies[i])
                assert status == 200, body
    assert relay.turns_forwarded == 6
