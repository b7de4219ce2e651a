"""A turn whose gateway died (or whose recording failed) is settled from Rasa's tracker
(bot/web/turn_recovery.py, Conversations._recover).

Unit tests on tracker shapes; then, on the real stack (Redis, Rasa with the trained model, the
action server, a gateway), what a dead gateway leaves behind is made by hand: the message is sent
straight to Rasa's REST webhook with its client id as metadata (as the gateway sends it) and the
gateway's ``pending`` marker is written with an old start time. The customer's retry with the
same client id then gets the bot's answer, recorded once however often it is retried. A marker
older than the Rasa timeout whose message Rasa never saw is released, and the retry runs it.
"""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest
from redis.asyncio import Redis

from bot import keys
from bot.web.turn_recovery import finished_turn, never_ran, reply_key
from tests.web.conftest import Gateway
from tests.web.test_live_relay import Customer, new_customer

QUESTION = "how long does a new card take to arrive"


def _user(client_id: str | None, text: str = "hi") -> dict:
    return {
        "event": "user",
        "text": text,
        "metadata": {"client_id": client_id} if client_id else {},
    }


LISTEN = {"event": "action", "name": "action_listen"}


def test_a_finished_turn_gives_its_bot_replies_in_rest_form() -> None:
    tracker = {
        "events": [
            LISTEN,
            _user("a"),
            {"event": "action", "name": "action_respond"},
            {
                "event": "bot",
                "text": "one",
                "data": {"buttons": [{"title": "Yes", "payload": "/y"}]},
            },
            {"event": "slot", "name": "x", "value": 1},
            {"event": "bot", "text": "two", "data": {"custom": {"k": 1}, "image": None}},
            LISTEN,
            _user("b"),
            {"event": "bot", "text": "three", "data": {}},
            LISTEN,
        ]
    }
    assert finished_turn(tracker, "a") == [
        {"text": "one", "buttons": [{"title": "Yes", "payload": "/y"}]},
        {"text": "two", "custom": {"k": 1}},
    ]
    assert finished_turn(tracker, "b") == [{"text": "three"}]


def test_an_unfinished_or_unknown_turn_gives_nothing() -> None:
    running = {"events": [LISTEN, _user("a"), {"event": "bot", "text": "one", "data": {}}]}
    assert finished_turn(running, "a") is None  # no action_listen yet
    assert finished_turn(running, "zzz") is None
    assert finished_turn({"events": [_user(None)]}, "a") is None


def test_never_ran_needs_no_user_event_and_no_ticket() -> None:
    tracker = {"events": [LISTEN, _user("a"), LISTEN]}
    assert never_ran(tracker, "b", {"seq": "3"})  # only the counter: nobody holds the lock
    assert never_ran(tracker, "b", {})
    assert not never_ran(tracker, "b", {b"seq": b"3", b"t:4": b"1.0"})  # a turn holds/waits
    assert not never_ran(tracker, "a", {})  # Rasa saw it


def test_reply_keys_are_distinct_per_reply_and_message() -> None:
    assert len({reply_key("a", 0), reply_key("a", 1), reply_key("b", 0), "a"}) == 4


async def _post(customer: Customer, client_id: str, text: str) -> tuple[int, dict]:
    url = f"{customer.gateway.url}/api/conversations/{customer.conversation_id}/messages"
    body = {"client_id": client_id, "text": text}
    async with customer.http.post(url, json=body, headers=customer.headers) as response:
        return response.status, await response.json()


async def _straight_to_rasa(http: aiohttp.ClientSession, stack: Gateway, sender: str, cid: str):
    body = {"sender": sender, "message": QUESTION, "metadata": {"client_id": cid}}
    url, token = f"{stack.rasa_url}/webhooks/rest/webhook", {"token": stack.rasa_token or ""}
    async with http.post(url, json=body, params=token) as response:
        assert response.status == 200
        return await response.json()


