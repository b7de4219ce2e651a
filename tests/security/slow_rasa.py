"""A relay in front of the real Rasa that holds Rasa's answers to customer turns until the test
lets them through: a slow answer, on demand, without timing (runs in a thread of its own, so
the synchronous service start-up of the tests can reach it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from tests.web.conftest import free_port

WEBHOOK = "/webhooks/rest/webhook"


class SlowRasa:
    """Forwards every request to Rasa; answers of the REST webhook wait for :meth:`release`."""

    def __init__(self, rasa_url: str) -> None:
        self.rasa_url = rasa_url.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.turns_forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._released: asyncio.Event | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def release(self) -> None:
        """Let held answers (and every later one) through."""
        self._loop.call_soon_threadsafe(self._released.set)  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with aiohttp.ClientSession() as session:
            async with session.request(
                request.method,
                self.rasa_url + request.path_qs,
                data=body,
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            ) as answer:
                payload = await answer.read()
                status = answer.status
        if request.path == WEBHOOK:
            self.turns_forwarded += 1
            await self._released.wait()  # type: ignore[union-attr]
        return web.Response(body=payload, status=status, content_type="application/json")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._released, self._stop = asyncio.Event(), asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._started.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the relay did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._released.set)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._stop.set)  # type: ignore[union-attr]
        self._thread.join(10)


@contextmanager
def slow_rasa(rasa_url: str) -> Iterator[SlowRasa]:
    relay = SlowRasa(rasa_url)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()
