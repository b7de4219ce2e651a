"""The generated HAProxy configuration on a real HAProxy: a client address over its request rate
gets 429 with ``Retry-After`` from HAProxy itself (the gateways never see it), other addresses do
not, and a forged ``X-Forwarded-For`` neither dodges the limit nor gets another address refused.

Client addresses are loopback ones (127.0.0.1, 127.0.0.2, ...: Linux routes all of 127/8 to the
loopback interface), the gateway a small aiohttp application counting what reaches it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.runtime.haproxy import MONITOR_URI, haproxy_config, requests_per_ip
from bot.runtime.ports import free_port
from bot.web.proxy import forwarded_client, forwarded_for, parse_networks

GATEWAY_TRUSTS = parse_networks("127.0.0.1")  # as the launcher starts the gateways

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")


@dataclass
class Balancer:
    url: str
    reached: list[str]  # the client address the gateway saw for each request it got


async def _backend(reached: list[str]) -> tuple[web.AppRunner, int]:
    async def answer(request: web.Request) -> web.Response:
        if request.path != "/healthz":
            # what the gateway's proxy middleware makes of HAProxy's request
            reached.append(forwarded_client("127.0.0.1", forwarded_for(request), GATEWAY_TRUSTS))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def _started(tmp_path: Path, limit: str, trusted: str = "") -> AsyncIterator[Balancer]:
    reached: list[str] = []
    runner, backend_port = await _backend(reached)
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        haproxy_config("127.0.0.1", port, [backend_port], requests_per_ip(limit), trusted)
    )
    process = await asyncio.create_subprocess_exec(
        "haproxy", "-db", "-f", str(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}{MONITOR_URI}") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("haproxy did not start")
        yield Balancer(f"http://127.0.0.1:{port}", reached)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
        await runner.cleanup()


@pytest.fixture
async def balancer(tmp_path: Path) -> AsyncIterator[Balancer]:
    async for running in _started(tmp_path, "5/30s"):
        yield running


@pytest.fixture
async def behind_proxy(tmp_path: Path) -> AsyncIterator[Balancer]:
    async for running in _started(tmp_path, "5/30s", trusted="127.0.0.9"):
        yield running


async def send(url: str, source: str, forwarded: str | None = None) -> tuple[int, dict, dict]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(f"{url}/api/conversations", headers=headers) as response:
            return response.status, dict(response.headers), await response.json()


async def test_an_address_over_its_rate_gets_429_with_retry_after_before_any_gateway(balancer):
    results = [await send(balancer.url, "127.0.0.1") for _ in range(12)]
    assert [status for status, _, _ in results] == [200] * 5 + [429] * 7
    for _status, headers, body in results[5:]:
        assert headers["Retry-After"] == "30"
        assert body["error"]["code"] == "too_many_requests"
        assert body["error"]["details"]["retry_after"] == 30
    assert len(balancer.reached) == 5  # the refused ones never reached the gateway
    # another address has its own budget
    assert (await send(balancer.url, "127.0.0.2"))[0] == 200


async def test_a_forged_forwarded_for_neither_dodges_the_limit_nor_blames_another(balancer):
    for i in range(6):  # 127.0.0.3 spends its budget, claiming to be others
        await send(balancer.url, "127.0.0.3", forwarded=f"10.0.0.{i}")
    assert (await send(balancer.url, "127.0.0.3", forwarded="10.9.9.9"))[0] == 429
    # 127.0.0.4 claiming to be the limited 127.0.0.3 is counted as itself
    assert (await send(balancer.url, "127.0.0.4", forwarded="127.0.0.3"))[0] == 200
    # and the gateway behind sees each one's own address, never the forged one
    assert set(balancer.reached) == {"127.0.0.3", "127.0.0.4"}


async def test_behind_a_trusted_proxy_the_address_it_appended_is_counted(behind_proxy):
    proxy = "127.0.0.9"  # a trusted proxy relays two clients; it appends the real address
    first = [
        await send(behind_proxy.url, proxy, forwarded=f"6.6.6.6, 10.1.0.{i % 2}") for i in range(14)
    ]
    assert sorted(status for status, _, _ in first) == [200] * 10 + [429] * 4
    # a client forging the first entry is still counted by the right-most one
    assert (await send(behind_proxy.url, proxy, forwarded="10.1.0.7, 10.1.0.0"))[0] == 429
    assert (await send(behind_proxy.url, proxy, forwarded="10.1.0.0, 10.1.0.7"))[0] == 200
    # an untrusted peer's header is not believed: counted by its own address
    assert (await send(behind_proxy.url, "127.0.0.5", forwarded="10.1.0.0"))[0] == 200


def test_the_rate_is_written_as_count_per_period() -> None:
    assert requests_per_ip("200/10s") == (200, 10)
    assert requests_per_ip("50/m") == (50, 60)
    assert requests_per_ip("off") is None
    assert "track-sc0" not in haproxy_config("127.0.0.1", 1, [2], None)
    with pytest.raises(ValueError, match="200/10s"):
        requests_per_ip("lots")
