"""The gateway's limits on a real Redis: GCRA rates charged atomically, socket caps that a dead
gateway cannot leak, and the rate format of the settings."""

from __future__ import annotations

import asyncio

import pytest

from bot.config import Settings
from bot.web.limits import Limits, Rate, RateLimited


def settings(**values: str | int) -> Settings:
    return Settings(queue_namespace="limits-test", **values)


@pytest.mark.parametrize(
    "text, rate",
    [
        ("20/m", Rate(20, 60.0)),
        ("10/10s", Rate(10, 10.0)),
        ("40/5m", Rate(40, 300.0)),
        (" 3 / h ", Rate(3, 3600.0)),
        ("off", None),
        ("", None),
    ],
)
def test_rates_are_written_as_count_per_period(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["20", "0/m", "20/0s", "20/week", "-1/m", "ten/m"])
def test_a_malformed_rate_is_refused_with_a_clear_message(text):
    with pytest.raises(ValueError, match="20/m"):
        Rate.parse(text)


async def test_parallel_hits_never_exceed_the_burst(redis_client):
    limits = Limits(redis_client, settings(rate_limit_conversations_per_ip="7/h"))
    waits = await asyncio.gather(
        *(limits.check(("conversations_per_ip", "1.2.3.4")) for _ in range(50))
    )
    assert sum(1 for w in waits if w == 0) == 7
    assert all(0 < w <= 3600 / 7 + 1 for w in waits if w)
    assert await limits.check(("conversations_per_ip", "5.6.7.8")) == 0  # another subject


async def test_several_checks_are_charged_all_or_none(redis_client):
    limits = Limits(
        redis_client,
        settings(rate_limit_messages_per_conversation="2/h", rate_limit_messages_per_ip="3/h"),
    )
    both = [("messages_per_conversation", "c1"), ("messages_per_ip", "ip")]
    assert [await limits.check(*both) for _ in range(3)][:2] == [0, 0]
    # c1 is spent; the refused third try did not charge the IP, which has one left
    assert await limits.check(("messages_per_conversation", "c2"), ("messages_per_ip", "ip")) == 0
    assert await limits.check(("messages_per_conversation", "c3"), ("messages_per_ip", "ip")) > 0


async def test_hit_raises_429_with_retry_after(redis_client):
    limits = Limits(redis_client, settings(rate_limit_logins_per_account="1/m"))
    await limits.hit(("logins_per_account", "ann"))
    with pytest.raises(RateLimited) as refused:
        await limits.hit(("logins_per_account", "ann"))
    response = refused.value.response()
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def test_an_off_limit_is_never_charged(redis_client):
    limits = Limits(redis_client, settings(rate_limit_typing_per_conversation="off"))
    assert all([await limits.check(("typing_per_conversation", "c")) == 0 for _ in range(100)])
    assert await redis_client.keys("limits-test:limit:*") == []


async def test_socket_slots_are_capped_and_released(redis_client):
    limits = Limits(redis_client, settings(max_sockets_per_conversation=2))
    first = await limits.open_socket(conversation="c1")
    second = await limits.open_socket(conversation="c1")
    assert first and second
    assert await limits.open_socket(conversation="c1") is None
    await first.release()
    third = await limits.open_socket(conversation="c1")
    assert third is not None
    for slot in (second, third):
        await slot.release()


async def test_a_full_cap_counts_nothing_for_the_other_scope(redis_client):
    limits = Limits(redis_client, settings(max_sockets_per_conversation=1, max_sockets_per_ip=5))
    held = await limits.open_socket(conversation="c1", ip="ip1")
    assert await limits.open_socket(conversation="c1", ip="ip1") is None
    assert await redis_client.zcard("limits-test:limit:sockets:ip:ip1") == 1
    await held.release()


async def test_sockets_of_a_dead_gateway_expire(redis_client, monkeypatch):
    monkeypatch.setattr("bot.web.limits.SOCKET_TTL_SECONDS", 1)
    dead = Limits(redis_client, settings(max_sockets_per_ip=1))
    assert await dead.open_socket(ip="ip1") is not None
    assert await dead.open_socket(ip="ip1") is None
    await dead.close()  # the gateway died: no renewal, no release
    await asyncio.sleep(1.2)
    limits = Limits(redis_client, settings(max_sockets_per_ip=1))
    again = await limits.open_socket(ip="ip1")
    assert again is not None
    await again.release()
    await limits.close()


async def test_open_sockets_are_renewed_together_while_open_and_not_once_released(
    redis_client, monkeypatch
):
    monkeypatch.setattr("bot.web.limits.SOCKET_TTL_SECONDS", 1)
    monkeypatch.setattr("bot.web.limits.SOCKET_RENEW_SECONDS", 0.3)
    monkeypatch.setattr("bot.web.limits.RENEW_BATCH", 2)  # several script calls per round
    limits = Limits(redis_client, settings(max_sockets_per_ip=5, max_sockets_per_conversation=1))
    slots = [await limits.open_socket(ip="ip2", conversation=f"r{i}") for i in range(5)]
    assert all(slots)
    released = slots.pop()
    await released.release()
    await asyncio.sleep(2.0)  # twice the ttl: only renewals keep the others counted
    assert await redis_client.zcard("limits-test:limit:sockets:ip:ip2") == 4
    for i in range(4):
        assert await limits.open_socket(conversation=f"r{i}") is None  # still held
    assert await redis_client.zcard("limits-test:limit:sockets:conversation:r4") == 0
    for slot in slots:
        await slot.release()
    assert await redis_client.zcard("limits-test:limit:sockets:ip:ip2") == 0
    await limits.close()
