"""Finding 5: overlapping retries with one client_id run the customer's turn once (real Rasa),
also when Rasa answers late or not in time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.security.helpers import Customer
from tests.security.slow_rasa import slow_rasa
from tests.web.conftest import LOGS, Gateway, free_port, services

pytestmark = pytest.mark.model


def user_texts(tracker: dict) -> list[str]:
    return [event["text"] for event in tracker["events"] if event.get("event") == "user"]


@contextmanager
def gateway_with(stack: Gateway, rasa_url: str, name: str, **env: str) -> Iterator[Gateway]:
    """Another gateway on the stack's Redis, with its own settings and Rasa URL."""
    port = free_port()
    environment = {
        "REDIS_URL": stack.redis_url,
        "RASA_URL": rasa_url,
        "RASA_AUTH_TOKEN": stack.rasa_token or "",
        "SUPPORT_QUEUE_NAMESPACE": stack.namespace,
        "GATEWAY_PORT": str(port),
        **env,
    }
    service = services.gateway_service("127.0.0.1", port, LOGS, environment, name=name)
    with services.running([service], timeout=60):
        yield Gateway(
            f"http://127.0.0.1:{port}",
            stack.redis_url,
            stack.rasa_url,
            stack.namespace,
            service,
            rasa_token=stack.rasa_token,
        )


async def test_overlapping_retries_with_one_client_id_run_one_turn(http, stack):
    customer = await Customer.start(http, stack)
    body = {"text": "how do I freeze my card?", "client_id": uuid.uuid4().hex}
    answers = await asyncio.gather(*(customer.send(body) for _ in range(5)))
    assert [status for status, _, _ in answers] == [200] * 5
    first_ids = {answer["messages"][0]["id"] for _, answer, _ in answers}
    assert len(first_ids) == 1  # every retry returns the same recorded message
    assert user_texts(await customer.tracker()) == ["how do I freeze my card?"]
    mine = [m for m in await customer.history() if m.get("from") == "customer"]
    assert len(mine) == 1


async def test_a_retry_after_a_slow_answer_returns_it_without_a_second_turn(http, stack):
    customer = await Customer.start(http, stack)
    body = {"text": "what are your fees?", "client_id": uuid.uuid4().hex}
    with slow_rasa(stack.rasa_url) as relay:
        with gateway_with(
            stack,
            relay.url,
            "gateway-slow",
            TURN_WAIT_SECONDS="0.5",
            RASA_TURN_TIMEOUT_SECONDS="120",
        ) as slow:
            customer.gateway = slow
            status, answer, headers = await customer.send(body)
            assert status == 503 and answer["error"]["code"] == "turn_pending"
            assert int(headers["Retry-After"]) > 0
            status, answer, headers = await customer.send(body)  # still being answered
            assert status == 503 and "Retry-After" in headers
            relay.release()
            for _ in range(200):
                status, answer, _ = await customer.send(body)
                if status != 503:
                    break
                await asyncio.sleep(0.1)
            assert status == 200, answer
            assert answer["messages"][0]["text"] == "what are your fees?"
            assert any(m["from"] == "bot" for m in answer["messages"])
    assert relay.turns_forwarded == 1
    assert user_texts(await customer.tracker()) == ["what are your fees?"]


async def test_after_rasa_times_out_the_turn_is_never_run_again(http, stack):
    customer = await Customer.start(http, stack)
    body = {"text": "I want to close my account", "client_id": uuid.uuid4().hex}
    with slow_rasa(stack.rasa_url) as relay:
        with gateway_with(
            stack,
            relay.url,
            "gateway-timeout",
            TURN_WAIT_SECONDS="0.5",
            RASA_TURN_TIMEOUT_SECONDS="1",
        ) as slow:
            customer.gateway = slow
            status, answer, _ = await customer.send(body)
            assert status == 503
            for _ in range(200):
                status, answer, headers = await customer.send(body)
                if status != 503:
                    break
                await asyncio.sleep(0.1)
            # Rasa may have run the turn: the gateway stored the message and told the customer
            # the assistant is reconnecting (bot.web.fallback); a retry returns that record
            assert status == 200, answer
            assert [m["from"] for m in answer["messages"]] == ["customer", "system"]
            assert answer["messages"][1]["code"] == "bot_unavailable"
            relay.release()
            status, again, _ = await customer.send(body)
            assert status == 200 and again["messages"][0]["id"] == answer["messages"][0]["id"]
    assert relay.turns_forwarded == 1
    assert user_texts(await customer.tracker()) == ["I want to close my account"]
