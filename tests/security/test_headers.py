"""Issue 12, finding 10: the CSP lets pages connect to the gateway's own origin only, and
forwarded headers are believed only from a configured trusted proxy (real gateways and Redis).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.security.gateways import gateway

PAGES = ["/", "/agent", "/dashboard", "/api/docs"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def connect_src(csp: str) -> list[str]:
    match = re.search(r"connect-src ([^;]*)", csp)
    assert match, csp
    return match.group(1).split()


async def create(http, url: str, headers: dict[str, str]) -> int:
    async with http.post(f"{url}/api/conversations", headers=headers) as response:
        return response.status


async def test_csp_connect_src_is_the_gateways_own_origin_only(redis_server, http):
    with gateway(redis_server.url) as gw:
        for page in PAGES:
            async with http.get(gw.url + page) as response:
                assert response.status == 200
                sources = connect_src(response.headers["Content-Security-Policy"])
            assert sources == ["'self'", f"ws://{gw.host}"], page  # no bare ws: / wss: / *


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(redis_server, http):
    env = {"RATE_LIMIT_CONVERSATIONS_PER_IP": "2/h"}
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    with gateway(redis_server.url, env) as gw:
        async with http.get(gw.url + "/", headers=forged) as response:
            sources = connect_src(response.headers["Content-Security-Policy"])
        assert sources == ["'self'", f"ws://{gw.host}"]
        origin = {**forged, "Origin": "https://evil.example"}
        assert await create(http, gw.url, origin) == 403
        statuses = await asyncio.gather(
            *(create(http, gw.url, {"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(6))
        )
    assert sorted(statuses) == [201, 201, 429, 429, 429, 429]  # one address, one budget


async def test_a_trusted_proxy_gives_the_client_address_scheme_and_host(redis_server, http):
    env = {"RATE_LIMIT_CONVERSATIONS_PER_IP": "2/h", "TRUSTED_PROXIES": "127.0.0.1, ::1"}
    public = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "support.pennantpay.example"}
    with gateway(redis_server.url, env) as gw:
        async with http.get(gw.url + "/", headers=public) as response:
            sources = connect_src(response.headers["Content-Security-Policy"])
        assert sources == ["'self'", "wss://support.pennantpay.example"]
        origin = {**public, "Origin": "https://support.pennantpay.example"}
        assert await create(http, gw.url, origin) == 201  # the public origin is the own one
        clients = [f"203.0.113.{i}" for i in range(1, 4)]
        statuses = await asyncio.gather(
            *(create(http, gw.url, {"X-Forwarded-For": c}) for c in clients for _ in range(3))
        )
        assert sorted(statuses) == [201] * 6 + [429] * 3  # two per client address
        # a client cannot forge its way to a fresh budget by prepending addresses: the proxy
        # appends the real one, and the right-most untrusted entry is the client
        spoofed = await asyncio.gather(
            *(
                create(http, gw.url, {"X-Forwarded-For": f"10.9.9.{i}, 192.0.2.50"})
                for i in range(5)
            )
        )
    assert sorted(spoofed) == [201, 201, 429, 429, 429]
