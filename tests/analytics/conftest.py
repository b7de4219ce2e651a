"""Fixtures of the analytics tests.

* ``analytics_redis`` / ``redis``: a real redis-server of their own (bot.runtime.redis_server).
* ``analytics_gateway``: the real gateway process (``python -m bot.web``) on that Redis, with
  Rasa's SQL event database at a temporary SQLite file the test fills through Rasa's own
  SQLEventBroker, and Rasa itself unreachable (the analytics API reads, it does not chat).
* ``browser``: headless Debian Chromium through Playwright.

Logs go to ``test-artifacts/logs/``, screenshots to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.config import PROJECT_ROOT
from bot.runtime import services
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import Service, bot_services, running
from bot.web.limits import GENEROUS_ENV

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
LOGS = ARTIFACTS / "logs"
SCREENSHOTS = ARTIFACTS / "screenshots"


@dataclass
class AnalyticsGateway:
    url: str
    redis_url: str
    namespace: str
    events_db: Path
    service: Service

    @property
    def events_url(self) -> str:
        return f"sqlite:///{self.events_db}"


@pytest.fixture(scope="session")
def analytics_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("analytics-redis"), appendonly=True)
    with server:
        yield server


@pytest.fixture
async def redis(analytics_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(analytics_redis.url, decode_responses=True)
    yield client
    await client.close()


def gateway_process(
    name: str,
    redis_url: str,
    namespace: str,
    events_db: Path,
    rasa_url: str,
    rasa_token: str | None = None,
) -> AnalyticsGateway:
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "RASA_URL": rasa_url,
        "RASA_AUTH_TOKEN": rasa_token or "",
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "EVENTS_DB_URL": f"sqlite:///{events_db}",
        "GATEWAY_PORT": str(port),
        "SUPPORT_DEMO": "1",  # these tests log in as the demo lead
        "PASSWORD_SCRYPT_LOG2_N": "12",  # fast hashes here; tests/security checks the real cost
        **GENEROUS_ENV,  # the simulation drives many customers from one address
    }
    service = services.gateway_service("127.0.0.1", port, LOGS, env, name=name)
    return AnalyticsGateway(f"http://127.0.0.1:{port}", redis_url, namespace, events_db, service)


@pytest.fixture(scope="session")
def analytics_gateway(
    analytics_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnalyticsGateway]:
    events_db = tmp_path_factory.mktemp("analytics-events") / "events.db"
    nobody = f"http://127.0.0.1:{free_port()}"
    gateway = gateway_process("gateway-analytics", analytics_redis.url, "antest", events_db, nobody)
    with running([gateway.service], timeout=60):
        yield gateway


@pytest.fixture(scope="module")
def analytics_stack(
    analytics_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[AnalyticsGateway]:
    """Action server, event sink (to a fresh SQLite file), Rasa (trained model) and the gateway,
    all on the session's Redis under a namespace of the test module's own (``ane2e-<module>``:
    one module's conversations never show in another's figures)."""
    from bot.runtime.training import ensure_model

    model = ensure_model(quiet=True)
    namespace = "ane2e-" + request.module.__name__.rpartition(".")[2]
    events_db = tmp_path_factory.mktemp("e2e-events") / "events.db"
    env = {
        "REDIS_URL": analytics_redis.url,
        "SUPPORT_QUEUE_NAMESPACE": namespace,
        "EVENTS_DB_URL": f"sqlite:///{events_db}",
    }
    with bot_services(model, LOGS, env) as bot:
        gateway = gateway_process(
            "gateway-analytics-e2e",
            analytics_redis.url,
            namespace,
            events_db,
            bot.rasa_url,
            bot.rasa_token,
        )
        with running([gateway.service], timeout=60):
            yield gateway