async def _rasa_client_ids(http: aiohttp.ClientSession, stack: Gateway, sender: str) -> list:
    url = f"{stack.rasa_url}/conversations/{sender}/tracker"
    async with http.get(url, params={"token": stack.rasa_token or ""}) as response:
        events = (await response.json())["events"]
    return [(e.get("metadata") or {}).get("client_id") for e in events if e["event"] == "user"]


def _marker(stack: Gateway, conversation_id: str, client_id: str) -> str:
    return keys.WEB_CONVERSATION_TURN.format(
        ns=stack.namespace, conversation=conversation_id, client_id=client_id
    )


@pytest.mark.model
async def test_a_turn_rasa_finished_for_a_dead_gateway_is_recorded_once_by_the_retry(
    http: aiohttp.ClientSession, stack: Gateway
) -> None:
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        customer = await new_customer(http, stack)
        cid = f"dead-{uuid.uuid4().hex[:8]}"
        # the dead gateway's leftovers: its reservation, and the turn Rasa ran for it
        await redis.set(
            _marker(stack, customer.conversation_id, cid), f"pending:{time.time() - 10:.3f}"
        )
        replies = await _straight_to_rasa(http, stack, customer.conversation_id, cid)
        assert replies

        status, body = await _post(customer, cid, QUESTION)
        assert status == 200, body
        bot = [m["text"] for m in body["messages"] if m.get("from") == "bot"]
        assert bot == [r["text"] for r in replies if r.get("text")]
        status, again = await _post(customer, cid, QUESTION)  # a second retry: the same turn
        assert status == 200, again
        assert [m["id"] for m in again["messages"]] == [m["id"] for m in body["messages"]]

        view = await customer.view()
        mine = [m for m in view["messages"] if m.get("client_id") == cid]
        assert len(mine) == 1 and mine[0]["text"] == QUESTION
        assert [m["text"] for m in view["messages"] if m.get("from") == "bot"] == bot
        assert await redis.get(_marker(stack, customer.conversation_id, cid)) == "done"
        assert await _rasa_client_ids(http, stack, customer.conversation_id) == [cid]  # ran once
    finally:
        await redis.close()


@pytest.mark.model
async def test_a_turn_rasa_never_saw_is_released_after_the_timeout_and_the_retry_runs_it(
    http: aiohttp.ClientSession, stack: Gateway
) -> None:
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        customer = await new_customer(http, stack)
        cid = f"lost-{uuid.uuid4().hex[:8]}"
        marker = _marker(stack, customer.conversation_id, cid)
        await redis.set(marker, f"pending:{time.time() - 3600:.3f}")  # far past the Rasa timeout

        status, body = await _post(customer, cid, QUESTION)
        assert status == 503 and body["error"]["code"] == "turn_not_sent", body
        status, body = await _post(customer, cid, QUESTION)
        assert status == 200, body
        assert any(m.get("from") == "bot" for m in body["messages"]), body
        assert await _rasa_client_ids(http, stack, customer.conversation_id) == [cid]
    finally:
        await redis.close()


@pytest.mark.model
async def test_a_young_pending_turn_rasa_never_saw_is_left_alone(
    http: aiohttp.ClientSession, stack: Gateway
) -> None:
    """Younger than the Rasa timeout, a message may still be on its way to a busy Rasa: the
    retry waits (503 turn_pending), it does not run it a second time."""
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        customer = await new_customer(http, stack)
        cid = f"slow-{uuid.uuid4().hex[:8]}"
        marker = _marker(stack, customer.conversation_id, cid)
        await redis.set(marker, f"pending:{time.time() - 10:.3f}")
        status, body = await _post(customer, cid, QUESTION)
        assert status == 503 and body["error"]["code"] == "turn_pending", body
        assert (await redis.get(marker)).startswith("pending:")
        assert await _rasa_client_ids(http, stack, customer.conversation_id) == []
    finally:
        await redis.close()
