"""Finding 9: nothing grows without bound. After a whole conversation on the real stack (the bot,
a request for a person, an agent's reply, the resolve, the satisfaction survey), every key in
Redis is one of the registry's (bot/keys.py) and is bounded as its spec says: it expires, or it
is capped (checked against the cap), or it is kept for a stated reason."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from bot import keys
from bot.config import Settings
from bot.queue import HandoffQueue
from tests.security.helpers import Customer
from tests.web.test_live_relay import new_agent

DEFAULTS = Settings()


def spec_of(key: str, redis_type: str) -> keys.KeySpec | None:
    """The most specific registered spec of a key of this type."""
    matching = [s for s in keys.specs() if s.type == redis_type and s.parse(key) is not None]
    return max(matching, key=lambda s: len(s.template), default=None)


TICKET_KEYS = (
    keys.QUEUE_TICKET,
    keys.QUEUE_TICKET_MESSAGES,
    keys.QUEUE_TICKET_CMIDS,
    keys.QUEUE_TICKET_AUDIT,
)


async def open_ticket_key(redis: Redis, spec: keys.KeySpec, key: str) -> bool:
    """A key of a ticket still open (other tests' tickets): it expires once the ticket closes."""
    if spec not in TICKET_KEYS:
        return False
    parts = spec.parse(key)
    assert parts is not None
    ticket = keys.QUEUE_TICKET.format(ns=parts["ns"], ticket=parts["ticket"])
    return await redis.hget(ticket, "state") in ("queued", "assigned")


async def length(redis: Redis, key: str, redis_type: str) -> int:
    return await (redis.xlen(key) if redis_type == "stream" else redis.llen(key))


async def offered(body: dict, prefix: str) -> dict:
    buttons = [b for m in body["messages"] for b in m.get("buttons") or []]
    matching = [b for b in buttons if b["payload"].startswith(prefix)]
    assert matching, f"the bot offered no {prefix}: {body['messages']}"
    return matching[-1]


@pytest.mark.model
async def test_every_key_after_a_whole_conversation_is_registered_and_bounded(http, stack, redis):
    ns = stack.namespace
    customer = await Customer.start(http, stack)
    await customer.say("hello, I was charged twice for one purchase")
    status, body, _ = await customer.send({"payload": "/request_human"})
    assert status == 200, body
    ticket_id = body.get("ticket_id") or (await customer_view(customer))["ticket_id"]
    queue = HandoffQueue(redis, namespace=ns)
    ticket = await queue.get(ticket_id)
    agent = await new_agent(http, stack, redis, ticket.topic)
    if (await queue.get(ticket_id)).state != "assigned":
        status, body = await agent.post(f"/api/tickets/{ticket_id}/claim")
        assert status == 200, body
    status, body = await agent.post(f"/api/tickets/{ticket_id}/messages", {"text": "Let me see"})
    assert status == 200, body
    await customer.say("thank you")
    status, body = await agent.post(f"/api/tickets/{ticket_id}/resolve", {"disposition": "solved"})
    assert status == 200, body
    body = await customer.say("thanks, that's all, bye")
    rating = await offered(body, "/csat_rating")
    status, body, _ = await customer.send({"payload": rating["payload"]})
    assert status == 200, body
    await customer.say("no comment, bye")
    status, _ = await agent.post("/api/agent/presence", {"online": False})
    assert status == 200

    now = time.time()
    seen: dict[str, str] = {}
    problems: list[str] = []
    async for key in redis.scan_iter(count=1000):
        redis_type = await redis.type(key)
        if redis_type == "none":  # expired while we looked
            continue
        spec = spec_of(key, redis_type)
        if spec is None:
            problems.append(f"{key} ({redis_type}) is not in bot/keys.py")
            continue
        seen.setdefault(spec.name, key)
        ttl = await redis.ttl(key)
        # other tests of the session share this Redis under their own namespaces and build
        # HandoffQueue directly, without the product's retention settings: bounds are checked on
        # this stack's keys (every key must still be registered)
        ours = key.startswith(f"{ns}:")
        if ours and spec.bound == "ttl" and ttl < 0 and not await open_ticket_key(redis, spec, key):
            problems.append(f"{key} ({spec.name}) should expire but has no TTL")
        if (
            ours
            and spec.cap is not None
            and await length(redis, key, redis_type) > spec.cap * 1.1 + 100
        ):
            problems.append(f"{key} holds more than its cap {spec.cap}")
        if spec.bound == "kept":
            assert spec.retention.startswith("kept: "), spec.name
    assert problems == []

    conversation = customer.conversation_id
    expected = {
        keys.WEB_CONVERSATION: {"conversation": conversation},
        keys.WEB_CONVERSATION_EVENTS: {"conversation": conversation},
        keys.HANDOFF_STATE: {"conversation": conversation},
        keys.ESCALATION_AUDIT: {"conversation": conversation},
        keys.QUEUE_TICKET: {"ticket": ticket_id},
        keys.QUEUE_TICKET_MESSAGES: {"ticket": ticket_id},
        keys.QUEUE_TICKET_AUDIT: {"ticket": ticket_id},
        keys.QUEUE_CONVERSATION_LAST: {"conversation": conversation},
        keys.ESCALATION_DECISIONS: {},
        keys.CSAT: {},
    }
    for spec, parts in expected.items():
        key = spec.format(ns=ns, **parts)
        ttl = await redis.ttl(key)
        assert ttl != -2, f"{key} was not written"
        if spec.bound == "ttl":
            assert 0 < ttl, key
    # the conversation lives CONVERSATION_RETENTION_SECONDS after its last event, a closed
    # ticket CLOSED_TICKET_RETENTION_SECONDS after the close
    conversation_ttl = await redis.ttl(
        keys.WEB_CONVERSATION_EVENTS.format(ns=ns, conversation=conversation)
    )
    assert DEFAULTS.conversation_retention_seconds - 600 < conversation_ttl
    ticket_ttl = await redis.ttl(keys.QUEUE_TICKET.format(ns=ns, ticket=ticket_id))
    assert DEFAULTS.closed_ticket_retention_seconds - 600 < ticket_ttl
    assert ticket_ttl <= DEFAULTS.closed_ticket_retention_seconds
    # streams trimmed by age hold nothing older than the history retention
    for spec in (keys.CSAT, keys.ESCALATION_DECISIONS):
        first = await redis.xrange(spec.format(ns=ns), count=1)
        assert first
        first_ms = int(first[0][0].split("-")[0])
        assert first_ms / 1000 > now - DEFAULTS.history_retention_seconds


async def customer_view(customer: Customer) -> dict:
    url = f"{customer.gateway.url}/api/conversations/{customer.conversation_id}"
    async with customer.http.get(url, headers=customer.headers) as response:
        return await response.json()
