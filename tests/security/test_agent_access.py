"""Issue 12, finding 6: agent access, against a real gateway process and a real Redis.

An agent reads and follows a conversation only while it holds the ticket: after a resolve, a
transfer or a lapsed lease its WebSocket relays nothing more (the console is told the chat was
closed or moved) and the ticket's transcript answers 403, later turns included. A transfer checks
the holder inside the queue's script, so a concurrent resolve or requeue cannot race it. An agent
reply is checked against the one message limit before anything is written: a refused reply
reaches neither the customer's stream nor the ticket's log.

Tickets are opened the way the action server opens them (``ModeStore.request``); everything the
agents do goes through the gateway's HTTP API and WebSockets.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from bot import keys as K
from bot.queue import HandoffQueue, NotAssignee
from bot.queue.validate import MAX_MESSAGE_CHARS
from tests.security.gateways import PASSWORD, create_agent
from tests.web.test_live_relay import (
    AgentClient,
    Customer,
    new_agent,
    new_customer,
    request_person,
)

TRANSFER_TOPIC = "disputes"  # a topic of the policy (the console may transfer only to those)
QUIET_SECONDS = 3.0  # longer than one relay block and one queue poll of the agent's socket


OPENED: dict[str, list[str]] = {}  # topic of a test -> the tickets it opened


@pytest.fixture
async def topic(redis, gateway):
    """A topic of the test's own (keeps its tickets to its own agents). Afterwards the tickets
    the test left open are closed: a waiting ticket's queue score is a long number that the card
    scan of tests/security/test_card_masking.py, reading the same Redis, would have to tell from
    a card number."""
    name = f"topic-{uuid.uuid4().hex[:8]}"
    OPENED[name] = []
    yield name
    queue = HandoffQueue(redis, namespace=gateway.namespace)
    for ticket in await queue.get_many(OPENED.pop(name)):
        if ticket.state.is_open:
            await queue.close(ticket.id, "test over")


async def open_ticket(redis, gateway, customer: Customer, topic: str) -> str:
    ticket_id = await request_person(redis, gateway, customer, topic)
    OPENED[topic].append(ticket_id)
    return ticket_id


async def claimed(http, gateway, redis, topic: str) -> tuple[Customer, str, AgentClient]:
    customer = await new_customer(http, gateway)
    ticket_id = await open_ticket(redis, gateway, customer, topic)
    agent = await new_agent(http, gateway, redis, topic)
    status, body = await agent.post(f"/api/tickets/{ticket_id}/claim")
    assert status == 200, body
    return customer, ticket_id, agent


async def lead_client(http, gateway) -> AgentClient:
    login = await create_agent(gateway.redis_url, gateway.namespace, role="lead")
    body = {"login": login, "password": PASSWORD}
    async with http.post(f"{gateway.url}/api/agent/login", json=body) as response:
        assert response.status == 200
        return AgentClient(http, gateway, (await response.json())["token"])


async def end_holding(how: str, agent: AgentClient, ticket_id: str, redis: Redis, gateway) -> None:
    """The agent stops holding the ticket: it resolves it, transfers it, or its lease lapses
    (the queue's sweeper in the gateway then puts the ticket back in the queue)."""
    if how == "resolve":
        status, body = await agent.post(
            f"/api/tickets/{ticket_id}/resolve", {"disposition": "solved"}
        )
        assert status == 200, body
    elif how == "transfer":
        status, body = await agent.post(
            f"/api/tickets/{ticket_id}/transfer", {"topic": TRANSFER_TOPIC}
        )
        assert status == 200, body
    else:  # a missed heartbeat: the lease is in the past
        login = (await agent.get("/api/agent/me"))[1]["agent"]["login"]
        await redis.zadd(K.QUEUE_PRESENCE.format(ns=gateway.namespace), {login: 1})
        queue = HandoffQueue(redis, namespace=gateway.namespace)
        for _ in range(200):
            if (await queue.get(ticket_id)).agent_id != login:
                break
            await asyncio.sleep(0.05)
        assert (await queue.get(ticket_id)).agent_id != login


async def later_turns(
    how: str, customer: Customer, ticket_id: str, http, gateway, redis, topic: str
) -> tuple[AgentClient, str]:
    """Another agent takes the conversation up and talks with the customer; returns that agent
    and the ticket it holds."""
    if how == "resolve":  # the customer asks for a person again: a new ticket
        ticket_id = await open_ticket(redis, gateway, customer, topic)
    other = await new_agent(http, gateway, redis, TRANSFER_TOPIC if how == "transfer" else topic)
    status, body = await other.post(f"/api/tickets/{ticket_id}/claim")
    assert status == 200, body
    status, body = await other.post(f"/api/tickets/{ticket_id}/messages", {"text": "later: agent"})
    assert status == 200, body
    status, body = await customer.say("later: customer")
    assert status == 200, body
    return other, ticket_id


async def agent_socket(http, gateway, agent: AgentClient, conversation_id: str):
    ws = await http.ws_connect(gateway.ws_url("/api/agent/ws"))
    await ws.send_json({"type": "hello", "token": agent.token})
    ready = await ws.receive_json(timeout=10)
    assert ready["type"] == "ready"
    await ws.send_json({"type": "watch", "conversations": {conversation_id: "0-0"}})
    return ws


async def frames_until(ws, want, timeout: float = 10) -> list[dict[str, Any]]:
    """Frames of the socket up to and including the first one ``want`` accepts."""
    seen = []
    while True:
        frame = await ws.receive_json(timeout=timeout)
        seen.append(frame)
        if want(frame):
            return seen


async def quiet_frames(ws, seconds: float = QUIET_SECONDS) -> list[dict[str, Any]]:
    """Every frame the socket gets within ``seconds``."""
    frames = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            frames.append(await ws.receive_json(timeout=left))
        except asyncio.TimeoutError:
            break
    return frames


def texts(frames: list[dict[str, Any]]) -> list[str]:
    return [f["event"].get("text", "") for f in frames if f.get("type") == "event"]


@pytest.mark.parametrize("how", ["resolve", "transfer", "lapse"])
async def test_a_socket_stops_relaying_a_chat_the_agent_no_longer_holds(
    http, gateway, redis, topic, how
):
    customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
    ws = await agent_socket(http, gateway, agent, customer.conversation_id)
    try:
        status, _ = await customer.say("while held")
        assert status == 200
        held = await frames_until(ws, lambda f: "while held" in texts([f]))
        assert not any(f["type"] == "revoked" for f in held)

        await end_holding(how, agent, ticket_id, redis, gateway)
        [*_, revoked] = await frames_until(ws, lambda f: f.get("type") == "revoked")
        assert revoked["conversation_id"] == customer.conversation_id
        assert revoked["ticket_id"] == ticket_id
        assert revoked["reason"] == ("closed" if how == "resolve" else "moved")

        other, _ = await later_turns(how, customer, ticket_id, http, gateway, redis, topic)
        other_ws = await agent_socket(http, gateway, other, customer.conversation_id)
        await frames_until(other_ws, lambda f: "later: customer" in texts([f]))
        await other_ws.close()
        relayed = texts(await quiet_frames(ws))
        assert not [t for t in relayed if t.startswith("later")], relayed
    finally:
        await ws.close()


@pytest.mark.parametrize("how", ["resolve", "transfer", "lapse"])
async def test_a_former_holder_cannot_read_the_ticket_or_later_turns(
    http, gateway, redis, topic, how
):
    customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
    status, body = await agent.get(f"/api/tickets/{ticket_id}")
    assert status == 200 and body["ticket"]["id"] == ticket_id

    await end_holding(how, agent, ticket_id, redis, gateway)
    status, body = await agent.get(f"/api/tickets/{ticket_id}")
    assert status == 403 and body["error"]["code"] == "forbidden"

    other, later_ticket = await later_turns(how, customer, ticket_id, http, gateway, redis, topic)
    for tid in {ticket_id, later_ticket}:
        status, body = await agent.get(f"/api/tickets/{tid}")
        assert status == 403, body
        status, body = await agent.get(f"/api/tickets/{tid}?after=0-0")
        assert status == 403, body
    status, body = await other.get(f"/api/tickets/{later_ticket}")
    assert status == 200
    assert "later: customer" in [m.get("text") for m in body["messages"]]
    lead = await lead_client(http, gateway)  # a support lead still reads any ticket
    status, body = await lead.get(f"/api/tickets/{ticket_id}")
    assert status == 200


async def test_transfer_checks_the_holder_in_the_queue_script(http, gateway, redis, topic):
    customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
    login = (await agent.get("/api/agent/me"))[1]["agent"]["login"]
    queue = HandoffQueue(redis, namespace=gateway.namespace)
    await queue.requeue(ticket_id, "lease_expired")  # the holder's lease lapsed meanwhile
    with pytest.raises(NotAssignee):
        await queue.transfer(ticket_id, topic=TRANSFER_TOPIC, holder=login)
    after = await queue.get(ticket_id)
    assert after.topic == topic and after.state.value == "queued" and after.transfers == 0
    status, body = await agent.post(f"/api/tickets/{ticket_id}/transfer", {"topic": TRANSFER_TOPIC})
    assert status == 403, body
    assert (await queue.get(ticket_id)).topic == topic


async def indexes_agree(redis: Redis, ns: str, ticket, former: str) -> None:
    """The queue's indexes say what the ticket's hash says: the former holder's set no longer
    has it, and it waits in its topic's queue exactly when it is queued."""
    if ticket.state.value in ("queued", "assigned"):  # a closed ticket names its last agent
        assert ticket.agent_id != former
    assert not await redis.sismember(K.QUEUE_AGENT_TICKETS.format(ns=ns, agent=former), ticket.id)
    score = await redis.zscore(K.QUEUE_TOPIC_QUEUE.format(ns=ns, topic=ticket.topic), ticket.id)
    assert (score is not None) == (ticket.state.value == "queued")


async def test_concurrent_transfer_and_resolve_exactly_one_wins(http, gateway, redis, topic):
    queue = HandoffQueue(redis, namespace=gateway.namespace)
    for _ in range(6):
        customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
        login = (await agent.get("/api/agent/me"))[1]["agent"]["login"]
        (t_status, t_body), (r_status, r_body) = await asyncio.gather(
            agent.post(f"/api/tickets/{ticket_id}/transfer", {"topic": TRANSFER_TOPIC}),
            agent.post(f"/api/tickets/{ticket_id}/resolve", {"disposition": "solved"}),
        )
        assert sorted([t_status, r_status])[0] == 200, (t_body, r_body)
        assert [t_status, r_status].count(200) == 1, (t_body, r_body)
        assert max(t_status, r_status) in (403, 409)
        ticket = await queue.get(ticket_id)
        events = [e.event for e in await queue.audit(ticket_id)]
        if t_status == 200:
            assert ticket.state.value in ("queued", "assigned") and ticket.topic == TRANSFER_TOPIC
            assert "transferred" in events and "resolved" not in events
        else:
            assert ticket.state.value == "resolved" and ticket.topic == topic
            assert "resolved" in events and "transferred" not in events
        await indexes_agree(redis, gateway.namespace, ticket, login)


async def test_a_transfer_racing_a_requeue_never_moves_a_ticket_its_agent_lost(
    http, gateway, redis, topic
):
    queue = HandoffQueue(redis, namespace=gateway.namespace)
    for _ in range(6):
        customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
        login = (await agent.get("/api/agent/me"))[1]["agent"]["login"]
        (status, body), _ = await asyncio.gather(
            agent.post(f"/api/tickets/{ticket_id}/transfer", {"topic": TRANSFER_TOPIC}),
            queue.requeue(ticket_id, "lease_expired"),
            return_exceptions=True,
        )
        events = [e.event for e in await queue.audit(ticket_id)]
        if "transferred" in events:  # the transfer ran first, while the agent held the ticket
            assert status == 200, body
            assert "requeued" not in events or events.index("transferred") < events.index(
                "requeued"
            )
        else:  # the requeue ran first: the former holder may not move the ticket
            assert status == 403 and "requeued" in events, body
        ticket = await queue.get(ticket_id)
        await indexes_agree(redis, gateway.namespace, ticket, login)


@pytest.mark.parametrize(
    "text",
    ["x" * (MAX_MESSAGE_CHARS + 1), "€" * (MAX_MESSAGE_CHARS + 1), "💳" * (MAX_MESSAGE_CHARS + 1)],
    ids=["ascii", "three-byte", "four-byte"],
)
async def test_an_oversize_reply_is_413_and_reaches_nobody(http, gateway, redis, topic, text):
    customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
    before = await customer.view()
    status, body = await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": text})
    assert status == 413 and body["error"]["code"] == "too_large"
    after = await customer.view()
    assert [m["id"] for m in after["messages"]] == [m["id"] for m in before["messages"]]
    log = await HandoffQueue(redis, namespace=gateway.namespace).read_messages(ticket_id)
    assert [m for m in log if m.role == "agent"] == []


@pytest.mark.parametrize(
    "text",
    ["x" * MAX_MESSAGE_CHARS, "€" * MAX_MESSAGE_CHARS, "💳" * MAX_MESSAGE_CHARS],
    ids=["ascii", "three-byte", "four-byte"],
)
async def test_a_reply_within_the_character_limit_is_taken_everywhere(
    http, gateway, redis, topic, text
):
    customer, ticket_id, agent = await claimed(http, gateway, redis, topic)
    status, body = await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": text})
    assert status == 200, body
    shown = [m["text"] for m in (await customer.view())["messages"] if m.get("from") == "agent"]
    assert shown == [text]
    log = await HandoffQueue(redis, namespace=gateway.namespace).read_messages(ticket_id)
    assert [m.text for m in log if m.role == "agent"] == [text]
