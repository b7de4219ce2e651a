"""endpoints.yml sends Rasa's events to the project's Redis stream broker (the event sink then
stores them in the SQL database named by EVENTS_DB_URL) and calls the action server with its token."""

from __future__ import annotations

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import read_endpoint_config

from bot.analytics.event_stream import stream_key
from bot.analytics.rasa_broker import RedisStreamBroker
from bot.config import PROJECT_ROOT, get_settings


def test_endpoints_yml_expands_the_action_server_url_and_token(monkeypatch):
    monkeypatch.setenv("ACTION_SERVER_URL", "http://127.0.0.1:5999/webhook")
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "action-token")
    endpoints = str(PROJECT_ROOT / "endpoints.yml")
    action_endpoint = read_endpoint_config(endpoints, "action_endpoint")
    assert action_endpoint.url == "http://127.0.0.1:5999/webhook"
    assert action_endpoint.token == "action-token"  # sent as ?token= on every call


async def test_endpoints_yml_makes_rasa_publish_to_the_redis_stream(monkeypatch, analytics_redis):
    monkeypatch.setenv("REDIS_URL", analytics_redis.url)
    monkeypatch.setenv("SUPPORT_QUEUE_NAMESPACE", "brokercfg")
    monkeypatch.setenv("ACTION_SERVER_URL", "http://127.0.0.1:5999/webhook")
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "action-token")  # the file is expanded whole
    get_settings.cache_clear()
    try:
        config = read_endpoint_config(str(PROJECT_ROOT / "endpoints.yml"), "event_broker")
        broker = await EventBroker.create(config)  # as Rasa creates it at start
        assert isinstance(broker, RedisStreamBroker)
        assert broker.key == stream_key("brokercfg")
        broker.publish({"sender_id": "c1", "event": "user", "text": "hi"})
        await broker.close()
        assert await analytics_redis_len(analytics_redis.url) == 1
    finally:
        get_settings.cache_clear()


async def analytics_redis_len(url: str) -> int:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        return int(await client.xlen(stream_key("brokercfg")))
    finally:
        await client.close()
