"""A person is always reachable: the gateway with its Rasa or action server killed (SIGKILL).

Real processes: a Redis, an action server, Rasa with the trained model and a gateway of this
module's own (the session's ``stack`` is never killed). Each test kills what it needs and the
fixture starts it again, so no test depends on another's order and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.queue import HandoffQueue
from bot.runtime import services
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import Service
from tests.web.conftest import LOGS, Gateway, _run, gateway_service
from tests.web.test_live_relay import Customer, new_agent, new_customer, next_events

pytestmark = pytest.mark.model


@dataclass
class Stack:
    gateway: Gateway
    actions: Service
    rasa: Service


def kill(service: Service) -> None:
    """SIGKILL the service's whole process group and reap it."""
    assert service.process is not None and service.running()
    os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait()


@pytest.fixture(scope="module")
def reach(web_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from bot.runtime.training import ensure_model

    model = ensure_model(quiet=True)
    namespace = "reach"
    env = {
        "REDIS_URL": web_redis.url,
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "EVENTS_DB_URL": f"sqlite:///{tmp_path_factory.mktemp('reach') / 'events.db'}",
    }
    actions_port, rasa_port = free_port(), free_port()
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    secrets = InternalSecrets.generate()
    actions = services.action_server(actions_port, LOGS, env, secrets=secrets)
    rasa = services.rasa_server(rasa_port, model, action_url, LOGS, env, secrets=secrets)
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    with services.running([actions, rasa]):
        gateway = gateway_service(
            "gateway-reach", web_redis.url, rasa_url, namespace, action_url, secrets.rasa_auth_token
        )
        for running in _run(gateway):
            yield Stack(running, actions, rasa)


@pytest.fixture
def bot_stack(reach: Stack) -> Iterator[Stack]:
    """The module's stack, with whatever a test killed started again afterwards."""
    yield reach
    for service in (reach.actions, reach.rasa):
        if not service.running():
            service.start()
    for service in (reach.actions, reach.rasa):
        service.wait_healthy(timeout=300)


async def send(customer: Customer, **body: Any) -> tuple[int, dict[str, Any]]:
    url = f"{customer.gateway.url}/api/conversations/{customer.conversation_id}/messages"
    async with customer.http.post(url, json=body, headers=customer.headers) as response:
        return response.status, await response.json()


async def healthz(http: aiohttp.ClientSession, gateway: Gateway) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{gateway.url}/healthz") as response:
        return response.status, await response.json()


async def ticket_of(redis, gateway: Gateway, conversation_id: str):
    queue = HandoffQueue(redis, namespace=gateway.namespace)
    ticket_id = await redis.get(queue.key("conv", conversation_id))
    assert ticket_id, "no open ticket"
    return await queue.get(ticket_id)


def notices(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "notice" and m.get("code") == "bot_unavailable"]


async def test_healthz_reports_each_dependency(http, bot_stack):
    status, body = await healthz(http, bot_stack.gateway)
    assert status == 200 and body["status"] == "ok" and body["bot_available"] is True
    deps = body["dependencies"]
    assert {name: d["status"] for name, d in deps.items()} == {
        "redis": "up",
        "rasa": "up",
        "action_server": "up",
        "queue": "up",
    }


async def test_with_the_action_server_killed_a_person_is_reachable(http, redis, bot_stack):
    customer = await new_customer(http, bot_stack.gateway)
    status, body = await send(customer, text="hello")
    assert status == 200 and any(m["from"] == "bot" for m in body["messages"])
    kill(bot_stack.actions)

    status, body = await healthz(http, bot_stack.gateway)
    assert status == 200 and body["status"] == "degraded" and body["person_reachable"] is True
    assert body["dependencies"]["action_server"]["status"] == "down"
    assert body["dependencies"]["rasa"]["status"] == "up"

    # Rasa answers with nothing while its action server is down: the gateway notices
    status, body = await send(customer, text="how do I freeze my card?", client_id="c-1")
    assert status == 200 and body["mode"] == "bot"
    assert [m["from"] for m in body["messages"]] == ["customer", "system"]
    assert notices(body["messages"])[0]["text"].startswith("The assistant is reconnecting")

    status, body = await send(customer, text="I want to speak to a person")
    assert status == 200 and body["mode"] in ("waiting", "agent")
    ticket = await ticket_of(redis, bot_stack.gateway, customer.conversation_id)
    assert list(ticket.reasons) == ["bot_unavailable", "explicit_request"]
    lines = [(t.role, t.text) for t in ticket.summary.transcript]
    assert ("customer", "hello") in lines and any(role == "bot" for role, _ in lines)
    assert ("customer", "how do I freeze my card?") in lines
    assert lines[-1] == ("customer", "I want to speak to a person")


async def test_with_rasa_killed_tickets_open_agents_chat_and_nothing_is_lost(
    http, redis, bot_stack
):
    topic = "general"
    # a chat an agent holds before Rasa dies
    held = await new_customer(http, bot_stack.gateway)
    status, body = await send(held, payload="/request_human")
    assert status == 200 and body["mode"] == "waiting"
    held_ticket = await ticket_of(redis, bot_stack.gateway, held.conversation_id)
    agent = await new_agent(http, bot_stack.gateway, redis, topic)
    status, _ = await agent.post(f"/api/tickets/{held_ticket.id}/claim")
    assert status == 200
    customer_ws = await held.socket(after=(await held.view())["messages"][-1]["id"])

    kill(bot_stack.rasa)

    status, body = await healthz(http, bot_stack.gateway)
    assert status == 200 and body["serving"] is True and body["bot_available"] is False
    assert body["dependencies"]["rasa"]["status"] == "down" and "note" in body

    # the agent's chat goes on both ways
    status, _ = await agent.post(f"/api/tickets/{held_ticket.id}/messages", {"text": "Still here"})
    assert status == 200
    [event] = await next_events(customer_ws, 1)
    assert event["from"] == "agent" and event["text"] == "Still here"
    status, body = await send(held, text="Great, thanks")
    assert status == 200 and body["mode"] == "agent"
    log = await HandoffQueue(redis, namespace=bot_stack.gateway.namespace).read_messages(
        held_ticket.id
    )
    assert [(m.role, m.text) for m in log][-2:] == [
        ("agent", "Still here"),
        ("customer", "Great, thanks"),
    ]
    await customer_ws.close()

    # "Talk to a person" opens a ticket straight in the queue
    button = await new_customer(http, bot_stack.gateway)
    status, body = await send(button, payload="/request_human")
    assert status == 200 and body["mode"] in ("waiting", "agent")
    texts = [n["text"] for n in notices(body["messages"])]
    assert texts and "team" in texts[0]
    ticket = await ticket_of(redis, bot_stack.gateway, button.conversation_id)
    assert list(ticket.reasons) == ["bot_unavailable", "explicit_request"]
    assert [(t.role, t.text) for t in ticket.summary.transcript] == [
        ("customer", "Talk to a person")
    ]

    # other messages are stored, the customer is told, and then asks for a person in words
    typed = await new_customer(http, bot_stack.gateway)
    status, body = await send(typed, text="my transfer has not arrived", client_id="t-1")
    assert status == 200 and body["mode"] == "bot"
    assert [m["from"] for m in body["messages"]] == ["customer", "system"]
    again_status, again = await send(typed, text="my transfer has not arrived", client_id="t-1")
    assert again_status == 200 and again["messages"][0]["id"] == body["messages"][0]["id"]
    status, body = await send(typed, text="I want to speak to a person")
    assert status == 200 and body["mode"] in ("waiting", "agent")
    ticket = await ticket_of(redis, bot_stack.gateway, typed.conversation_id)
    assert list(ticket.reasons) == ["bot_unavailable", "explicit_request"]
    assert [t.text for t in ticket.summary.transcript] == [
        "my transfer has not arrived",
        "I want to speak to a person",
    ]
    view = await typed.view()
    said = [m["text"] for m in view["messages"] if m.get("from") == "customer"]
    assert said == ["my transfer has not arrived", "I want to speak to a person"]
    assert view["mode"] in ("waiting", "agent")


async def test_once_rasa_is_back_the_bot_answers_again(http, bot_stack):
    # runs after the kill above (or alone): the fixture has restarted what was killed
    for _ in range(50):
        status, body = await healthz(http, bot_stack.gateway)
        if body.get("bot_available"):
            break
        await asyncio.sleep(0.2)
    assert body["bot_available"] is True
    customer = await new_customer(http, bot_stack.gateway)
    status, body = await send(customer, text="hello")
    assert status == 200 and any(m["from"] == "bot" for m in body["messages"])
