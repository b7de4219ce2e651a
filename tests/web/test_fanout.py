"""The stream fan-out against a real Redis: in order, at least once and exactly once per socket,
for a slow subscriber whose queue overflows, for subscribers joining a stream at once, for
appends announced by their notice (fetched at once, one stream at a time) and for appends whose
notice never came (found by the sweep)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.web import fanout as fanout_module
from bot.web.events import ConversationEvents, decode
from bot.web.fanout import QUEUE_SIZE, StreamFanout, Subscription

NAMESPACE = "fanouttest"


@pytest.fixture
async def fanout(redis: Redis) -> AsyncIterator[StreamFanout]:
    fanout = StreamFanout(redis, ConversationEvents(redis, NAMESPACE))
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


async def started(fanout: StreamFanout) -> None:
    """Wait until the subscriber is on the channel and its first sweep is done."""
    for _ in range(200):
        if fanout.sweeps:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the fan-out never swept")


async def test_notices_bring_each_append_at_once_in_order_to_every_follower(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout_module, "SWEEP_SECONDS", 60.0)  # only notices can deliver here
    fanout = StreamFanout(redis, ConversationEvents(redis, NAMESPACE))
    task = asyncio.create_task(fanout.run())
    try:
        await started(fanout)
        sweeps = fanout.sweeps
        events = ConversationEvents(redis, NAMESPACE)
        conversations = [f"web-{uuid.uuid4().hex}" for _ in range(3)]
        both, one = fanout.subscribe(), fanout.subscribe()
        await both.follow({c: await events.last_id(c) for c in conversations})
        await one.follow({conversations[0]: await events.last_id(conversations[0])})
        for i in range(30):
            await events.append(conversations[i % 3], [{"type": "notice", "text": str(i)}])
        got = await asyncio.wait_for(collect(both, 30), 5)
        for k, conversation in enumerate(conversations):
            expected = [str(i) for i in range(k, 30, 3)]
            assert [text for c, text in got if c == conversation] == expected
        assert await asyncio.wait_for(collect(one, 10), 5) == [
            (conversations[0], str(i)) for i in range(0, 30, 3)
        ]
        assert await both.next(0.2) == [] and await one.next(0.2) == []
        assert fanout.notices >= 30
        assert fanout.sweeps == sweeps  # no sweep ran: the notices alone delivered
        await both.close()
        await one.close()
        assert fanout.following() == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_append_whose_notice_never_came_is_delivered_by_the_sweep_in_order(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout_module, "SWEEP_SECONDS", 0.5)
    fanout = StreamFanout(redis, ConversationEvents(redis, NAMESPACE))
    task = asyncio.create_task(fanout.run())
    try:
        await started(fanout)
        events = ConversationEvents(redis, NAMESPACE)
        conversation = f"web-{uuid.uuid4().hex}"
        subscription = fanout.subscribe()
        await subscription.follow({conversation: await events.last_id(conversation)})
        assert await subscription.next(0.1) == []
        sweeps, notices = fanout.sweeps, fanout.notices
        # a writer that does not publish (e.g. an older gateway): plain XADDs, no notice
        for i in range(5):
            await redis.xadd(
                events.key(conversation), {"e": f'{{"type": "notice", "text": "{i}"}}'}
            )
        got = await asyncio.wait_for(collect(subscription, 5), 5)
        assert got == [(conversation, str(i)) for i in range(5)]
        assert fanout.sweeps > sweeps and fanout.notices == notices
        # then announced appends go on after them, once each
        await events.append(conversation, [{"type": "notice", "text": "5"}])
        assert await asyncio.wait_for(collect(subscription, 1), 5) == [(conversation, "5")]
        assert await subscription.next(0.7) == []  # a sweep passed: nothing twice
        await subscription.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_every_append_publishes_its_conversation_and_last_new_id(redis: Redis) -> None:
    events = ConversationEvents(redis, NAMESPACE)
    conversation = f"web-{uuid.uuid4().hex}"
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(events.channel)
    try:
        appended = await events.append(
            conversation,
            [{"type": "notice", "text": "a", "client_id": "c1"}, {"type": "notice", "text": "b"}],
        )
        await events.append(conversation, [{"type": "notice", "text": "a", "client_id": "c1"}])
        notices = []
        deadline = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < deadline:
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                notices.append(message["data"])
        assert notices == [f"{conversation} {appended[-1]['id']}"]  # the retry added nothing
        entries = await redis.xrange(events.key(conversation))
        assert [decode(*entry)["text"] for entry in entries] == ["a", "b"]
    finally:
        await pubsub.reset()
