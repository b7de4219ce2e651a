"""Fixtures for the gateway's tests: a real Redis, a real gateway process and, for the end-to-end
browser tests, a real Rasa server and action server with the trained model.

* ``web_redis``: a redis-server of our own for the session (bot.runtime.redis_server, free port).
* ``gateway``: ``python -m bot.web`` on a free port against it, with Rasa pointing at a port
  nobody listens on (the API tests need no bot; a message to the bot then gets a clear 503).
* ``stack``: the whole stack (Redis, action server, Rasa with ``ensure_model()``, gateway), for
  the tests marked ``model`` and ``browser``.
* ``browser``: headless Debian Chromium through Playwright (``executable_path``).

Service logs go to ``test-artifacts/logs/``; screenshots to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.config import PROJECT_ROOT
from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import Service, bot_services
from bot.web.limits import GENEROUS_ENV

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
LOGS = ARTIFACTS / "logs"
SCREENSHOTS = ARTIFACTS / "screenshots"
ALLOWED_ORIGIN = "https://shop.example"


@dataclass
class Gateway:
    """A running gateway process and what it runs against."""

    url: str
    redis_url: str
    rasa_url: str
    namespace: str
    service: Service
    events_db: Path | None = None  # Rasa's SQL event store (the ``stack`` only)
    rasa_token: str | None = None  # the token of Rasa's HTTP API (the ``stack`` only)

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://") + path


def gateway_service(
    name: str,
    redis_url: str,
    rasa_url: str,
    namespace: str,
    action_url: str | None = None,
    rasa_token: str | None = None,
) -> Gateway:
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "RASA_URL": rasa_url,
        "RASA_AUTH_TOKEN": rasa_token or "",
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "WEB_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "GATEWAY_PORT": str(port),
        "SUPPORT_DEMO": "1",  # these tests log in as the demo lead
        "PASSWORD_SCRYPT_LOG2_N": "12",  # fast hashes here; tests/security checks the real cost
        **GENEROUS_ENV,  # these tests drive many customers from one address (limits: tests/security)
    }
    if action_url:  # probed by /healthz and when Rasa answers a turn with nothing
        env["ACTION_SERVER_URL"] = action_url
    service = services.gateway_service("127.0.0.1", port, LOGS, env, name=name)
    return Gateway(
        f"http://127.0.0.1:{port}", redis_url, rasa_url, namespace, service, rasa_token=rasa_token
    )


@pytest.fixture(scope="session")
def web_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("web-redis"), appendonly=True)
    with server:
        yield server


def _run(gateway: Gateway) -> Iterator[Gateway]:
    with services.running([gateway.service], timeout=60):
        yield gateway


@pytest.fixture(scope="session")
def gateway(web_redis: RedisServer) -> Iterator[Gateway]:
    """A gateway whose Rasa is unreachable (API tests)."""
    nobody = f"http://127.0.0.1:{free_port()}"
    yield from _run(gateway_service("gateway-api", web_redis.url, nobody, "webtest"))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def redis(web_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(web_redis.url, decode_responses=True)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def stack(web_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Action server, Rasa (trained model) and a gateway against the session's Redis."""
    from bot.runtime.training import ensure_model

    model = ensure_model(quiet=True)
    namespace = "e2e"
    events_db = tmp_path_factory.mktemp("web-e2e") / "events.db"
    env = {
        "REDIS_URL": web_redis.url,
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "EVENTS_DB_URL": f"sqlite:///{events_db}",
    }
    with bot_services(model, LOGS, env) as bot:
        gateway = gateway_service(
            "gateway-e2e", web_redis.url, bot.rasa_url, namespace, bot.action_url, bot.rasa_token
        )
        gateway.events_db = events_db
        yield from _run(gateway)


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
