"""Issue 12, finding 8: every malformed input gets a 4xx JSON error, never a 500, route by route,
against a real gateway and Redis.

The cases of the finding: JSON nested 50,000 deep, an ``after`` beyond 64 bits, ids with a key
suffix (``T1:msgs``, which names the ticket's message stream), malformed JSON on ``/label`` and
``/replay``, and a wrong content type (415).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.web.limits import GENEROUS_ENV
from tests.security.gateways import RunningGateway, gateway, lead_token, new_conversation

# (who authenticates, path): every route that reads a JSON body before it looks anything up
JSON_ROUTES = [
    ("customer", "/api/conversations/{conversation}/messages"),
    ("customer", "/api/conversations/{conversation}/typing"),
    ("nobody", "/api/agent/login"),
    ("agent", "/api/agent/presence"),
    ("agent", "/api/tickets/T1/messages"),
    ("agent", "/api/tickets/T1/label"),
    ("agent", "/api/analytics/replay"),
]
TICKET_ROUTES = [
    ("GET", ""),
    ("POST", "/claim"),
    ("POST", "/messages"),
    ("POST", "/typing"),
    ("POST", "/resolve"),
    ("POST", "/handback"),
    ("POST", "/transfer"),
    ("POST", "/label"),
]
CONVERSATION_ROUTES = [("GET", ""), ("POST", "/messages"), ("POST", "/typing")]


@pytest.fixture(scope="module")
def gw(redis_server) -> Iterator[RunningGateway]:
    with gateway(redis_server.url, GENEROUS_ENV) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
def auth(gw) -> dict[str, str]:
    """One conversation and one lead session for the module (made once: logins are slow)."""

    async def make() -> dict[str, str]:
        async with aiohttp.ClientSession() as http:
            conversation, token = await new_conversation(http, gw)
            agent = await lead_token(http, gw)
        return {"conversation": conversation, "customer": token, "agent": agent}

    return asyncio.run(make())


def target(gw: RunningGateway, auth: dict[str, str], who: str, path: str) -> tuple[str, dict]:
    headers = {"Authorization": f"Bearer {auth[who]}"} if who in auth else {}
    return gw.url + path.format(conversation=auth["conversation"]), headers


async def send(http, method: str, url: str, **kwargs) -> tuple[int, dict]:
    async with http.request(method, url, **kwargs) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


@pytest.mark.parametrize("who, path", JSON_ROUTES)
@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000, b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000],
    ids=["50000-deep-unclosed", "30000-deep-array", "10000-deep-object"],
)
async def test_json_nested_deep_is_400(http, gw, auth, who, path, body):
    url, headers = target(gw, auth, who, path)
    headers["Content-Type"] = "application/json"
    status, error = await send(http, "POST", url, data=body, headers=headers)
    assert status == 400
    assert "nested" in error["error"]["message"] or "JSON" in error["error"]["message"]


@pytest.mark.parametrize("who, path", JSON_ROUTES)
@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"text": NaN}', b'{"text": "\\ud800"}', b"\xff\xfe{}", b""],
    ids=["malformed", "nan", "lone-surrogate", "not-utf8", "empty"],
)
async def test_malformed_json_is_400(http, gw, auth, who, path, body):
    url, headers = target(gw, auth, who, path)
    headers["Content-Type"] = "application/json"
    status, error = await send(http, "POST", url, data=body, headers=headers)
    assert status == 400
    assert error["error"]["code"] == "bad_request"


@pytest.mark.parametrize("who, path", JSON_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_wrong_content_type_is_415(http, gw, auth, who, path, content_type):
    url, headers = target(gw, auth, who, path)
    headers["Content-Type"] = content_type
    body = json.dumps({"text": "hi", "typing": True, "login": "a", "password": "b"})
    status, error = await send(http, "POST", url, data=body, headers=headers)
    assert status == 415
    assert error["error"]["code"] == "unsupported_media_type"


async def test_an_after_beyond_64_bits_is_400(http, gw, auth):
    url, headers = target(gw, auth, "customer", "/api/conversations/{conversation}")
    for after in ["18446744073709551616-0", "1-18446744073709551616", "99999999999999999999-0"]:
        status, error = await send(http, "GET", url, params={"after": after}, headers=headers)
        assert status == 400, after
        assert "'after'" in error["error"]["message"]
    status, _ = await send(
        http, "GET", url, params={"after": "18446744073709551615-0"}, headers=headers
    )
    assert status == 200  # the largest valid id is fine


async def test_a_websocket_hello_with_a_huge_after_or_deep_json_does_not_break_the_socket(
    http, gw, auth
):
    url = gw.ws_url(f"/api/conversations/{auth['conversation']}/ws")
    async with http.ws_connect(url) as ws:
        await ws.send_str("[" * 15_000)
        assert (await ws.receive_json(timeout=10))["type"] == "error"
    async with http.ws_connect(url) as ws:
        await ws.send_json(
            {"type": "hello", "token": auth["customer"], "after": "99999999999999999999-0"}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "ready"


@pytest.mark.parametrize("method, suffix", TICKET_ROUTES)
async def test_a_ticket_id_with_a_key_suffix_is_400(http, gw, auth, method, suffix):
    redis = Redis.from_url(gw.redis_url, decode_responses=True)
    # a real key of another type under that name: reading it as a ticket hash used to be a 500
    await redis.xadd(f"{gw.namespace}:q:t:T1:msgs", {"from": "agent", "text": "hello"})
    await redis.close()
    url, headers = target(gw, auth, "agent", f"/api/tickets/T1:msgs{suffix}")
    status, error = await send(http, method, url, json={"text": "hi"}, headers=headers)
    assert status == 400
    assert "'ticket_id'" in error["error"]["message"]


@pytest.mark.parametrize("method, suffix", CONVERSATION_ROUTES)
@pytest.mark.parametrize("bad", [":events", ":cid:x", "*", " x"])
async def test_a_conversation_id_with_a_key_suffix_is_400(http, gw, auth, method, suffix, bad):
    url, headers = target(gw, auth, "customer", f"/api/conversations/{auth['conversation']}{bad}")
    status, error = await send(http, method, url + suffix, json={"text": "hi"}, headers=headers)
    assert status == 400
    assert "'conversation_id'" in error["error"]["message"]


@pytest.mark.parametrize("path", ["/api/tickets/T1/label", "/api/analytics/replay"])
@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'"label"', b"null"])
async def test_malformed_json_on_label_and_replay_is_400(http, gw, auth, path, body):
    headers = {"Authorization": f"Bearer {auth['agent']}", "Content-Type": "application/json"}
    status, error = await send(http, "POST", gw.url + path, data=body, headers=headers)
    assert status == 400
    assert error["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "query", [{"from": "0001-01-01"}, {"to": "9999-12-31"}, {"to": "0001-01-05"}]
)
async def test_a_period_at_the_edge_of_the_calendar_is_400(http, gw, auth, query):
    headers = {"Authorization": f"Bearer {auth['agent']}"}
    for path in ["/api/analytics/summary", "/api/analytics/conversations"]:
        status, _ = await send(http, "GET", gw.url + path, params=query, headers=headers)
        assert status == 400, (path, query)
