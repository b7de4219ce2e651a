"""Human mode through real gateways and Redis: live relay both ways, replay after a reconnect,
a second gateway and a gateway restart lose nothing, agents reach only the tickets they hold.

The handoff is opened the way the action server opens it (``ModeStore.request``); everything else
goes through the gateway's HTTP API and WebSockets.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from bot.handoff import ModeStore, QueuePort, TicketRequest
from bot.queue import HandoffQueue
from bot.web.auth import Agent, AgentAccounts
from tests.web.conftest import Gateway, _run, gateway_service

PASSWORD = "agent-password-1"


class Customer:
    def __init__(
        self, http: aiohttp.ClientSession, gateway: Gateway, conversation_id: str, token: str
    ):
        self.http, self.gateway = http, gateway
        self.conversation_id, self.token = conversation_id, token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def say(self, text: str) -> tuple[int, dict[str, Any]]:
        url = f"{self.gateway.url}/api/conversations/{self.conversation_id}/messages"
        async with self.http.post(url, json={"text": text}, headers=self.headers) as response:
            return response.status, await response.json()

    async def view(self) -> dict[str, Any]:
        url = f"{self.gateway.url}/api/conversations/{self.conversation_id}"
        async with self.http.get(url, headers=self.headers) as response:
            return await response.json()

    async def socket(self, after: str = "0-0", gateway: Gateway | None = None):
        gateway = gateway or self.gateway
        ws = await self.http.ws_connect(
            gateway.ws_url(f"/api/conversations/{self.conversation_id}/ws")
        )
        await ws.send_json({"type": "hello", "token": self.token, "after": after})
        ready = await ws.receive_json(timeout=5)
        assert ready["type"] == "ready"
        return ws


class AgentClient:
    def __init__(self, http: aiohttp.ClientSession, gateway: Gateway, token: str):
        self.http, self.gateway, self.token = http, gateway, token

    async def post(self, path: str, body: dict | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.post(
            f"{self.gateway.url}{path}", json=body or {}, headers=headers
        ) as r:
            return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.get(f"{self.gateway.url}{path}", headers=headers) as r:
            return r.status, await r.json()


async def new_customer(http, gateway) -> Customer:
    async with http.post(f"{gateway.url}/api/conversations") as response:
        body = await response.json()
    return Customer(http, gateway, body["conversation_id"], body["token"])


async def new_agent(http, gateway, redis, topic: str) -> AgentClient:
    login = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    accounts = AgentAccounts(redis, gateway.namespace)
    await accounts.create(Agent(login=login, name=f"Agent {login[6:10]}", skills=[topic]), PASSWORD)
    async with http.post(
        f"{gateway.url}/api/agent/login", json={"login": login, "password": PASSWORD}
    ) as r:
        token = (await r.json())["token"]
    agent = AgentClient(http, gateway, token)
    status, _ = await agent.post("/api/agent/presence", {"online": True})
    assert status == 200
    return agent


async def request_person(redis, gateway, customer: Customer, topic: str) -> str:
    queue = HandoffQueue(redis, namespace=gateway.namespace)
    modes = ModeStore(redis, QueuePort(queue), gateway.namespace)
    request = TicketRequest(
        conversation_id=customer.conversation_id,
        customer_id=customer.conversation_id,
        reasons=["explicit_request"],
        priority=3,
        topic=topic,
    )
    state = await modes.request(request)
    return state.ticket_id


async def next_events(ws, count: int, kind: str = "message", timeout: float = 5) -> list[dict]:
    """The next ``count`` events of a type from a socket (other frames skipped)."""
    found: list[dict] = []
    while len(found) < count:
        frame = await ws.receive_json(timeout=timeout)
        if frame.get("type") == "event" and frame["event"]["type"] == kind:
            found.append(frame["event"])
    return found


@pytest.fixture
def topic() -> str:
    return f"topic-{uuid.uuid4().hex[:8]}"  # keeps each test's tickets to its own agents


async def test_a_waiting_customer_sees_the_position_and_a_claim_makes_it_agent_mode(
    http, gateway, redis, topic
):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    view = await customer.view()
    assert view["mode"] == "waiting" and view["position"] == 1 and view["ticket_id"] == ticket_id
    agent = await new_agent(http, gateway, redis, topic)
    status, body = await agent.post(f"/api/tickets/{ticket_id}/claim")
    assert status == 200 and body["ticket"]["state"] == "assigned"
    view = await customer.view()
    assert view["mode"] == "agent"
    assert any(m["type"] == "notice" and "joined" in m["text"] for m in view["messages"])


async def test_replies_travel_live_both_ways_and_the_bot_is_not_asked(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    customer_ws = await customer.socket(after=(await customer.view())["messages"][-1]["id"])
    agent_ws = await http.ws_connect(gateway.ws_url("/api/agent/ws"))
    await agent_ws.send_json({"type": "hello", "token": agent.token})
    await agent_ws.send_json({"type": "watch", "conversations": {customer.conversation_id: "$"}})
    await asyncio.sleep(0.3)

    status, _ = await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": "Hello, I'm here"})
    assert status == 200
    [event] = await next_events(customer_ws, 1)
    assert event["from"] == "agent" and event["text"] == "Hello, I'm here"

    status, body = await customer.say("Thanks! My card 4111 1111 1111 1111 was declined")
    assert status == 200 and body["mode"] == "agent"  # Rasa is unreachable: it was not asked
    events = await next_events(agent_ws, 2)
    assert [e["from"] for e in events] == ["agent", "customer"]
    assert events[1]["text"] == "Thanks! My card 411111******1111 was declined"
    log = await HandoffQueue(redis, namespace=gateway.namespace).read_messages(ticket_id)
    assert [m.role for m in log] == ["agent", "customer"]
    assert "4111 1111 1111 1111" not in log[1].text and "411111******1111" in log[1].text
    await customer_ws.close()
    await agent_ws.close()


async def test_missed_messages_are_replayed_in_order_after_a_reconnect(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    last_seen = (await customer.view())["messages"][-1]["id"]
    for n in range(3):  # the customer is offline meanwhile
        await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": f"missed {n}"})
    ws = await customer.socket(after=last_seen)
    assert [e["text"] for e in await next_events(ws, 3)] == ["missed 0", "missed 1", "missed 2"]
    await ws.close()


async def test_a_second_gateway_and_a_restarted_gateway_lose_nothing(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    second = gateway_service(
        "gateway-second", gateway.redis_url, gateway.rasa_url, gateway.namespace
    )
    runner = _run(second)
    await asyncio.to_thread(next, runner)
    try:
        ws = await customer.socket(
            after=(await customer.view())["messages"][-1]["id"], gateway=second
        )
        await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": "via the first gateway"})
        [event] = await next_events(ws, 1)
        assert event["text"] == "via the first gateway"
        await asyncio.to_thread(second.service.stop)  # the customer's gateway goes away ...
        await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": "while it was down"})
        second.service.start()  # ... and comes back; the widget reconnects from its offset
        await asyncio.to_thread(second.service.wait_healthy, 60)
        ws = await customer.socket(after=event["id"], gateway=second)
        [missed] = await next_events(ws, 1)
        assert missed["text"] == "while it was down"
        await ws.close()
    finally:
        await asyncio.to_thread(next, runner, None)


async def test_an_agent_reaches_only_the_tickets_it_holds(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    holder = await new_agent(http, gateway, redis, topic)
    other = await new_agent(http, gateway, redis, topic)
    await holder.post(f"/api/tickets/{ticket_id}/claim")
    for path, body in [
        (f"/api/tickets/{ticket_id}/messages", {"text": "let me in"}),
        (f"/api/tickets/{ticket_id}/resolve", {"disposition": "solved"}),
        (f"/api/tickets/{ticket_id}/handback", {}),
        (f"/api/tickets/{ticket_id}/transfer", {"topic": "general"}),
    ]:
        status, body = await other.post(path, body)
        assert status == 403, path
    status, _ = await other.get(f"/api/tickets/{ticket_id}")
    assert status == 403
    status, _ = await other.post(f"/api/tickets/{ticket_id}/claim")
    assert status == 409  # already assigned

    ws = await http.ws_connect(gateway.ws_url("/api/agent/ws"))
    await ws.send_json({"type": "hello", "token": other.token})
    await ws.send_json({"type": "watch", "conversations": {customer.conversation_id: "0-0"}})
    await holder.post(f"/api/tickets/{ticket_id}/messages", {"text": "private"})
    with pytest.raises(asyncio.TimeoutError):
        await next_events(ws, 1, timeout=2.5)
    await ws.close()


async def test_handing_back_returns_the_conversation_to_the_bot(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    status, body = await agent.post(f"/api/tickets/{ticket_id}/handback")
    assert status == 200 and body["ticket"]["state"] == "returned_to_bot"
    view = await customer.view()
    assert view["mode"] == "bot"
    assert [m["text"] for m in view["messages"] if m["type"] == "notice"][-1].endswith(
        "left the conversation."
    )
    status, body = await customer.say("back with the bot?")
    # the message goes to the bot again (unreachable in this fixture: the gateway says so)
    assert status == 200 and body["messages"][-1]["code"] == "bot_unavailable"


async def test_resolving_needs_a_known_disposition(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    status, body = await agent.post(
        f"/api/tickets/{ticket_id}/resolve", {"disposition": "whatever"}
    )
    assert status == 400 and "disposition" in body["error"]["message"]
    status, body = await agent.post(f"/api/tickets/{ticket_id}/resolve", {"disposition": "solved"})
    assert status == 200 and body["ticket"]["state"] == "resolved"


async def test_an_agent_takes_several_chats_up_to_its_capacity(http, gateway, redis, topic):
    customers = [await new_customer(http, gateway) for _ in range(4)]
    tickets = [await request_person(redis, gateway, c, topic) for c in customers]
    agent = await new_agent(http, gateway, redis, topic)  # capacity 3
    statuses = [(await agent.post(f"/api/tickets/{t}/claim"))[0] for t in tickets]
    assert statuses == [200, 200, 200, 409]
    status, me = await agent.get("/api/agent/me")
    assert sorted(t["id"] for t in me["tickets"]) == sorted(tickets[:3])
    status, body = await agent.post(f"/api/tickets/{tickets[0]}/resolve", {"disposition": "solved"})
    assert status == 200
    status, _ = await agent.post(f"/api/tickets/{tickets[3]}/claim")
    assert status == 200  # room again after resolving one


async def test_a_transfer_puts_the_customer_back_in_the_queue_of_the_new_topic(
    http, gateway, redis, topic
):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    status, body = await agent.post(f"/api/tickets/{ticket_id}/transfer", {"topic": "disputes"})
    assert status == 200
    assert body["ticket"]["state"] == "queued" and body["ticket"]["topic"] == "disputes"
    view = await customer.view()
    assert view["mode"] == "waiting" and view["position"] >= 1
    status, body = await agent.post(
        f"/api/tickets/{ticket_id}/transfer", {"topic": "no-such-topic"}
    )
    assert status in (400, 403)


async def test_an_agent_going_offline_returns_its_chats_to_the_queue(http, gateway, redis, topic):
    customer = await new_customer(http, gateway)
    ticket_id = await request_person(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    await agent.post(f"/api/tickets/{ticket_id}/claim")
    assert (await customer.view())["mode"] == "agent"
    status, body = await agent.post("/api/agent/presence", {"online": False})
    assert status == 200 and body["online"] is False
    view = await customer.view()
    assert view["mode"] == "waiting" and view["ticket_id"] == ticket_id
    status, _ = await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": "still here?"})
    assert status == 403
