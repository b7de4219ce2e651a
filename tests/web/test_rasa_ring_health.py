"""What the gateway believes about a Rasa replica (bot/web/rasa_ring.py, RasaClient.probe).

A replica too busy to answer /status within the probe's timeout is alive: it is reported up and
busy and keeps its conversations. Marking it down (as a plain timeout did) failed its
conversations over to the other replica, which then looked busy too, until every turn was
answered "no Rasa replica is reachable" without a try (bench.faults: 140 such turns after a Rasa
kill under 100 conversations). A port nobody listens on is down. When every replica is in its
cooldown, a turn is still tried on one.

The replicas here are small aiohttp servers on real sockets standing in for Rasa's /status and
REST webhook: what is checked is the gateway's reading of their answers, not Rasa.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.runtime.ports import free_port
from bot.web.rasa_client import BUSY, DOWN, UP, RasaClient
from bot.web.rasa_ring import RasaRing


async def _replica(status_delay: float) -> tuple[web.AppRunner, str]:
    async def status(_request: web.Request) -> web.Response:
        await asyncio.sleep(status_delay)
        return web.json_response({"model_file": "m"})

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response([{"recipient_id": body["sender"], "text": "hello"}])

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_post("/webhooks/rest/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def replicas() -> AsyncIterator[dict[str, str]]:
    quick, quick_url = await _replica(0.0)
    busy, busy_url = await _replica(5.0)
    yield {"quick": quick_url, "busy": busy_url, "dead": f"http://127.0.0.1:{free_port()}"}
    await quick.cleanup()
    await busy.cleanup()


async def test_a_probe_tells_up_busy_and_down_apart(replicas: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        probes = [
            RasaClient(session, replicas[name]).probe(timeout=1.0)
            for name in ("quick", "busy", "dead")
        ]
        assert await asyncio.gather(*probes) == [UP, BUSY, DOWN]


async def test_a_busy_replica_is_reported_up_and_keeps_its_place(
    replicas: dict[str, str],
) -> None:
    async with aiohttp.ClientSession() as session:
        ring = RasaRing(session, [replicas["quick"], replicas["busy"], replicas["dead"]])
        statuses = await ring.statuses()
        assert statuses == [
            {"name": "rasa-1", "status": "up"},
            {"name": "rasa-2", "status": "up", "busy": True},
            {"name": "rasa-3", "status": "down"},
        ]
        assert not ring.health.cooling(replicas["busy"])
        assert ring.health.cooling(replicas["dead"])


async def test_with_every_replica_in_its_cooldown_a_turn_is_still_tried(
    replicas: dict[str, str],
) -> None:
    async with aiohttp.ClientSession() as session:
        ring = RasaRing(session, [replicas["quick"]])
        ring.health.mark_down(replicas["quick"])  # e.g. a blip a moment ago
        assert ring.health.cooling(replicas["quick"])
        replies = await ring.send("web-1", "hi")
        assert replies == [{"recipient_id": "web-1", "text": "hello"}]
