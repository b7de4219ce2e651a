"""Rasa's events travel Rasa -> Redis stream (the project's broker) -> event sink -> SQL, and
arrive exactly once: a sink killed between its commit and its XACK, restarted, stores nothing
twice and loses nothing; another sink takes over entries a dead one left. Real Redis, real sink
processes, SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import json
import uuid
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy
from rasa.core.brokers.sql import SQLEventBroker
from redis.asyncio import Redis

from bot.analytics import measures, rasa_events
from bot.analytics.event_sink import EVENTS, EventStore, backlog, wait_drained
from bot.analytics.event_stream import SINK_GROUP, StreamEvent, stream_key
from bot.analytics.rasa_broker import RedisStreamBroker
from bot.analytics.records import build_records
from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer

from .conftest import LOGS
from .test_postgres_broker import postgres  # noqa: F401 - the PostgreSQL fixture
from .test_rasa_events import conversation_events


def sink(redis: RedisServer, namespace: str, db_url: str, *extra: str, batch: int = 100):
    env = {
        "REDIS_URL": redis.url,
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "EVENTS_DB_URL": db_url,
        "EVENT_SINK_BATCH_SIZE": str(batch),
    }
    service = services.event_sink_service(free_port(), LOGS, env)
    service.command += list(extra)
    return service


async def publish(redis: RedisServer, namespace: str, events: list[dict]) -> None:
    broker = RedisStreamBroker(redis.url, namespace)
    for event in events:
        broker.publish(event)
    await broker.close()
    assert broker.queued() == 0


def numbered(count: int) -> list[dict]:
    return [
        {"sender_id": f"c{i % 37}", "event": "user", "text": f"m{i}", "timestamp": float(i)}
        for i in range(count)
    ]


def stored_texts(db_url: str) -> list[str]:
    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text("SELECT data FROM events ORDER BY id"))
            return [json.loads(data)["text"] for (data,) in rows]
    finally:
        engine.dispose()


@pytest.fixture
def namespace() -> str:
    return f"sink{uuid.uuid4().hex[:8]}"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def test_the_sinks_events_table_is_rasas_sql_broker_table():
    ours = {
        c.name: (type(c.type), c.primary_key, getattr(c.type, "length", None)) for c in EVENTS.c
    }
    rasa_table = SQLEventBroker.SQLBrokerEvent.__table__
    theirs = {
        c.name: (type(c.type), c.primary_key, getattr(c.type, "length", None)) for c in rasa_table.c
    }
    assert ours == theirs
    assert EVENTS.name == rasa_table.name == "events"


def test_a_batch_stored_twice_is_stored_once(tmp_path):
    store = EventStore(sqlite_url(tmp_path))
    events = [StreamEvent.from_rasa(event) for event in numbered(5)]
    assert store.insert(events[:3]) == 3
    assert store.insert(events) == 2
    assert store.insert(events + events) == 0
    store.close()
    assert stored_texts(sqlite_url(tmp_path)) == [f"m{i}" for i in range(5)]


async def test_rasa_events_reach_sql_through_the_stream_and_the_analytics_read_them(
    analytics_redis, namespace, tmp_path, redis
):
    events = [
        {"sender_id": sender, **event.as_dict()}
        for sender, conversation in conversation_events().items()
        for event in conversation
    ]
    await publish(analytics_redis, namespace, events)
    db_url = sqlite_url(tmp_path)
    with services.running([sink(analytics_redis, namespace, db_url)], timeout=60):
        await wait_drained(redis, namespace)
        assert await redis.xlen(stream_key(namespace)) == 0  # trimmed once acknowledged

    rows = rasa_events.read_rows(db_url)
    assert rows == [(e["sender_id"], e) for e in events]
    records = {r.conversation_id: r for r in build_records(rasa_events.read_events(db_url))}
    assert set(records) == set(conversation_events())
    assert measures.contained(records["helped"])
    assert records["rated"].rating == 2


async def test_a_sink_killed_after_commit_before_ack_redoes_its_batch_without_duplicates(
    analytics_redis, namespace, tmp_path, redis
):
    db_url = sqlite_url(tmp_path)
    await publish(analytics_redis, namespace, numbered(1000))

    doomed = sink(analytics_redis, namespace, db_url, "--crash-after-commit", "3")
    doomed.start()
    assert doomed.process is not None
    assert doomed.process.wait(timeout=120) == -9  # SIGKILL between commit and XACK
    assert stored_texts(db_url) == [f"m{i}" for i in range(300)]
    assert await backlog(redis, namespace) == 800  # 700 unread + the last batch, still pending
    pending = await redis.xpending(stream_key(namespace), SINK_GROUP)
    assert pending["pending"] == 100

    with services.running([sink(analytics_redis, namespace, db_url)], timeout=60):
        await wait_drained(redis, namespace)
    assert stored_texts(db_url) == [f"m{i}" for i in range(1000)]  # each once, in order
    assert await redis.xlen(stream_key(namespace)) == 0


async def test_another_sink_claims_what_a_dead_sink_left_pending(
    analytics_redis, namespace, tmp_path, redis
):
    db_url = sqlite_url(tmp_path)
    await publish(analytics_redis, namespace, numbered(600))
    doomed = sink(
        analytics_redis, namespace, db_url, "--consumer", "a", "--crash-after-commit", "2"
    )
    doomed.start()
    assert doomed.process is not None and doomed.process.wait(timeout=120) == -9

    other = sink(analytics_redis, namespace, db_url, "--consumer", "b", "--claim-idle", "0.5")
    with services.running([other], timeout=60):
        await wait_drained(redis, namespace)
    texts = stored_texts(db_url)
    assert collections.Counter(texts) == collections.Counter(f"m{i}" for i in range(600))
    consumers = await redis.xinfo_consumers(stream_key(namespace), SINK_GROUP)
    assert all(c["pending"] == 0 for c in consumers)


async def test_the_sink_stores_in_postgresql_when_events_db_url_says_so(
    analytics_redis,
    namespace,
    redis,
    postgres,  # noqa: F811
):
    events = [
        {"sender_id": sender, **event.as_dict()}
        for sender, conversation in conversation_events().items()
        for event in conversation
    ]
    await publish(analytics_redis, namespace, events)
    with services.running([sink(analytics_redis, namespace, postgres)], timeout=60):
        await wait_drained(redis, namespace)
    records = {r.conversation_id: r for r in build_records(rasa_events.read_events(postgres))}
    assert set(records) == set(conversation_events())
    assert records["unhelped"].ended_didnt_help


async def test_the_broker_keeps_events_while_redis_is_away_and_writes_them_in_order(
    tmp_path, namespace
):
    port = free_port()
    broker = RedisStreamBroker(f"redis://127.0.0.1:{port}/0", namespace)
    for event in numbered(5):
        broker.publish(event)
    assert not await broker.flush(timeout=0.5)  # nothing listens yet
    assert broker.queued() == 5
    with RedisServer(port=port, data_dir=tmp_path / "late-redis") as server:
        assert await broker.flush(timeout=30)
        client = Redis.from_url(server.url, decode_responses=True)
        entries = await client.xrange(stream_key(namespace))
        await client.close()
        await broker.close()
    texts = [json.loads(fields["data"])["text"] for _id, fields in entries]
    assert texts == [f"m{i}" for i in range(5)]


async def test_health_reports_the_backlog(analytics_redis, namespace, tmp_path):
    await publish(analytics_redis, namespace, numbered(3))
    service = sink(analytics_redis, namespace, sqlite_url(tmp_path))
    with services.running([service], timeout=60):
        client = Redis.from_url(analytics_redis.url)
        await wait_drained(client, namespace)
        await client.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(service.health_url) as response:
                body = await response.json()
    assert body == {"status": "ok", "backlog": 0, "stored": 3}


@pytest.mark.model
async def test_a_conversation_through_the_real_stack_arrives_in_sql_once(analytics_stack):
    gateway = analytics_stack
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/api/conversations") as response:
            assert response.status == 201
            body = await response.json()
        cid, headers = body["conversation_id"], {"Authorization": f"Bearer {body['token']}"}
        url = f"{gateway.url}/api/conversations/{cid}/messages"
        for text in ("How do I change my PIN?", "Which currencies can I hold?"):
            async with http.post(url, json={"text": text}, headers=headers) as response:
                assert response.status == 200, await response.text()
    async with Redis.from_url(gateway.redis_url) as client:
        await wait_drained(client, gateway.namespace)
        assert await client.xlen(stream_key(gateway.namespace)) == 0

    rows = [event for sender, event in rasa_events.read_rows(gateway.events_url) if sender == cid]
    said = [event["text"] for event in rows if event["event"] == "user"]
    assert said == ["How do I change my PIN?", "Which currencies can I hold?"]
    assert any(event["event"] == "bot" for event in rows)
    assert any(event["event"] == "action" and event["name"] == "action_respond" for event in rows)
