"""The customer API against a real gateway process and Redis: tokens, limits, origins, errors."""

from __future__ import annotations

import aiohttp
import pytest

from tests.web.conftest import ALLOWED_ORIGIN, Gateway


async def start(http: aiohttp.ClientSession, gateway: Gateway) -> tuple[str, str]:
    async with http.post(f"{gateway.url}/api/conversations") as response:
        assert response.status == 201
        body = await response.json()
    return body["conversation_id"], body["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_each_conversation_gets_its_own_unguessable_token(http, gateway):
    first = await start(http, gateway)
    second = await start(http, gateway)
    assert first[0] != second[0] and first[1] != second[1]
    assert len(first[1]) >= 40  # 32 random bytes, URL-safe


async def test_a_token_reaches_only_its_own_conversation(http, gateway):
    conversation_a, token_a = await start(http, gateway)
    conversation_b, _token_b = await start(http, gateway)
    url_b = f"{gateway.url}/api/conversations/{conversation_b}"
    async with http.get(url_b, headers=bearer(token_a)) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    async with http.post(f"{url_b}/messages", json={"text": "hi"}, headers=bearer(token_a)) as r:
        assert r.status == 403
    async with http.get(
        f"{gateway.url}/api/conversations/{conversation_a}", headers=bearer(token_a)
    ) as r:
        assert r.status == 200
        assert (await r.json())["mode"] == "bot"


async def test_a_websocket_with_another_conversations_token_is_closed(http, gateway):
    _conversation_a, token_a = await start(http, gateway)
    conversation_b, _ = await start(http, gateway)
    async with http.ws_connect(gateway.ws_url(f"/api/conversations/{conversation_b}/ws")) as ws:
        await ws.send_json({"type": "hello", "token": token_a})
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "error"
        await ws.receive(timeout=5)
        assert ws.close_code == 4403


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}]
)
async def test_a_missing_or_malformed_token_is_401(http, gateway, headers):
    conversation, _ = await start(http, gateway)
    async with http.get(f"{gateway.url}/api/conversations/{conversation}", headers=headers) as r:
        assert r.status == 401
        assert "Bearer" in (await r.json())["error"]["message"]


async def test_an_unknown_conversation_is_404(http, gateway):
    _, token = await start(http, gateway)
    async with http.get(f"{gateway.url}/api/conversations/web-nope", headers=bearer(token)) as r:
        assert r.status == 404


@pytest.mark.parametrize(
    "body, code",
    [
        ({"text": "a" * 2001}, 413),
        ({"payload": "/" + "a" * 400}, 413),
        ({}, 400),
        ({"text": "hi", "payload": "/affirm"}, 400),
        ({"text": "   "}, 400),
        ({"text": 42}, 400),
        ({"payload": "request_human"}, 400),
        ({"payload": "/affirm<script>"}, 400),
        ({"text": "hi", "client_id": "no spaces allowed"}, 400),
    ],
)
async def test_bad_message_bodies_get_a_clear_4xx(http, gateway, body, code):
    conversation, token = await start(http, gateway)
    url = f"{gateway.url}/api/conversations/{conversation}/messages"
    async with http.post(url, json=body, headers=bearer(token)) as response:
        assert response.status == code
        error = (await response.json())["error"]
        assert error["code"] and error["message"]


async def test_a_body_over_64_kib_is_refused_with_413_json(http, gateway):
    conversation, token = await start(http, gateway)
    url = f"{gateway.url}/api/conversations/{conversation}/messages"
    data = b'{"text": "' + b"a" * 70_000 + b'"}'
    headers = {**bearer(token), "Content-Type": "application/json"}
    async with http.post(url, data=data, headers=headers) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "request_entity_too_large"


async def test_a_body_that_is_not_json_is_400(http, gateway):
    conversation, token = await start(http, gateway)
    url = f"{gateway.url}/api/conversations/{conversation}/messages"
    headers = {**bearer(token), "Content-Type": "application/json"}
    async with http.post(url, data=b"{not json", headers=headers) as response:
        assert response.status == 400
        assert response.content_type == "application/json"


async def test_when_rasa_is_down_the_customer_gets_503_and_nothing_is_recorded(http, gateway):
    conversation, token = await start(http, gateway)
    url = f"{gateway.url}/api/conversations/{conversation}"
    async with http.post(
        f"{url}/messages", json={"text": "hello", "client_id": "m1"}, headers=bearer(token)
    ) as r:
        assert r.status == 503
        assert (await r.json())["error"]["code"] == "rasa_unavailable"
    async with http.get(url, headers=bearer(token)) as r:
        assert (await r.json())["messages"] == []  # the retry with client id m1 is not swallowed


async def test_a_foreign_origin_is_refused_for_the_api_and_the_websocket(http, gateway):
    evil = {"Origin": "https://evil.example"}
    async with http.post(f"{gateway.url}/api/conversations", headers=evil) as response:
        assert response.status == 403
    conversation, _ = await start(http, gateway)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(gateway.ws_url(f"/api/conversations/{conversation}/ws"), headers=evil)
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(gateway.ws_url("/api/agent/ws"), headers=evil)
    assert refused.value.status == 403


async def test_an_allowed_embedding_origin_gets_cors_headers(http, gateway):
    async with http.post(
        f"{gateway.url}/api/conversations", headers={"Origin": ALLOWED_ORIGIN}
    ) as r:
        assert r.status == 201
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    async with http.options(
        f"{gateway.url}/api/conversations", headers={"Origin": ALLOWED_ORIGIN}
    ) as r:
        assert r.status == 204
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/api/nothing-here", 404),
        ("PUT", "/api/conversations", 405),
        ("GET", "/static/../pyproject.toml", 404),
    ],
)
async def test_errors_are_json_without_a_trace(http, gateway, method, path, status):
    async with http.request(method, f"{gateway.url}{path}") as response:
        assert response.status == status
        body = await response.json()
        assert set(body) == {"error"}
        assert "Traceback" not in await response.text()


async def test_pages_forbid_inline_scripts_and_framing(http, gateway):
    for path in ("/", "/agent", "/api/docs"):
        async with http.get(f"{gateway.url}{path}") as response:
            assert response.status == 200
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Frame-Options"] == "DENY"


async def test_the_openapi_document_lists_the_api(http, gateway):
    async with http.get(f"{gateway.url}/api/openapi.json") as response:
        paths = (await response.json())["paths"]
    for path in (
        "/api/conversations",
        "/api/conversations/{conversation_id}/messages",
        "/api/agent/login",
        "/api/tickets",
        "/api/tickets/{ticket_id}/handback",
    ):
        assert path in paths
