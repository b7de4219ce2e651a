"""The stream fan-out against a real Redis: in order, at least once and exactly once per socket,
for a slow subscriber whose queue overflows, and for subscribers joining a stream at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.web.events import ConversationEvents
from bot.web.fanout import QUEUE_SIZE, StreamFanout, Subscription

NAMESPACE = "fanouttest"


@pytest.fixture
async def fanout(redis: Redis) -> AsyncIterator[StreamFanout]:
    fanout = StreamFanout(redis, ConversationEvents(redis, NAMESPACE), readers=2)
    task = asyncio.create_task(fanout.run())
    yield fanout
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def collect(subscription: Subscription, count: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    while len(out) < count:
        batch = await subscription.next(5.0)
        assert batch, f"nothing more after {len(out)} of {count}"
        out.extend((conversation_id, event["text"]) for conversation_id, event in batch)
    return out


async def test_a_slow_subscriber_whose_queue_overflows_still_gets_everything_once_in_order(
    redis: Redis, fanout: StreamFanout
) -> None:
    events = ConversationEvents(redis, NAMESPACE)
    conversation = f"web-{uuid.uuid4().hex}"
    subscription = fanout.subscribe()
    await subscription.follow({conversation: await events.last_id(conversation)})
    assert await subscription.next(0.2) == []
    total = (QUEUE_SIZE * 3 // 50 + 1) * 50  # well over the queue
    for start in range(0, total, 50):  # appended while the subscriber reads nothing
        await events.append(
            conversation, [{"type": "notice", "text": str(i)} for i in range(start, start + 50)]
        )
    got = await collect(subscription, total)
    assert got == [(conversation, str(i)) for i in range(total)]
    assert await subscription.next(0.2) == []
    await subscription.close()
    assert fanout.following() == 0


async def test_subscribers_joining_a_stream_together_each_get_what_follows_their_offset(
    redis: Redis, fanout: StreamFanout
) -> None:
    events = ConversationEvents(redis, NAMESPACE)
    conversation = f"web-{uuid.uuid4().hex}"
    other = f"web-{uuid.uuid4().hex}"
    (first,) = await events.append(conversation, [{"type": "notice", "text": "old"}])
    from_start, from_first = fanout.subscribe(), fanout.subscribe()
    await asyncio.gather(
        from_start.follow({conversation: "0-0", other: "0-0"}),
        from_first.follow({conversation: first["id"]}),
    )
    await events.append(conversation, [{"type": "notice", "text": "new"}])
    await events.append(other, [{"type": "notice", "text": "elsewhere"}])
    got = await collect(from_start, 3)
    assert [text for c, text in got if c == conversation] == ["old", "new"]
    assert [text for c, text in got if c == other] == ["elsewhere"]
    assert await collect(from_first, 1) == [(conversation, "new")]
    assert await from_first.next(0.3) == []
    await from_start.close()
    await from_first.close()
