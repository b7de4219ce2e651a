"""Rasa's requests to the action server on a kept session: the patch replaces exactly the Rasa
method it was written for, answers as Rasa's own does against a real server, and reuses its
connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

from bot.runtime import endpoint_session
from bot.runtime.ports import free_port


@pytest.fixture(autouse=True)
async def _close_kept_sessions() -> AsyncIterator[None]:
    """The sessions a test's requests kept are closed in that test's event loop."""
    yield
    sessions = list(endpoint_session._sessions.values())
    endpoint_session._sessions.clear()
    await asyncio.gather(*(s.close() for s in sessions if not s.closed))


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[Any]]]:
    """A real HTTP server: echoes what it got as JSON, answers text, 404 or 500 on other paths,
    and records the client address of each request."""
    peers: list[Any] = []

    async def echo(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {
                "query": dict(request.query),
                "auth": request.headers.get("Authorization"),
                "custom": request.headers.get("X-Custom"),
                "type": request.headers.get("Content-Type"),
                "body": body,
                "method": request.method,
            }
        )

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such thing")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="it broke")

    app = web.Application()
    app.router.add_route("*", "/webhook", echo)
    app.router.add_get("/text", text)
    app.router.add_post("/missing", missing)
    app.router.add_post("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", peers
    await runner.cleanup()


async def outcome(function: Any, endpoint: EndpointConfig, *args: Any, **kwargs: Any) -> Any:
    try:
        return ("answer", await function(endpoint, *args, **kwargs))
    except ClientResponseError as error:
        return ("error", error.status, error.message, error.text)


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {"json": {"next_action": "action_respond"}, "method": "post", "timeout": 5}),
    (("post", "webhook"), {"json": [1, 2]}),
    (("get", "text"), {}),
    (("post", "missing"), {}),
    (("post", "broken"), {}),
    (("get", "webhook"), {"params": {"extra": "1"}, "headers": {"X-Custom": "call"}}),
    (("post", "webhook"), {"content_type": None, "json": {"a": 1}}),
    (("post", "webhook"), {"json": {"tracker": {"events": [{"text": "café / 5€ 😀 </b>"}]}}}),
    (("post", "webhook"), {"json": {"numbers": [1e-05, 1 / 3, 2**70, -0.0, 1e300, True, None]}}),
]

BODIES: list[Any] = [
    {"text": "café / 5€ 😀 \ud800 </script>", "keys": {2: "a", True: "b", None: "c", 1.5: "d"}},
    [1e-05, 1 / 3, 2**70, -(2**64), float("inf"), -0.0, 5e-324, (1, 2)],
    {"nested": [{"event": "user", "parse_data": {"intent": {"confidence": 0.123456789}}}]},
]


@pytest.mark.parametrize("body", range(len(BODIES)))
def test_json_bodies_are_the_standard_librarys_data(body: int) -> None:
    """The body ujson writes parses to the data `json.dumps` writes (floats, big numbers,
    non-ASCII, a lone surrogate, non-string keys, tuples); what ujson refuses raises as before."""
    data = BODIES[body]
    assert json.loads(endpoint_session.dumps(data)) == json.loads(json.dumps(data))
    with pytest.raises(TypeError):
        endpoint_session.dumps({"a set": {1}})


@pytest.mark.parametrize("call", range(len(CALLS)))
async def test_each_request_is_answered_as_by_rasas_own_method(server, call: int) -> None:
    url, _ = server
    args, kwargs = CALLS[call]
    endpoints = [
        EndpointConfig(url=f"{url}/webhook", token="secret"),
        EndpointConfig(url=url, params={"p": "v"}, headers={"X-Custom": "endpoint"}),
        EndpointConfig(url=url, basic_auth={"username": "u", "password": "p"}),
    ]
    for endpoint in endpoints:
        if args and endpoint.url.endswith("/webhook"):
            continue  # subpaths are for the base-URL endpoints
        expected = await outcome(endpoint_session.ORIGINAL, endpoint, *args, **dict(kwargs))
        assert await outcome(endpoint_session.request, endpoint, *args, **dict(kwargs)) == expected


async def test_requests_reuse_one_kept_connection(server) -> None:
    url, peers = server
    endpoint = EndpointConfig(url=f"{url}/webhook", token="secret")
    for _ in range(3):
        await endpoint_session.ORIGINAL(endpoint, json={})
    assert len(set(peers)) == 3  # Rasa's own: a new connection each time
    peers.clear()
    for _ in range(3):
        await endpoint_session.request(endpoint, json={})
    assert len(set(peers)) == 1
    assert endpoint_session.KEEPALIVE_SECONDS < 5  # the action server's (Sanic's) keep-alive


async def test_a_closed_session_or_another_loop_gets_a_new_session(server) -> None:
    url, _ = server
    endpoint = EndpointConfig(url=f"{url}/webhook")
    first = endpoint_session._session(endpoint)
    assert endpoint_session._session(endpoint) is first
    await first.close()
    second = endpoint_session._session(endpoint)
    assert second is not first and not second.closed
    other = EndpointConfig(url=f"{url}/webhook", headers={"X-Custom": "other"})
    assert endpoint_session._session(other) is not second
    assert (await endpoint_session.request(other))["custom"] == "other"


def test_rasas_method_is_the_one_the_patch_was_written_for() -> None:
    """Fails when a Rasa upgrade changes the method: review the patch, then update the hash."""
    assert endpoint_session.rasa_source_sha256() == endpoint_session.RASA_SOURCE_SHA256


def test_apply_replaces_rasas_method_and_is_idempotent(monkeypatch) -> None:
    monkeypatch.setattr(EndpointConfig, "request", endpoint_session.ORIGINAL)
    assert endpoint_session.apply() is True
    assert EndpointConfig.request is endpoint_session.request
    assert endpoint_session.apply() is True


def test_apply_leaves_a_changed_rasa_method_alone(monkeypatch, caplog) -> None:
    monkeypatch.setattr(EndpointConfig, "request", endpoint_session.ORIGINAL)
    monkeypatch.setattr(endpoint_session, "RASA_SOURCE_SHA256", "0" * 64)
    assert endpoint_session.apply() is False
    assert EndpointConfig.request is endpoint_session.ORIGINAL
    assert "changed" in caplog.text


async def test_a_refused_connection_raises_as_before() -> None:
    endpoint = EndpointConfig(url=f"http://127.0.0.1:{free_port()}/webhook")
    with pytest.raises(aiohttp.ClientConnectionError):
        await endpoint_session.ORIGINAL(endpoint)
    with pytest.raises(aiohttp.ClientConnectionError):
        await endpoint_session.request(endpoint)
