"""Refusals remembered (bot/web/refusals.py): a client Redis refused is refused again without
Redis while Redis still would, allowed to ask again after, never refused where Redis would
allow (also with two gateways on one Redis), and the memory stays bounded."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.config import Settings
from bot.web.limits import Limits, RateLimited
from bot.web.refusals import MARGIN, RecentRefusals


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**values: str) -> Settings:
    return Settings(queue_namespace="refusals-test", **values)


def no_redis(*_args, **_kwargs):
    raise AssertionError("Redis was asked")


async def test_a_refused_client_is_refused_again_without_redis_until_its_time(redis_client):
    clock = Clock()
    limits = Limits(redis_client, settings(rate_limit_conversations_per_ip="2/h"))
    limits.refusals.clock = clock
    check = ("conversations_per_ip", "1.2.3.4")
    assert [await limits.check(check) for _ in range(2)] == [0, 0]
    first = await limits.check(check)  # Redis refuses: 1/2 h until the next one
    assert 1700 < first <= 1800
    limits._gcra = no_redis
    assert await limits.check(check) == pytest.approx(first, abs=1)
    with pytest.raises(RateLimited) as refused:
        await limits.hit(check)
    assert refused.value.response().headers["Retry-After"] == str(refused.value.retry_after)
    clock.now += first - 10
    assert 0 < await limits.check(check) <= 11  # still known, counting down
    clock.now += 11  # its time is over: Redis is asked again
    with pytest.raises(AssertionError, match="Redis was asked"):
        await limits.check(check)


async def test_only_the_refused_checks_are_known_not_their_subjects_elsewhere(redis_client):
    limits = Limits(
        redis_client,
        settings(rate_limit_messages_per_conversation="1/h", rate_limit_messages_per_ip="100/h"),
    )
    c1 = [("messages_per_conversation", "c1"), ("messages_per_ip", "ip")]
    c2 = [("messages_per_conversation", "c2"), ("messages_per_ip", "ip")]
    assert await limits.check(*c1) == 0
    assert await limits.check(*c1) > 0
    assert await limits.check(*c2) == 0  # the address in another conversation: Redis allows
    assert len(limits.refusals) == 1


def test_a_refusal_is_kept_from_when_the_script_was_sent_and_needs_the_same_proof():
    clock = Clock()
    refusals = RecentRefusals(clock=clock)
    sent = clock.now
    clock.now += 0.4  # the script's round trip
    refusals.remember(["k"], 2.0, sent_at=sent, proof="hash-a")
    assert refusals.wait(["k"], proof="hash-b") == 0  # another token: ask Redis (403 there)
    assert refusals.wait(["k"]) == 0
    assert refusals.wait(["k"], proof="hash-a") == pytest.approx(1.6 - MARGIN)
    assert refusals.retry_after(["k"], proof="hash-a") == 2
    clock.now = sent + 2.0 - MARGIN
    assert refusals.wait(["k"], proof="hash-a") == 0
    assert len(refusals) == 0  # an expired entry is dropped when looked up


def test_the_memory_is_bounded_and_forgets_the_oldest_first():
    clock = Clock()
    refusals = RecentRefusals(max_entries=3, clock=clock)
    for i in range(10):
        refusals.remember([f"k{i}"], 60, sent_at=clock.now)
        assert len(refusals) <= 3
    assert [refusals.wait([f"k{i}"]) > 0 for i in range(10)] == [False] * 7 + [True] * 3
    refusals.remember(["k7"], 60, sent_at=clock.now)  # renewed: now the newest
    refusals.remember(["k10"], 60, sent_at=clock.now)
    assert refusals.wait(["k7"]) > 0 and refusals.wait(["k8"]) == 0
    assert RecentRefusals(max_entries=0).wait(["k"]) == 0


# Would Redis refuse these checks now? The GCRA test of bot/web/limits.py, without charging.
_WOULD_REFUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  if tat + tonumber(ARGV[2 * i - 1]) - now > tonumber(ARGV[2 * i]) then return 1 end
end
return 0
"""


async def test_two_gateways_never_refuse_where_redis_would_allow(redis_client):
    env = settings(rate_limit_messages_per_conversation="3/s", rate_limit_messages_per_ip="8/2s")
    gateways = [Limits(redis_client, env), Limits(redis_client, env)]
    would_refuse = redis_client.register_script(_WOULD_REFUSE)
    rng = random.Random(7)
    known = allowed = 0
    for _ in range(600):
        limits = rng.choice(gateways)
        checks = [("messages_per_conversation", rng.choice("ab")), ("messages_per_ip", "ip")]
        charges = limits.charges(*checks)
        # asked before the gateway decides: a refusal it still knows later was true here
        redis_refuses = int(await would_refuse(keys=charges.keys, args=charges.args))
        before = limits.refusals.refused
        wait = await limits.check(*checks)
        if limits.refusals.refused > before:
            known += 1
            assert redis_refuses, "the gateway refused what Redis would have allowed"
        allowed += wait == 0
        await asyncio.sleep(rng.choice([0, 0, 0, 0.01, 0.05]))
    assert known > 0 and allowed > 0  # both paths were taken


async def test_a_repeat_is_held_before_its_429_and_marked_not_to_be_logged(
    redis_client, monkeypatch
):
    import bot.web.limits as limits_module
    from bot.web.limits import REPEAT

    held: list[float] = []

    async def sleep(seconds: float) -> None:
        held.append(seconds)

    monkeypatch.setattr(limits_module.asyncio, "sleep", sleep)
    limits = Limits(
        redis_client,
        settings(rate_limit_logins_per_account="1/h", rate_limit_repeat_delay_seconds="2.5"),
    )
    check = ("logins_per_account", "ann")
    await limits.hit(check)
    with pytest.raises(RateLimited) as first:  # Redis's refusal: at once, logged
        await limits.hit(check)
    assert held == [] and REPEAT not in first.value.response()
    with pytest.raises(RateLimited) as repeat:  # from memory: held, then answered
        await limits.hit(check)
    assert held == [2.5]
    response = repeat.value.response()
    assert response[REPEAT] and response.status == 429
    assert int(response.headers["Retry-After"]) == first.value.retry_after
    # never held longer than the wait that is left
    short = limits.charges(("logins_per_account", "bob"))
    limits.refusals.remember(short.keys, 0.5, sent_at=limits.refusals.clock())
    assert 0 < short.known_refused().repeat_hold <= 0.5
